"""Antialiased bilinear downscaling of large images in bounded memory.

``F.interpolate(..., mode="bilinear", antialias=True)`` on the CPU resizes the width first and
the height second; running the width pass on bands of rows, each converted to float on its own,
gives bit-identical results (tested) while never holding the whole image as float32. Images of
at most :data:`BAND_PIXELS` pixels take the one-call path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["resize_aa", "BAND_PIXELS"]

#: Images with more pixels than this are resized in bands of about this many pixels.
BAND_PIXELS = 1 << 20


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_aa(x: torch.Tensor, size: tuple[int, int],
              to_float: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``to_float(x)`` (``[B, C, H, W]`` -> float ``[B, C', H, W]``, elementwise per pixel)
    resized to ``size`` with antialiased bilinear interpolation, in bands of rows when the image
    is large; equal bit for bit to ``interpolate(to_float(x), size)``."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h * w <= BAND_PIXELS or w == size[1]:
        return _resize(to_float(x), size)
    rows = max(1, BAND_PIXELS // w)
    out: torch.Tensor | None = None
    for i in range(0, h, rows):
        band = _resize(to_float(x[..., i:i + rows, :]), (min(rows, h - i), size[1]))
        if out is None:  # allocated once, up front: many small results between the large
            out = band.new_empty((*band.shape[:-2], h, size[1]))  # bands fragment the heap
        out[..., i:i + band.shape[-2], :] = band
    assert out is not None
    return _resize(out, size)
