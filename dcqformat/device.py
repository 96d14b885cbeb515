"""Choosing the torch device the encoder and the selection methods run on (imports torch;
the reader core in ``format/`` and ``codecs/`` never imports this module)."""

from __future__ import annotations

import torch

from dcqformat.errors import InvalidArgumentError

__all__ = ["resolve_device"]


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) -> the first CUDA device when one is present, else the CPU.

    Anything else is parsed by :class:`torch.device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``,
    ``"mps"``, ...) and checked to exist, so a typo or a missing GPU fails here with a clear
    message instead of deep inside the pipeline.
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = spec if isinstance(spec, torch.device) else torch.device(spec.strip().lower())
    except (RuntimeError, ValueError, TypeError) as e:
        raise InvalidArgumentError(
            f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {spec!r}"
        ) from e
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(
                f"device {spec!r} requested but CUDA is not available (torch {torch.__version__}); "
                "use device='auto' or 'cpu'"
            )
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise InvalidArgumentError(
                f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InvalidArgumentError(f"device {spec!r} requested but MPS is not available")
        return dev
    raise InvalidArgumentError(f"unsupported device type {dev.type!r} (from {spec!r})")
