"""Task models from files and from Python objects: saving and loading the proxy, loading
``torch.export`` / TorchScript archives, and :func:`resolve_task_model`, which turns
``convert()``'s ``model=`` argument into a :class:`~dcqformat.encode.model.TaskModel`."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dcqformat.encode.model import IMAGENET_MEAN, IMAGENET_STD, PROXY_FORMAT, ProxyNet, TaskModel
from dcqformat.errors import InvalidArgumentError

__all__ = ["save_proxy", "load_model", "resolve_task_model"]


def save_proxy(task: TaskModel, path: str | os.PathLike[str]) -> None:
    """Write a :class:`ProxyNet` task model as a ``torch.load(weights_only=True)``-safe dict."""
    if not isinstance(task.module, ProxyNet):
        raise InvalidArgumentError("save_proxy only saves ProxyNet task models")
    torch.save(
        {
            "format": PROXY_FORMAT,
            "config": dict(task.module.config),
            "input_size": list(task.input_size),
            "mean": list(task.mean),
            "std": list(task.std),
            "state_dict": {k: v.detach().cpu() for k, v in task.module.state_dict().items()},
        },
        os.fspath(path),
    )


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _proxy_from_state_dict(sd: dict[str, Any]) -> ProxyNet:
    try:
        w0, c_in = sd["stem.0.weight"].shape[:2]
        w1 = sd["stage2.conv1.weight"].shape[0]
        w2 = sd["fc.weight"].shape[1]
        nc = sd["fc.weight"].shape[0]
    except (KeyError, AttributeError, IndexError) as e:
        raise InvalidArgumentError(
            "the checkpoint is a state dict but not one of dcqformat's ProxyNet; for another "
            "architecture build the module in Python and pass "
            "TaskModel(module, shallow=..., last=...) to convert()"
        ) from e
    net = ProxyNet(int(c_in), int(nc), (int(w0), int(w1), int(w2)))
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise InvalidArgumentError(f"the ProxyNet state dict does not load: {e}") from e
    return net


def load_model(
    path: str | os.PathLike[str],
    *,
    shallow: str = "stage1",
    last: str = "last_block",
    input_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_channels: int | None = None,
    map_location: torch.device | str = "cpu",
) -> TaskModel:
    """Load a task model from a file (see the module docstring for the accepted kinds).

    ``input_size``/``mean``/``std``/``in_channels`` override what the file says; files that say
    nothing default to 32x32 input, 3 channels and ImageNet normalisation.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidArgumentError(f"model file {str(p)!r} does not exist")
    digest = _file_sha256(p)
    ident: dict[str, Any] = {"path": str(p), "file_sha256": digest}
    names: list[str] = []
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    is_export = any(n.endswith("serialized_exported_program.json") or "/models/" in n for n in names)
    is_script = any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)

    def finish(module: nn.Module, kind: str, returns_maps: bool = False,
               size: Sequence[int] | None = None, m: Sequence[float] | None = None,
               s: Sequence[float] | None = None, c: int | None = None) -> TaskModel:
        ch = in_channels or c or 3
        mm = tuple(mean or m or (IMAGENET_MEAN if ch == 3 else (0.5,)))
        ss = tuple(std or s or (IMAGENET_STD if ch == 3 else (0.25,)))
        sz = input_size or size or (32, 32)
        module.eval()
        return TaskModel(module, shallow, last, (int(sz[0]), int(sz[1])), mm, ss, ch,
                         returns_maps, identity={"kind": kind, **ident})

    if is_export or p.suffix == ".pt2":
        ep = torch.export.load(os.fspath(p))
        module = torch.export.unflatten(ep)
        return finish(module, "torch.export")
    if is_script:
        module = torch.jit.load(os.fspath(p), map_location=map_location)
        return finish(module, "torchscript", returns_maps=True)
    try:
        obj = torch.load(os.fspath(p), map_location=map_location, weights_only=True)
    except Exception as e:
        raise InvalidArgumentError(
            f"{str(p)!r} is not a ProxyNet checkpoint, a torch.export archive or a TorchScript "
            f"archive (torch.load(weights_only=True) said: {e})"
        ) from e
    if isinstance(obj, dict) and obj.get("format") == PROXY_FORMAT:
        net = _proxy_from_state_dict(obj["state_dict"])
        ident.update(config=net.config)
        return finish(net, "proxy-checkpoint", size=obj.get("input_size"), m=obj.get("mean"),
                      s=obj.get("std"), c=net.in_channels)
    if isinstance(obj, dict):
        net = _proxy_from_state_dict(obj)
        ident.update(config=net.config)
        return finish(net, "proxy-state-dict", c=net.in_channels)
    raise InvalidArgumentError(f"{str(p)!r} holds a {type(obj).__name__}, not a model checkpoint")


def resolve_task_model(model: Any, **load_kwargs: Any) -> TaskModel | None:
    """``"proxy"`` -> None (the pipeline trains one); a path -> :func:`load_model`; a
    :class:`TaskModel` as is; a bare ``nn.Module`` -> ``TaskModel(module)`` with the default
    names ``stage1`` / ``last_block`` and 32x32 ImageNet-normalised input."""
    if model is None or (isinstance(model, str) and model == "proxy"):
        return None
    if isinstance(model, TaskModel):
        return model
    if isinstance(model, nn.Module):
        model.eval()
        return TaskModel(model)
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, **load_kwargs)
    if isinstance(model, (bytes, io.IOBase)):
        raise InvalidArgumentError("pass the model as a file path, not bytes or a stream")
    raise InvalidArgumentError(
        f"model must be 'proxy', a file path, a torch.nn.Module or a TaskModel, got "
        f"{type(model).__name__}"
    )
