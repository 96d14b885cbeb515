"""Palette-space colour transforms on a batch of per-sample palettes, on any torch device.

:mod:`dcqformat.torch.palette_transforms` transforms one palette ``[K, C]`` with NumPy (the
fastest for a handful of colours on the CPU). The functions here do the same arithmetic on a
batch ``[B, K, C]`` with torch operations on the palettes' device, one factor per sample, so
that :func:`dcqformat.torch.expand` can apply a random colour jitter per sample without a trip
to the host. Every step is the same float32 operation as the NumPy version (the factor and
``1 - factor`` rounded to float32 from float64, one multiply per term, one add, clamp,
truncation to uint8; contrast centres in float64, rounded once to float32), so a row of the
batched result equals the single-palette result bit for bit; the tests hold them equal.

:func:`transform_palettes` is the entry point: a transform with a ``batch`` method (every
built-in one) runs vectorised; any other callable ``fn(palette[, counts=])`` is called once
per sample on a CPU copy of that sample's palette (a device round trip: correct, slower).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dcqformat.errors import InvalidArgumentError

__all__ = [
    "batch_blend",
    "batch_brightness",
    "batch_contrast",
    "batch_grayscale",
    "batch_grey",
    "batch_saturation",
    "contrast_centers",
    "per_sample",
    "transform_palettes",
]

_GREY = (0.2989, 0.587, 0.114)


def _f32_column(values: Sequence[float] | np.ndarray, device: torch.device) -> torch.Tensor:
    """float64 values rounded to float32, shaped [B, 1, 1] on ``device``."""
    arr = np.asarray(values, dtype=np.float64).astype(np.float32).reshape(-1, 1, 1)
    return torch.from_numpy(arr).to(device)


def batch_blend(img1: torch.Tensor, img2: torch.Tensor, ratio: Sequence[float] | np.ndarray) -> torch.Tensor:
    """``ratio * img1 + (1 - ratio) * img2`` per sample in float32, clamped to 0..255 and
    truncated to uint8 (``img1`` [B, K, C] float32; ``img2`` broadcastable; ``ratio`` [B])."""
    r = np.asarray(ratio, dtype=np.float64)
    mixed = _f32_column(r, img1.device) * img1 + _f32_column(1.0 - r, img1.device) * img2
    return mixed.clamp(0, 255).to(torch.uint8)


def batch_grey(palettes: torch.Tensor) -> torch.Tensor:
    """Grey level of every RGB entry, uint8 [B, K, 1] (truncated, as the pixel-space formula)."""
    dev = palettes.device
    r, g, b = (palettes[..., c].to(torch.float32) for c in range(3))
    c1, c2, c3 = (torch.tensor(v, dtype=torch.float32, device=dev) for v in _GREY)
    return (c1 * r + c2 * g + c3 * b).to(torch.uint8).unsqueeze(-1)


def batch_brightness(palettes: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """Every sample's colours times its factor (:func:`~.palette_transforms.adjust_brightness`)."""
    zero = torch.zeros((), dtype=torch.float32, device=palettes.device)
    return batch_blend(palettes.to(torch.float32), zero, factors)


def batch_saturation(palettes: torch.Tensor, factors: Sequence[float]) -> torch.Tensor:
    """Blend with the grey level per sample (:func:`~.palette_transforms.adjust_saturation`)."""
    if palettes.shape[-1] == 1:
        return palettes
    return batch_blend(palettes.to(torch.float32), batch_grey(palettes).to(torch.float32), factors)


def batch_grayscale(palettes: torch.Tensor, selected: Sequence[bool]) -> torch.Tensor:
    """The grey palette (3 equal channels) for the selected samples, the others unchanged."""
    if palettes.shape[-1] == 1:
        return palettes
    sel = torch.as_tensor(np.asarray(selected, dtype=bool)).to(palettes.device).view(-1, 1, 1)
    return torch.where(sel, batch_grey(palettes).expand_as(palettes), palettes)


