"""The task model: where shallow features and attention come from.

Three ways to supply one (see :func:`resolve_task_model`):

1. ``"proxy"`` (default): :func:`train_proxy` trains :class:`ProxyNet`, a small residual CNN,
   on a bounded low-resolution sample of the dataset itself (a few epochs, seeded, deterministic
   on the CPU).
2. A file: a checkpoint written by :func:`save_proxy` (or a bare :class:`ProxyNet` state dict),
   loaded with ``torch.load(weights_only=True)`` (no code runs); a ``torch.export`` archive
   (``.pt2``); or a TorchScript archive whose ``forward`` returns the tuple
   ``(logits, shallow_map, last_map)`` (TorchScript modules cannot take forward hooks, so the
   intermediate maps must be returned).
3. Any ``torch.nn.Module`` from Python, wrapped in :class:`TaskModel` with the dotted names of
   its shallow stage and last conv block (e.g. ``"layer1"`` / ``"layer4"`` for a ResNet).

Every task model sees images resized (bilinear, antialiased, aspect ratio NOT kept so that the
whole image is seen) to ``input_size``, scaled to [0, 1] and normalised with ``mean``/``std``.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dcqformat.encode.resize import resize_aa
from dcqformat.errors import InvalidArgumentError

__all__ = [
    "ProxyNet",
    "TaskModel",
    "train_proxy",
    "deterministic",
    "module_fingerprint",
]

PROXY_FORMAT = "dcqformat-proxy-v1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------- architecture


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with batch norm and an identity (or 1x1) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU of the two conv + batch-norm layers applied to ``x`` plus the shortcut of ``x``."""
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ProxyNet(nn.Module):
    """A small ResNet: stride-2 stem, ``stage1`` (shallow features), ``stage2``, ``last_block``
    (Grad-CAM++ target), global average pool, linear classifier.

    With the default widths (16, 32, 64) it has ~0.1 M parameters and costs ~3 M multiply-adds
    at 32x32 input, where ``stage1`` is 16x16 and the ``last_block`` map 4x4 (as ResNet-18's
    last stage on CIFAR, which the paper uses).
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        w0, w1, w2 = (int(w) for w in widths)
        self.in_channels = int(in_channels)
        self.config: dict[str, Any] = {"in_channels": int(in_channels), "num_classes": int(num_classes),
                       "widths": [w0, w1, w2]}
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, w0, 3, 2, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU()
        )
        self.stage1 = BasicBlock(w0, w0)
        self.stage2 = BasicBlock(w0, w1, stride=2)
        self.last_block = BasicBlock(w1, w2, stride=2)
        self.fc = nn.Linear(w2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes]`` of a ``[B, C, H, W]`` batch (blocks, average pool, fc)."""
        x = self.last_block(self.stage2(self.stage1(self.stem(x))))
        return self.fc(x.mean((2, 3)))


# ----------------------------------------------------------------------------- task model


def module_fingerprint(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, dtypes, shapes and bytes), for provenance."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        if not isinstance(t, torch.Tensor):
            continue
        c = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{c.dtype}|{tuple(c.shape)}\n".encode())
        h.update(c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b"")
    return h.hexdigest()


def _get_submodule(module: nn.Module, name: str) -> nn.Module:
    try:
        return module.get_submodule(name)
    except AttributeError as e:
        names = [n for n, _ in module.named_modules() if n]
        shown = ", ".join(names[:40]) + (", ..." if len(names) > 40 else "")
        raise InvalidArgumentError(
            f"the model has no submodule {name!r}; its submodules are: {shown}"
        ) from e


@dataclass
class TaskModel:
    """A classifier plus what the encoder needs to know to use it.

    ``shallow`` / ``last``: dotted submodule names of the shallow stage (clustering features) and
    the last conv block (Grad-CAM++). ``returns_maps``: the module's forward itself returns
    ``(logits, shallow_map, last_map)`` (the TorchScript convention; names are then unused).
    ``input_size``: (H, W) every image is resized to. ``mean``/``std``: per-channel
    normalisation of [0, 1] inputs (one value per model input channel). ``in_channels``: 1 or 3;
    images with the other count are converted (grey replicated, or colour -> luma).
    ``identity``: provenance (kind, fingerprint, ...).
    """

    module: nn.Module
    shallow: str = "stage1"
    last: str = "last_block"
    input_size: tuple[int, int] = (32, 32)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    in_channels: int = 3
    returns_maps: bool = False
    identity: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.returns_maps:
            _get_submodule(self.module, self.shallow)
            _get_submodule(self.module, self.last)
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise InvalidArgumentError(
                f"mean/std need {self.in_channels} value(s) each, got {self.mean!r} / {self.std!r}"
            )
        if not self.identity:
            self.identity = {
                "kind": "module",
                "class": f"{type(self.module).__module__}.{type(self.module).__qualname__}",
                "sha256": module_fingerprint(self.module),
            }

    def to(self, device: torch.device) -> TaskModel:
        """Move the module to ``device`` (in place); returns this TaskModel."""
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        """The device of the module's first parameter, else of its first buffer, else the CPU."""
        for p in self.module.parameters():
            return p.device
        for b in self.module.buffers():
            return b.device
        return torch.device("cpu")

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float ``[B, C, H, W]`` -> [0, 1] float with the model's channel count."""
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()  # one float copy
        c = x.shape[1]
        if c != self.in_channels:
            if c == 1:
                x = x.expand(-1, self.in_channels, -1, -1)
            elif c == 3 and self.in_channels == 1:
                w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
                x = (x * w).sum(1, keepdim=True)
            else:
                raise InvalidArgumentError(f"model takes {self.in_channels} channels, got {c}")
        return x

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float ``[B, C, H, W]`` -> normalised model input at ``input_size``."""
        x = images.to(self.device)
        if tuple(x.shape[-2:]) != tuple(self.input_size):
            x = resize_aa(x, (int(self.input_size[0]), int(self.input_size[1])), self._to_float)
        else:
            x = self._to_float(x)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    @contextmanager
    def _hooks(self, store: dict[str, torch.Tensor]) -> Iterator[None]:
        handles = []
        for key, name in (("shallow", self.shallow), ("last", self.last)):
            mod = _get_submodule(self.module, name)

            def hook(_m: nn.Module, _i: Any, out: Any, key: str = key) -> None:
                store[key] = out[0] if isinstance(out, (tuple, list)) else out

            handles.append(mod.register_forward_hook(hook))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the model on a prepared batch: ``(logits, shallow_map, last_map)``."""
        if self.returns_maps:
            out = self.module(x)
            if not (isinstance(out, (tuple, list)) and len(out) == 3):
                raise InvalidArgumentError(
                    "a TorchScript task model must return (logits, shallow_map, last_map)"
                )
            return out[0], out[1], out[2]
        store: dict[str, torch.Tensor] = {}
        with self._hooks(store):
            logits = self.module(x)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        missing = [k for k in ("shallow", "last") if k not in store]
        if missing:
            raise InvalidArgumentError(f"the model's forward never called its {missing} block(s)")
        return logits, store["shallow"], store["last"]


