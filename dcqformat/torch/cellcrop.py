"""CellCrop: a random-resized crop confined to one cell of a combined canvas (PCA's augmentation).

A canvas from ``DCQDataset(combine=n)`` holds n×n images; a crop that crossed a cell border
would mix two images under one label. :class:`CellCrop` picks one cell uniformly at random,
takes a random-resized crop inside it with torchvision's ``RandomResizedCrop`` rule (written
here; torchvision is not needed) and resizes it to the output size (bilinear, antialiased).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from dcqformat.checks import check_int
from dcqformat.errors import InvalidArgumentError

__all__ = ["CellCrop"]


def _pair(value: Any, name: str, *, positive: bool = True) -> tuple[float, float]:
    if (not isinstance(value, Sequence) or len(value) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        raise InvalidArgumentError(f"{name} must be a pair (low, high) of numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        raise InvalidArgumentError(f"{name} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        side = check_int(size, "size", minimum=1)
        return side, side
    if isinstance(size, Sequence) and len(size) == 2:
        return check_int(size[0], "size[0]", minimum=1), check_int(size[1], "size[1]", minimum=1)
    raise InvalidArgumentError(f"size must be an int or a pair (height, width), got {size!r}")


class CellCrop:
    """Random-resized crop inside one randomly chosen cell of a canvas, resized to ``size``.

    Parameters
    ----------
    size:
        Output side, or ``(height, width)``.
    cells:
        The canvas is ``cells × cells`` cells (``combine`` of the dataset); the canvas height and
        width must be multiples of it. ``cells=1`` is a plain random-resized crop.
    scale, ratio:
        As in torchvision's ``RandomResizedCrop``: the crop's share of the CELL's area, drawn
        uniformly from ``scale``, and its aspect ratio, drawn log-uniformly from ``ratio``; ten
        tries, then the central crop of the cell clipped to ``ratio``.
    generator:
        A ``torch.Generator`` for every draw; default: torch's global RNG.

    Call it on a ``[C, H, W]`` tensor (uint8 or float; uint8 comes back rounded to uint8, float
    as float) or on a ``[B, C, H, W]`` batch (each image gets its own cell and crop). The output
    is ``[C, size_h, size_w]`` (``[B, ...]`` for a batch).
    """

    def __init__(self, size: int | Sequence[int], cells: int = 2,
                 scale: Sequence[float] = (0.08, 1.0), ratio: Sequence[float] = (3 / 4, 4 / 3),
                 generator: torch.Generator | None = None) -> None:
        self.size = _size(size)
        self.cells = check_int(cells, "cells", minimum=1)
        self.scale = _pair(scale, "scale")
        if self.scale[1] > 1.0:
            raise InvalidArgumentError(f"scale is a share of the cell's area, at most 1; got {scale!r}")
        self.ratio = _pair(ratio, "ratio")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InvalidArgumentError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.generator = generator

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=self.generator))

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (), generator=self.generator))

    def get_params(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of one crop of a ``height × width`` canvas, in canvas
        coordinates, inside one cell (drawn first, uniformly)."""
        n = self.cells
        if height % n or width % n or height < n or width < n:
            raise InvalidArgumentError(
                f"CellCrop(cells={n}) needs a canvas whose height and width are multiples of {n}, "
                f"got {height}x{width}")
        ch, cw = height // n, width // n
        cell = self._randint(n * n)
        top0, left0 = (cell // n) * ch, (cell % n) * cw
        i, j, h, w = self._crop_in(ch, cw)
        return top0 + i, left0 + j, h, w

    def _crop_in(self, height: int, width: int) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params on a ``height × width`` region."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target = area * self._uniform(*self.scale)
            aspect = math.exp(self._uniform(log_lo, log_hi))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return self._randint(height - h + 1), self._randint(width - w + 1), h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, canvas: torch.Tensor) -> torch.Tensor:
        """The crop of ``canvas`` (``[C, H, W]`` or ``[B, C, H, W]``) resized to ``size``."""
        if not isinstance(canvas, torch.Tensor) or canvas.ndim not in (3, 4):
            what = f"a tensor of shape {tuple(canvas.shape)}" if isinstance(canvas, torch.Tensor) \
                else type(canvas).__name__
            raise InvalidArgumentError(f"CellCrop takes a [C, H, W] or [B, C, H, W] tensor, got {what}")
        if not canvas.is_floating_point() and canvas.dtype != torch.uint8:
            raise InvalidArgumentError(f"CellCrop takes uint8 or floating-point images, got {canvas.dtype}")
        if canvas.ndim == 4:
            if canvas.shape[0] == 0:
                return canvas.new_empty((0, canvas.shape[1], *self.size))
            return torch.stack([self(x) for x in canvas])
        top, left, h, w = self.get_params(int(canvas.shape[-2]), int(canvas.shape[-1]))
        crop = canvas[None, :, top:top + h, left:left + w]
        floating = canvas.is_floating_point()
        out = F.interpolate(crop if floating else crop.float(), size=self.size, mode="bilinear",
                            align_corners=False, antialias=True)[0]
        if floating:
            return out.to(canvas.dtype)
        return out.round_().clamp_(0, 255).to(canvas.dtype)

    def __repr__(self) -> str:
        return (f"CellCrop(size={self.size}, cells={self.cells}, scale={self.scale}, "
                f"ratio={tuple(round(r, 4) for r in self.ratio)})")
