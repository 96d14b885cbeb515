"""The task model: proxy training, checkpoints, user modules, devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dcqformat.device import resolve_device
from dcqformat.encode.model import ProxyNet, TaskModel, module_fingerprint, train_proxy
from dcqformat.encode.model_files import load_model, resolve_task_model, save_proxy
from dcqformat.errors import InvalidArgumentError


def _toy(n: int = 48, c: int = 3, r: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 3
    x = torch.randint(0, 60, (n, c, r, r), generator=g, dtype=torch.uint8)
    x[labels == 1, 0] += 150  # class 1 red-ish, class 2 bright on the right
    x[labels == 2, :, :, r // 2 :] += 150
    return x, labels


def test_proxy_has_named_stages() -> None:
    net = ProxyNet(3, 5)
    names = dict(net.named_modules())
    assert "stage1" in names and "last_block" in names
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 5)


def test_train_proxy_is_deterministic_and_learns() -> None:
    x, y = _toy()
    losses: list[float] = []
    a = train_proxy(x, y, 3, epochs=4, seed=1, on_epoch=lambda e, loss: losses.append(loss))
    b = train_proxy(x, y, 3, epochs=4, seed=1)
    assert a.identity["sha256"] == b.identity["sha256"]
    assert losses[-1] < losses[0]
    c = train_proxy(x, y, 3, epochs=1, seed=2)
    assert c.identity["sha256"] != a.identity["sha256"]
    with torch.no_grad():
        logits, shallow, last = a.forward_maps(a.prepare(x))
    assert logits.shape == (48, 3) and shallow.shape[2:] == (8, 8) and last.shape[2:] == (2, 2)
    assert float((logits.argmax(1) == y).float().mean()) > 0.6


def test_grey_proxy_and_channel_adaptation() -> None:
    x, y = _toy(c=1)
    t = train_proxy(x, y, 3, epochs=1, seed=0)
    assert t.in_channels == 1
    rgb = torch.randint(0, 255, (2, 3, 20, 24), dtype=torch.uint8)
    assert t.prepare(rgb).shape == (2, 1, 16, 16)


def test_save_and_load_proxy(tmp_path: Path) -> None:
    x, y = _toy()
    t = train_proxy(x, y, 3, epochs=1, seed=0)
    p = tmp_path / "proxy.pt"
    save_proxy(t, p)
    u = load_model(p)
    assert u.identity["kind"] == "proxy-checkpoint"
    assert module_fingerprint(u.module) == module_fingerprint(t.module)
    assert u.input_size == t.input_size and u.mean == pytest.approx(t.mean)
    with torch.no_grad():
        assert torch.allclose(u.module(t.prepare(x)), t.module(t.prepare(x)), atol=1e-6)
    torch.save(t.module.state_dict(), tmp_path / "sd.pt")
    assert load_model(tmp_path / "sd.pt").identity["kind"] == "proxy-state-dict"


class _Other(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.head_conv = nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_conv(self.features(x)).mean((2, 3)))


def test_user_module_with_named_layers() -> None:
    t = TaskModel(_Other().eval(), "features", "head_conv", (16, 16))
    logits, shallow, last = t.forward_maps(t.prepare(torch.rand(2, 3, 30, 20)))
    assert logits.shape == (2, 2) and shallow.shape == (2, 4, 16, 16) and last.shape == (2, 6, 8, 8)
    with pytest.raises(InvalidArgumentError, match="no submodule 'layer1'.*features"):
        TaskModel(_Other(), "layer1", "head_conv")
    assert resolve_task_model("proxy") is None
    assert isinstance(resolve_task_model(ProxyNet(3, 2)), TaskModel)
    with pytest.raises(InvalidArgumentError, match="model must be"):
        resolve_task_model(42)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export's own pytree deprecation
def test_torch_export_archive(tmp_path: Path) -> None:
    m = _Other().eval()
    ep = torch.export.export(m, (torch.rand(2, 3, 16, 16),))
    p = tmp_path / "m.pt2"
    torch.export.save(ep, p)
    t = load_model(p, shallow="features", last="head_conv", input_size=(16, 16))
    assert t.identity["kind"] == "torch.export"
    x = torch.rand(2, 3, 16, 16)
    logits, shallow, last = t.forward_maps(t.prepare(x))
    assert shallow.shape == (2, 4, 16, 16) and last.shape == (2, 6, 8, 8)


class _Scripted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = _Other()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.inner.features(x)
        last = self.inner.head_conv(s)
        return self.inner.fc(last.mean((2, 3))), s, last


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_returning_maps(tmp_path: Path) -> None:
    p = tmp_path / "ts.pt"
    torch.jit.save(torch.jit.script(_Scripted().eval()), p)
    t = load_model(p, input_size=(16, 16))
    assert t.returns_maps and t.identity["kind"] == "torchscript"
    x = t.prepare(torch.rand(2, 3, 16, 16))
    logits, _shallow, last = t.forward_maps(x)
    from dcqformat.encode.gradcam import compute_cams

    assert compute_cams(logits, last, torch.tensor([0, 1])).shape == (2, 8, 8)


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(InvalidArgumentError, match="not a ProxyNet checkpoint"):
        load_model(bad)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InvalidArgumentError, match="not one of dcqformat's ProxyNet"):
        load_model(tmp_path / "other.pt")


def test_resolve_device() -> None:
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InvalidArgumentError, match="device must be"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="CUDA is not available"):
            resolve_device("cuda")