# ----------------------------------------------------------------------------- determinism


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and switch on deterministic algorithms for the duration; restores the flags."""
    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cudnn_det = torch.backends.cudnn.deterministic
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_cudnn_det


# ----------------------------------------------------------------------------- training


def train_proxy(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = 4,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    lr: float = 3e-3,
    widths: Sequence[int] = (16, 32, 64),
    progress: bool = False,
    on_epoch: Callable[[int, float], None] | None = None,
    on_epoch_model: Callable[[int, nn.Module], None] | None = None,
) -> TaskModel:
    """Train a :class:`ProxyNet` on ``images`` (uint8 ``[N, C, r, r]``, all the same size) and
    ``labels`` (``[N]`` int); return it as an eval-mode :class:`TaskModel` with
    ``input_size = (r, r)``.

    AdamW (weight decay 1e-4) with a cosine learning-rate schedule, random horizontal flips and
    random shifts of up to r/8 pixels (one shift per batch, reflect padding). All randomness comes from ``seed``; on
    the CPU the result is bit-for-bit reproducible.
    ``on_epoch(epoch, mean_loss)`` and ``on_epoch_model(epoch, net)`` are called after every
    epoch (the net in train mode; a callback that keeps it must copy it, and must not change it).
    """
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise InvalidArgumentError(f"images must be uint8 [N, C, H, W], got {images.dtype} "
                                   f"{tuple(images.shape)}")
    if len(images) != len(labels) or len(images) == 0:
        raise InvalidArgumentError("train_proxy needs as many labels as images, and at least one")
    if epochs < 0:
        raise InvalidArgumentError(f"epochs must be >= 0, got {epochs}")
    dev = torch.device(device)
    n, c, h, w = images.shape
    x01 = images.float() / 255.0
    mean = tuple(float(v) for v in x01.mean((0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in x01.std((0, 2, 3)))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the global RNG
        torch.manual_seed(seed)
        net = ProxyNet(c, num_classes, widths)
    net.to(dev)
    task = TaskModel(net, "stage1", "last_block", (h, w), mean, std, c, identity={"kind": "proxy"})
    labels = labels.to(torch.long)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, total) / total))
    )
    pad = max(1, h // 8)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="train proxy", unit="step", disable=not progress, leave=False)
    net.train()
    try:
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen)
            running = 0.0
            for s in range(steps_per_epoch):
                idx = order[s * batch_size : (s + 1) * batch_size]
                xb = x01[idx]
                flip = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                dy, dx = torch.randint(-pad, pad + 1, (2,), generator=gen).tolist()
                xb = F.pad(xb, (pad, pad, pad, pad), mode="reflect" if min(h, w) > pad else "replicate")
                xb = xb[:, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w]
                xb = task.prepare(xb.to(dev))
                loss = F.cross_entropy(net(xb), labels[idx].to(dev))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                running += float(loss.detach())
                bar.update(1)
            if on_epoch is not None:
                on_epoch(epoch, running / steps_per_epoch)
            if on_epoch_model is not None:  # e.g. snapshot the net early for EL2N scores
                on_epoch_model(epoch, net)
            bar.set_postfix(loss=f"{running / max(1, steps_per_epoch):.3f}")
    finally:
        bar.close()
    net.eval()
    task.identity = {
        "kind": "proxy",
        "architecture": "ProxyNet",
        "config": dict(net.config),
        "input_size": [h, w],
        "epochs": epochs,
        "train_images": n,
        "seed": seed,
        "sha256": module_fingerprint(net),
    }
    return task


# ----------------------------------------------------------------------------- checkpoints
