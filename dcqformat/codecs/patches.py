"""Patch-mask codecs (spec ``dcq-v1.md`` §13): grid arithmetic, mask bit packing and the Numba
kernels that gather, scatter and decode the kept patches of a masked sample.

A masked sample is cut into ``P``×``P`` patches (the last row and column clipped at the image
border); its stored pixels are the pixels of the kept patches, kept patches in raster order of
the patch grid and inside each patch its pixels in raster order. This module knows nothing about
HDF5 or files: :mod:`dcqformat.format.masks` is the container side (the ``/masks`` datasets,
their validation and the writer).

Kernels (each has a pure-NumPy reference in :mod:`dcqformat.codecs.reference`, and property
tests hold them to it): ``_gather_kernel`` (full index map -> kept indices in patch order),
``_decode_masked_kernel`` (packed kept indices -> pixels, fills included, in one pass; at 8 bits
through the identity palette it is the scatter of :func:`scatter_kept`) and
``_mask_stats_kernel`` (per-sample kept patches, kept pixels and the padding check). The public
wrappers below are the only callers; they size every buffer first (Numba checks no bounds).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numba import njit

from dcqformat.errors import InvalidArgumentError, PayloadError

MAX_PATCH = 1 << 16
_IDENTITY = np.arange(256, dtype=np.uint8).reshape(256, 1)  # index -> itself (scatter_kept)

__all__ = [
    "MAX_PATCH", "check_patch_size", "grid_shape", "patch_areas", "patch_ids", "pack_mask",
    "unpack_mask", "mask_offsets", "gather_kept", "scatter_kept", "decode_masked_into",
    "most_common_fills", "pixel_mask", "mask_stats",
]


# ----------------------------------------------------------------------------- grid


def check_patch_size(p: Any) -> int:
    """``p`` as an int in 1..65536, else :class:`InvalidArgumentError`."""
    if isinstance(p, (bool, np.bool_)):
        raise InvalidArgumentError(f"patch_size must be an integer, got {p!r}")
    try:
        v = operator.index(p)
    except TypeError:
        raise InvalidArgumentError(f"patch_size must be an integer, got {type(p).__name__} {p!r}") from None
    if not 1 <= v <= MAX_PATCH:
        raise InvalidArgumentError(f"patch_size must be in 1..{MAX_PATCH}, got {v}")
    return v


def grid_shape(h: int, w: int, p: int) -> tuple[int, int]:
    """Patch grid ``(ceil(h/p), ceil(w/p))`` of an ``h``×``w`` image."""
    return -(-int(h) // int(p)), -(-int(w) // int(p))


def patch_areas(h: int, w: int, p: int) -> np.ndarray:
    """Pixel count of every patch (row-major, edge patches clipped), int64 ``[gh, gw]``."""
    gh, gw = grid_shape(h, w, p)
    rows = np.minimum(p, h - p * np.arange(gh, dtype=np.int64))
    cols = np.minimum(p, w - p * np.arange(gw, dtype=np.int64))
    return rows[:, None] * cols[None, :]


def patch_ids(h: int, w: int, p: int) -> np.ndarray:
    """Patch number ``r·gw + c`` of every pixel, int64 ``[h, w]``."""
    _gh, gw = grid_shape(h, w, p)
    return (np.arange(h, dtype=np.int64)[:, None] // p) * gw + np.arange(w, dtype=np.int64)[None, :] // p


def pack_mask(keep: np.ndarray) -> np.ndarray:
    """Bit-pack a boolean keep mask (any shape, raveled row-major): bit g = byte g//8, bit g%8."""
    k = np.asarray(keep).reshape(-1)
    return np.packbits(k.astype(bool), bitorder="little")


