"""Nearest-colour assignment: map every pixel to the index of its closest palette colour.

Distance is the squared Euclidean distance, accumulated in float64 channel by channel in the
order 0, 1, ..., ch-1 (the pure-NumPy reference does the same, so both agree bit for bit). Ties
go to the lowest palette index. The colour space is the caller's business (the encoder passes
CIE LAB values).

``_nearest_kernel(pixels, palette, out)`` is the raw ``@njit`` kernel: ``pixels`` float32
``(n, ch)``, ``palette`` float32 ``(K, ch)`` with ``1 <= K <= 256``, both C-contiguous and finite,
``out`` uint8 ``(n,)``. It does no checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from dcqformat.errors import InvalidArgumentError

__all__ = ["nearest_palette_index"]


@njit(cache=True, nogil=True)
def _nearest_kernel(pixels, palette, out):  # type: ignore[no-untyped-def]
    """Write into ``out[i]`` the index of the palette colour nearest ``pixels[i]``."""
    n = pixels.shape[0]
    ch = pixels.shape[1]
    n_colors = palette.shape[0]
    for i in range(n):
        best = 0
        best_d = np.inf
        for k in range(n_colors):
            d = 0.0
            for c in range(ch):
                diff = np.float64(pixels[i, c]) - np.float64(palette[k, c])
                d += diff * diff
            if d < best_d:  # strict: the lowest index wins a tie
                best_d = d
                best = k
        out[i] = best


def _as_float32_2d(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a C-contiguous 2-D float32 array of finite values, or raise."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise InvalidArgumentError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{name} must be 2-D (rows, channels), got shape {arr.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf below
        arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise InvalidArgumentError(f"{name} holds NaN or infinite values (or overflows float32)")
    return arr


def nearest_palette_index(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Return, for each pixel, the index of the nearest palette colour (uint8 array of length n).

    ``pixels`` is ``(n, ch)`` and ``palette`` is ``(K, ch)`` with ``1 <= K <= 256``; both are
    converted to float32 (float32 input is used as is). Distance is squared Euclidean, computed
    in float64; ties go to the lowest index.

    Raises :class:`InvalidArgumentError` for non-numeric or non-finite input, mismatched
    channel counts, or a palette with no colours or more than 256.
    """
    px = _as_float32_2d(pixels, "pixels")
    pal = _as_float32_2d(palette, "palette")
    if not 1 <= pal.shape[0] <= 256:
        raise InvalidArgumentError(f"palette must have 1..256 colours, got {pal.shape[0]}")
    if px.shape[1] != pal.shape[1]:
        raise InvalidArgumentError(
            f"pixels have {px.shape[1]} channels but the palette has {pal.shape[1]}"
        )
    if pal.shape[1] < 1:
        raise InvalidArgumentError("pixels and palette need at least one channel")
    out = np.empty(px.shape[0], dtype=np.uint8)
    if px.shape[0]:
        _nearest_kernel(px, pal, out)
    return out