def _float64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float64 on its device, or on the CPU for devices without float64 (MPS)."""
    return t.to(torch.float64) if t.device.type != "mps" else t.cpu().to(torch.float64)


def contrast_centers(palettes: torch.Tensor, center: str | float,
                     counts: torch.Tensor | None) -> np.ndarray | torch.Tensor:
    """The grey level each sample's contrast blends towards, float32 [B] (see
    :func:`~.palette_transforms.contrast_center`): a number, ``"palette"`` (unweighted mean of
    the K grey levels) or ``"image"`` (the mean weighted by ``counts`` [B, K])."""
    b = palettes.shape[0]
    if not isinstance(center, str):
        value = float(center)
        if not 0 <= value <= 255:
            raise InvalidArgumentError(f"a numeric contrast center must lie in 0..255, got {value}")
        return np.full(b, value, dtype=np.float64)
    grey = _float64((batch_grey(palettes) if palettes.shape[-1] == 3 else palettes)[..., 0])
    if center == "palette":
        return grey.mean(dim=1).to(torch.float32)
    if center == "image":
        if counts is None:
            raise InvalidArgumentError(
                "contrast center 'image' needs counts (pixels per palette entry); pass counts= "
                "or use center='palette' or a number")
        c = _float64(counts).to(grey.device)
        if tuple(c.shape) != tuple(grey.shape):
            raise InvalidArgumentError(f"counts has shape {tuple(c.shape)}, the palettes {tuple(grey.shape)}")
        total = c.sum(dim=1)
        if b and bool((total <= 0).any()):
            raise InvalidArgumentError("counts must hold at least one pixel per sample")
        return ((c * grey).sum(dim=1) / total).to(torch.float32)
    raise InvalidArgumentError(f"contrast center must be 'image', 'palette' or a number, got {center!r}")


def batch_contrast(palettes: torch.Tensor, factors: Sequence[float], center: str | float,
                   counts: torch.Tensor | None) -> torch.Tensor:
    """Blend every sample's colours with its contrast centre (:func:`~.palette_transforms.
    adjust_contrast`)."""
    centers = contrast_centers(palettes, center, counts)
    if isinstance(centers, torch.Tensor):
        mean = centers.to(palettes.device).view(-1, 1, 1)
    else:
        mean = _f32_column(centers, palettes.device)
    return batch_blend(palettes.to(torch.float32), mean, factors)


def _check_result(new: Any, like: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(new, torch.Tensor) or new.dtype != torch.uint8 or tuple(new.shape) != tuple(like.shape):
        got = f"{new.dtype} {tuple(new.shape)}" if isinstance(new, torch.Tensor) else type(new).__name__
        raise InvalidArgumentError(f"palette_transform must return a uint8 tensor {tuple(like.shape)}{what}, got {got}")
    return new


def per_sample(fn: Callable[..., torch.Tensor], palettes: torch.Tensor,
               counts: torch.Tensor | None = None) -> torch.Tensor:
    """Call ``fn`` on each sample's palette in batch order (CPU copies; ``counts=`` when ``fn``
    has ``needs_counts``) and stack the results on the palettes' device."""
    needs = bool(getattr(fn, "needs_counts", False))
    host = palettes.cpu()
    host_counts = counts.cpu() if (needs and counts is not None) else None
    out = []
    for b in range(host.shape[0]):
        pal = host[b].clone()
        new = fn(pal, counts=host_counts[b] if host_counts is not None else None) if needs else fn(pal)
        out.append(_check_result(new, pal, ""))
    if not out:
        return palettes
    return torch.stack(out).to(palettes.device)


def transform_palettes(transform: Callable[..., torch.Tensor], palettes: torch.Tensor,
                       counts: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a palette transform to every row of ``palettes`` (uint8 [B, K, C]) as if called on
    each sample's palette in batch order; ``counts`` int64 [B, K] for transforms with
    ``needs_counts``. Built-in transforms run vectorised on the palettes' device."""
    batch = getattr(transform, "batch", None)
    if callable(batch):
        return _check_result(batch(palettes, counts), palettes, " batch")
    return per_sample(transform, palettes, counts)