def unpack_mask(packed: np.ndarray, n_patches: int) -> np.ndarray:
    """The first ``n_patches`` bits of ``packed`` as a boolean array ``[n_patches]``."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    if bits.size < n_patches:
        raise PayloadError(f"a mask of {np.asarray(packed).size} bytes cannot hold {n_patches} patches")
    return bits[:n_patches].astype(bool)


# ----------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True)
def _gather_kernel(idx, h, w, p, keep, out):  # type: ignore[no-untyped-def]
    """Copy the indices of the kept patches of ``idx`` (flat uint8 [h*w]) into ``out`` in patch
    order; ``keep`` is the bit-packed mask. Returns the number written."""
    gh = (h + p - 1) // p
    gw = (w + p - 1) // p
    n = 0
    for r in range(gh):
        y0 = r * p
        y1 = min(y0 + p, h)
        for c in range(gw):
            g = r * gw + c
            if (keep[g >> 3] >> (g & 7)) & 1:
                x0 = c * p
                x1 = min(x0 + p, w)
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        out[n] = idx[y * w + x]
                        n += 1
    return n


@njit(cache=True, nogil=True)
def _decode_masked_kernel(packed, bits, h, w, p, keep, fills, palette, out, planar, use_fill):  # type: ignore[no-untyped-def]
    """Decode a masked sample straight to pixels (HWC or planar CHW in the flat ``out``).

    Returns 0 on success, 1 when a kept index is >= K, 2 when a fill index is >= K, 3 when
    ``packed`` ends before the last kept pixel, 4 when ``fills`` ends before the last dropped
    patch (reads of ``packed`` and ``fills`` are bounded here; ``keep`` and ``out`` are sized
    by the caller)."""
    k = palette.shape[0]
    n_packed = packed.shape[0]
    n_fills = fills.shape[0]
    ch = palette.shape[1]
    gh = (h + p - 1) // p
    gw = (w + p - 1) // p
    hw = h * w
    m = (1 << bits) - 1
    pos = 0
    d = 0
    for r in range(gh):
        y0 = r * p
        y1 = min(y0 + p, h)
        for c in range(gw):
            g = r * gw + c
            x0 = c * p
            x1 = min(x0 + p, w)
            if (keep[g >> 3] >> (g & 7)) & 1:
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        b = pos * bits
                        byte = b >> 3
                        sh = b & 7
                        if byte >= n_packed:
                            return 3
                        v = np.int64(packed[byte]) >> sh
                        if sh + bits > 8:
                            if byte + 1 >= n_packed:
                                return 3
                            v |= np.int64(packed[byte + 1]) << (8 - sh)
                        v &= m
                        pos += 1
                        if v >= k:
                            return 1
                        q = y * w + x
                        for j in range(ch):
                            if planar:
                                out[j * hw + q] = palette[v, j]
                            else:
                                out[q * ch + j] = palette[v, j]
            else:
                if use_fill and d >= n_fills:
                    return 4
                v = np.int64(fills[d]) if use_fill else np.int64(0)
                d += 1
                if v >= k:
                    return 2
                for y in range(y0, y1):
                    for x in range(x0, x1):
                        q = y * w + x
                        for j in range(ch):
                            val = palette[v, j] if use_fill else 0
                            if planar:
                                out[j * hw + q] = val
                            else:
                                out[q * ch + j] = val
    return 0


@njit(cache=True, nogil=True)
def _mask_stats_kernel(keep, offsets, heights, widths, p, kept_patches, kept_pixels):  # type: ignore[no-untyped-def]
    """Fill the per-sample kept patch and kept pixel counts from the concatenated masks.

    Returns the first sample whose mask has non-zero padding bits, or -1."""
    n = heights.shape[0]
    for i in range(n):
        h = heights[i]
        w = widths[i]
        gh = (h + p - 1) // p
        gw = (w + p - 1) // p
        base = offsets[i]
        kp = 0
        px = np.int64(0)
        for r in range(gh):
            rows = min(p, h - r * p)
            for c in range(gw):
                g = r * gw + c
                if (keep[base + (g >> 3)] >> (g & 7)) & 1:
                    kp += 1
                    px += rows * min(p, w - c * p)
        kept_patches[i] = kp
        kept_pixels[i] = px
        total = gh * gw
        if total & 7:
            last = keep[offsets[i + 1] - 1]
            if last >> (total & 7):
                return i
    return -1


# ----------------------------------------------------------------------------- public helpers


def _packed_keep(keep: np.ndarray) -> np.ndarray:
    k = np.asarray(keep)
    if k.dtype == np.uint8 and k.ndim == 1:
        return np.ascontiguousarray(k)
    return pack_mask(k)


def gather_kept(idx: np.ndarray, p: int, keep: np.ndarray) -> np.ndarray:
    """Indices of the kept patches of the ``[H, W]`` map ``idx`` in patch order (uint8 1-D).

    ``keep``: boolean ``[gh, gw]`` / ``[G]`` or an already bit-packed uint8 mask."""
    idx = np.ascontiguousarray(idx, dtype=np.uint8)
    h, w = idx.shape
    packed = _packed_keep(keep)
    areas = patch_areas(h, w, p).reshape(-1)
    g = areas.size
    if packed.size * 8 < g:
        raise InvalidArgumentError(f"keep mask of {packed.size} bytes is too short for {g} patches")
    bits = np.unpackbits(packed, bitorder="little")[:g].astype(bool)
    out = np.empty(int(areas[bits].sum()), np.uint8)
    _gather_kernel(idx.reshape(-1), h, w, p, packed, out)
    return out


def scatter_kept(kept: np.ndarray, h: int, w: int, p: int, keep: np.ndarray,
                 fills: np.ndarray | None) -> np.ndarray:
    """Full ``[h, w]`` index map from the kept indices (patch order) and the dropped patches'
    ``fills`` (None: zeros there)."""
    out = np.empty(h * w, np.uint8)
    # the decode kernel at 8 bits through the identity palette is exactly the scatter
    decode_masked_into(np.ascontiguousarray(kept, dtype=np.uint8), 8, h, w, p, _packed_keep(keep),
                       fills, _IDENTITY, out, False)
    return out.reshape(h, w)


def most_common_fills(idx: np.ndarray, p: int, keep: np.ndarray, palette_size: int) -> np.ndarray:
    """The reference fill: for every dropped patch (raster order) the index most frequent among
    its own pixels of ``idx`` (ties: the smallest), uint8 ``[dropped]``."""
    idx = np.asarray(idx)
    h, w = idx.shape
    keep_flat = np.asarray(keep, bool).reshape(-1)
    pid = patch_ids(h, w, p).reshape(-1)
    counts = np.zeros((keep_flat.size, max(1, int(palette_size))), np.int64)
    np.add.at(counts, (pid, idx.reshape(-1).astype(np.int64)), 1)
    return counts[~keep_flat].argmax(1).astype(np.uint8)


def pixel_mask(keep: np.ndarray, h: int, w: int, p: int) -> np.ndarray:
    """Boolean ``[h, w]``: True where the pixel lies in a kept patch (``keep`` ``[gh, gw]``)."""
    k = np.asarray(keep, bool).reshape(grid_shape(h, w, p))
    return np.repeat(np.repeat(k, p, 0), p, 1)[:h, :w]


def mask_offsets(heights: np.ndarray, widths: np.ndarray, p: int) -> np.ndarray:
    """Start byte of every sample's mask in ``/masks/keep`` plus the total, int64 ``[N + 1]``."""
    h = np.asarray(heights, np.int64)
    w = np.asarray(widths, np.int64)
    g = (-(-h // p)) * (-(-w // p))
    out = np.zeros(h.size + 1, np.int64)
    np.cumsum((g + 7) // 8, out=out[1:])
    return out


def mask_stats(keep: np.ndarray, heights: np.ndarray, widths: np.ndarray, p: int
               ) -> tuple[np.ndarray, np.ndarray, int]:
    """(kept patches [N], kept pixels [N], first sample with non-zero mask padding or -1).

    ``keep`` must hold exactly ``mask_offsets(...)[-1]`` bytes."""
    offsets = mask_offsets(heights, widths, p)
    keep = np.ascontiguousarray(keep, np.uint8)
    if keep.ndim != 1 or keep.size != int(offsets[-1]):
        raise InvalidArgumentError(
            f"keep must hold the {int(offsets[-1])} mask bytes of these samples, got {keep.shape}")
    n = offsets.size - 1
    kp = np.zeros(n, np.int64)
    px = np.zeros(n, np.int64)
    bad = _mask_stats_kernel(keep, offsets,
                             np.asarray(heights, np.int64), np.asarray(widths, np.int64), int(p), kp, px)
    return kp, px, int(bad)


def decode_masked_into(packed: np.ndarray, bits: int, h: int, w: int, p: int, keep: np.ndarray,
                       fills: np.ndarray | None, palette: np.ndarray, out: np.ndarray,
                       planar: bool) -> int:
    """Decode one masked sample straight to pixels in the flat uint8 ``out`` (HWC, or CHW when
    ``planar``). Returns 0 on success, 1 when a kept index is >= K, 2 when a fill index is >= K.

    ``packed`` holds the kept pixels' ``bits``-bit indices (patch order), ``keep`` the bit-packed
    mask, ``fills`` one index per dropped patch (None: dropped patches decode to zeros),
    ``palette`` uint8 ``[K, ch]``, ``out`` exactly ``h*w*ch`` bytes. A ``packed`` or ``fills``
    too short for the mask is a :class:`~dcqformat.errors.PayloadError` (the kernel bounds its
    reads of both; ``keep``, ``palette`` and ``out`` are checked here)."""
    h, w, p, bits = int(h), int(w), int(p), int(bits)
    keep = np.ascontiguousarray(keep, dtype=np.uint8)
    gh, gw = grid_shape(h, w, p)
    if keep.ndim != 1 or keep.size * 8 < gh * gw:
        raise PayloadError(f"a mask of {keep.size} bytes cannot hold {gh * gw} patches")
    if (palette.dtype != np.uint8 or palette.ndim != 2 or not 1 <= palette.shape[0] <= 256
            or out.dtype != np.uint8 or out.size != h * w * palette.shape[1] or not 1 <= bits <= 8):
        raise PayloadError(f"an output of {out.size} bytes does not fit a {h}x{w} image with a "
                           f"palette of shape {palette.shape} at {bits} bits")
    f = np.zeros(1, np.uint8) if fills is None else np.ascontiguousarray(fills, dtype=np.uint8)
    status = int(_decode_masked_kernel(np.ascontiguousarray(packed, dtype=np.uint8), bits, h, w, p,
                                       keep, f, palette, out.reshape(-1), planar, fills is not None))
    if status == 3:
        raise PayloadError(f"{packed.size} packed bytes end before the last kept pixel at {bits} bits")
    if status == 4:
        raise PayloadError(f"{f.size} fills end before the last dropped patch")
    return status
