"""Patch masks of the .dcq format (spec ``dcq-v1.md`` §13, feature ``patch-mask``).

A masked file cuts every sample into a grid of ``P``×``P`` patches (the last row and column
clipped at the image border), stores a bit-packed keep mask per sample, the palette indices of
the kept patches only, one fill palette index per dropped patch and the drop ratio θ the encoder
chose. This module holds everything about that feature:

- the grid arithmetic (:func:`grid_shape`, :func:`patch_areas`) and mask packing
  (:func:`pack_mask`, :func:`unpack_mask`: the bit order of a q = 1 index map);
- the kernels, each with a pure-NumPy reference that the tests compare against:
  ``_gather_kernel`` (full index map -> kept indices in patch order, for the writer),
  ``_decode_masked_kernel`` (packed kept indices -> pixels, fills included, in one pass; at 8
  bits through the identity palette it is the scatter of :func:`scatter_kept`) and
  ``_mask_stats_kernel``
  (per-sample kept patches, kept pixels and the padding check, at open);
- :class:`MaskWriter` (what :class:`~dcqformat.DCQWriter` uses when given ``patch_size``),
  :func:`read_masks` (validation at open) and :func:`decode_sample` (the reader's hot path).

Order of the kept pixels (normative): kept patches in raster order of the patch grid, inside each
patch its pixels in raster order.
"""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from dcqformat.errors import InvalidArgumentError, PayloadError, StructureError

if TYPE_CHECKING:
    import h5py

    from dcqformat.format.validate import FileMetadata

FEATURE = "patch-mask"
GROUP = "masks"
ATTR_PATCH_SIZE = "patch_size"
DS_KEEP = "keep"
DS_FILL = "fill"
DS_THETA = "theta"
MAX_PATCH = 1 << 16
#: Fill modes of a decode: the stored fill colour (default) or zeros.
FILLS = ("stored", "zero")
_IDENTITY = np.arange(256, dtype=np.uint8).reshape(256, 1)  # index -> itself (scatter_kept)

__all__ = [
    "FEATURE", "FILLS", "MaskTable", "MaskWriter", "grid_shape", "patch_areas", "pack_mask",
    "unpack_mask", "gather_kept", "scatter_kept", "most_common_fills", "pixel_mask",
    "decode_sample", "read_masks", "mask_stats", "check_patch_size",
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

    Returns 0 on success, 1 when a kept index is >= K, 2 when a fill index is >= K."""
    k = palette.shape[0]
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
                        v = np.int64(packed[byte]) >> sh
                        if sh + bits > 8:
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
                v = np.int64(fills[d])
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


# ----------------------------------------------------------------------------- NumPy references


def _order(h: int, w: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices in patch order (patches raster, pixels raster) and their patch ids."""
    pid = patch_ids(h, w, p).reshape(-1)
    perm = np.argsort(pid, kind="stable")
    return perm, pid[perm]


def gather_reference(idx: np.ndarray, p: int, keep: np.ndarray) -> np.ndarray:
    """NumPy reference of :func:`gather_kept` (``keep`` boolean ``[G]``)."""
    h, w = idx.shape
    perm, pids = _order(h, w, p)
    return np.asarray(idx).reshape(-1)[perm][np.asarray(keep, bool)[pids]]


def scatter_reference(kept: np.ndarray, h: int, w: int, p: int, keep: np.ndarray,
                      fills: np.ndarray | None) -> np.ndarray:
    """NumPy reference of :func:`scatter_kept` (``fills`` None: zeros in dropped patches)."""
    keep = np.asarray(keep, bool)
    perm, pids = _order(h, w, p)
    out = np.zeros(h * w, np.uint8)
    out[perm[keep[pids]]] = kept
    if fills is not None:
        dropped = np.flatnonzero(~keep)
        fill_of = np.zeros(keep.size, np.uint8)
        fill_of[dropped] = fills
        pid = patch_ids(h, w, p).reshape(-1)
        sel = ~keep[pid]
        out[sel] = fill_of[pid[sel]]
    return out.reshape(h, w)


def mask_stats_reference(keep: np.ndarray, heights: np.ndarray, widths: np.ndarray, p: int
                         ) -> tuple[np.ndarray, np.ndarray, int]:
    """NumPy reference of :func:`mask_stats`."""
    offsets = mask_offsets(heights, widths, p)
    kp = np.zeros(len(heights), np.int64)
    px = np.zeros(len(heights), np.int64)
    bad = -1
    for i, (h, w) in enumerate(zip(heights.tolist(), widths.tolist(), strict=True)):
        g = int(np.prod(grid_shape(h, w, p)))
        bits = np.unpackbits(keep[offsets[i]:offsets[i + 1]], bitorder="little").astype(bool)
        kp[i] = bits[:g].sum()
        px[i] = patch_areas(h, w, p).reshape(-1)[bits[:g]].sum()
        if bad < 0 and bits[g:].any():
            bad = i
    return kp, px, bad


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
    packed = _packed_keep(keep)
    f = np.zeros(1, np.uint8) if fills is None else np.ascontiguousarray(fills, dtype=np.uint8)
    out = np.empty(h * w, np.uint8)
    # the decode kernel at 8 bits through the identity palette is exactly the scatter
    _decode_masked_kernel(np.ascontiguousarray(kept, dtype=np.uint8), 8, h, w, p, packed, f,
                          _IDENTITY, out, False, fills is not None)
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
    n = offsets.size - 1
    kp = np.zeros(n, np.int64)
    px = np.zeros(n, np.int64)
    bad = _mask_stats_kernel(np.ascontiguousarray(keep, np.uint8), offsets,
                             np.asarray(heights, np.int64), np.asarray(widths, np.int64), int(p), kp, px)
    return kp, px, int(bad)


# ----------------------------------------------------------------------------- the table


@dataclass
class MaskTable:
    """The validated ``/masks`` section of an open file."""

    patch_size: int
    keep: np.ndarray  # uint8, all masks concatenated
    mask_offsets: np.ndarray  # int64 [N + 1]
    n_patches: np.ndarray  # int64 [N]
    kept_patches: np.ndarray  # int64 [N]
    kept_pixels: np.ndarray  # int64 [N]
    fill: np.ndarray  # uint8, all fills concatenated
    fill_offsets: np.ndarray  # int64 [N + 1]
    theta: np.ndarray  # float32 [N]

    def sample_keep(self, i: int) -> np.ndarray:
        """Bit-packed mask bytes of sample ``i`` (a view)."""
        return self.keep[self.mask_offsets[i]:self.mask_offsets[i + 1]]

    def sample_fills(self, i: int) -> np.ndarray:
        """Fill indices of sample ``i``'s dropped patches (a view)."""
        return self.fill[self.fill_offsets[i]:self.fill_offsets[i + 1]]

    def grid(self, i: int, h: int, w: int) -> np.ndarray:
        """Boolean keep grid ``[gh, gw]`` of sample ``i`` (``h``×``w`` pixels)."""
        gh, gw = grid_shape(h, w, self.patch_size)
        return unpack_mask(self.sample_keep(i), gh * gw).reshape(gh, gw)


def read_masks(h5: h5py.File, meta: FileMetadata, where: str, features: list[str],
               sections: dict[str, int]) -> MaskTable | None:
    """Validate ``/masks`` against the samples of ``meta`` (heights, widths, lengths already
    range-checked); None for a file without masks. Raises a DcqError subclass naming the
    dataset and what was found."""
    import h5py

    from dcqformat.format import validate as V

    listed = FEATURE in features
    group = h5.get(GROUP)
    if group is None:
        if listed:
            raise StructureError(f"{where}: must_understand lists {FEATURE!r} but group '/{GROUP}' is missing")
        return None
    if not listed:  # spec §9: reserved paths are ignored unless must_understand lists them
        return None
    if not isinstance(group, h5py.Group):
        raise StructureError(f"{where}: '/{GROUP}' must be a group, found {type(group).__name__}")
    if ATTR_PATCH_SIZE not in group.attrs:
        raise StructureError(f"{where}: '/{GROUP}' attribute {ATTR_PATCH_SIZE!r} is missing")
    raw_p = np.asarray(group.attrs[ATTR_PATCH_SIZE])
    if raw_p.shape != () or not np.issubdtype(raw_p.dtype, np.integer) or not 1 <= int(raw_p) <= MAX_PATCH:
        raise StructureError(
            f"{where}: '/{GROUP}' attribute {ATTR_PATCH_SIZE!r} must be an integer in 1..{MAX_PATCH}, found {raw_p!r}")
    p = int(raw_p)
    n = meta.num_samples
    heights = meta.height.astype(np.int64)
    widths = meta.width.astype(np.int64)
    offsets = mask_offsets(heights, widths, p)
    keep = V._array(group, DS_KEEP, where, np.dtype("u1"), None, sections)
    if keep.ndim != 1 or keep.shape[0] != int(offsets[-1]):
        raise StructureError(
            f"{where}: dataset '/{GROUP}/{DS_KEEP}' must be 1-D of {int(offsets[-1])} bytes "
            f"(ceil(patches/8) per sample at patch_size {p}), found shape {keep.shape}")
    kept_patches, kept_pixels, bad = mask_stats(keep, heights, widths, p)
    if bad >= 0:
        raise StructureError(
            f"{where}: sample {bad}: the padding bits of its mask in '/{GROUP}/{DS_KEEP}' are not zero "
            f"(last mask byte {int(keep[offsets[bad + 1] - 1]):#04x})")
    n_patches = (-(-heights // p)) * (-(-widths // p))
    dropped = n_patches - kept_patches
    fill_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(dropped, out=fill_offsets[1:])
    fill = V._array(group, DS_FILL, where, np.dtype("u1"), (int(fill_offsets[-1]),), sections)
    if fill.size and int(fill.max()) >= meta.palette_size:
        j = int(np.argmax(fill >= meta.palette_size))
        i = int(np.searchsorted(fill_offsets, j, side="right") - 1)
        raise StructureError(
            f"{where}: sample {i}: '/{GROUP}/{DS_FILL}'[{j}] is fill index {int(fill[j])}, "
            f">= palette_size {meta.palette_size}")
    theta = V._array(group, DS_THETA, where, np.dtype("<f4"), (n,), sections)
    bad_theta = ~np.isfinite(theta) | (theta < 0) | (theta > 1)
    if bad_theta.any():
        i = int(np.argmax(bad_theta))
        raise StructureError(
            f"{where}: sample {i}: '/{GROUP}/{DS_THETA}' is {float(theta[i])!r}, expected 0 <= theta <= 1")
    expected = (kept_pixels * meta.bits + 7) // 8
    length = meta.length.astype(np.int64)
    if meta.payload_encoding == "raw":
        wrong = length != expected
        if wrong.any():
            i = int(np.argmax(wrong))
            raise StructureError(
                f"{where}: sample {i}: raw payload length {int(length[i])} != ceil(S*bits/8) = "
                f"{int(expected[i])} for its {int(kept_pixels[i])} kept pixels")
    elif (length < 1).any():
        i = int(np.argmax(length < 1))
        raise StructureError(f"{where}: sample {i}: zstd payload length is 0")
    for arr in (keep, fill, theta):
        arr.setflags(write=False)
    return MaskTable(p, keep, offsets, n_patches, kept_patches, kept_pixels, fill, fill_offsets,
                     theta.astype(np.float32))


def decode_sample(t: MaskTable, i: int, packed: np.ndarray, bits: int, h: int, w: int,
                  palette: np.ndarray, out: np.ndarray, planar: bool, fill: str, where: str) -> None:
    """Decode masked sample ``i`` from its packed kept indices into the flat ``out``."""
    status = _decode_masked_kernel(packed, bits, h, w, t.patch_size, t.sample_keep(i),
                                   t.sample_fills(i), palette, out.reshape(-1), planar,
                                   fill == "stored")
    if status == 1:
        raise PayloadError(f"{where}: sample {i} holds a kept palette index >= palette_size {palette.shape[0]}")
    if status == 2:
        raise PayloadError(f"{where}: sample {i} has a fill index >= palette_size {palette.shape[0]}")


def check_fill(fill: Any) -> str:
    """``fill`` as one of :data:`FILLS`, else :class:`InvalidArgumentError`."""
    if fill not in FILLS:
        raise InvalidArgumentError(f"fill must be one of {FILLS}, got {fill!r}")
    return str(fill)


# ----------------------------------------------------------------------------- writing


@dataclass
class PreparedMask:
    """One sample's checked mask data, ready to append."""

    kept: np.ndarray
    keep_bytes: bytes
    fills: bytes
    theta: float


class MaskWriter:
    """Accumulates the ``/masks`` section while :class:`~dcqformat.DCQWriter` streams samples."""

    def __init__(self, patch_size: Any) -> None:
        self.patch_size = check_patch_size(patch_size)
        self.keep = bytearray()
        self.fill = bytearray()
        self.theta = array("f")

    def prepare(self, idx: np.ndarray, keep_mask: Any, fills: Any, theta: Any, palette_size: int,
                sample: int) -> PreparedMask:
        """Check one sample's mask arguments against its ``[H, W]`` index map; no state changes.

        ``keep_mask``: boolean ``[gh, gw]`` (or ``[G]``), None = every patch kept.
        ``fills``: one palette index per dropped patch (raster order), None = the most common
        index of each dropped patch. ``theta``: the drop ratio, None = dropped / G."""
        p = self.patch_size
        h, w = idx.shape
        gh, gw = grid_shape(h, w, p)
        g = gh * gw
        if keep_mask is None:
            keep = np.ones(g, bool)
        else:
            k = np.asarray(keep_mask)
            if k.shape not in ((gh, gw), (g,)):
                raise InvalidArgumentError(
                    f"sample {sample}: keep_mask must have shape ({gh}, {gw}) for a {h}x{w} image at "
                    f"patch_size {p}, got {k.shape}")
            if k.dtype != bool and not (np.issubdtype(k.dtype, np.integer) and np.isin(k, (0, 1)).all()):
                raise InvalidArgumentError(f"sample {sample}: keep_mask must be boolean (or 0/1), got {k.dtype}")
            keep = k.astype(bool).reshape(-1)
        n_drop = int(g - keep.sum())
        if fills is None:
            fill_arr = most_common_fills(idx, p, keep, palette_size)
        else:
            try:
                f = np.asarray(fills).reshape(-1)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"sample {sample}: fills must be integers") from None
            if f.size != n_drop:
                raise InvalidArgumentError(
                    f"sample {sample}: fills must hold one index per dropped patch ({n_drop}), got {f.size}")
            if f.size and (not np.issubdtype(f.dtype, np.integer) or int(f.min()) < 0
                           or int(f.max()) >= palette_size):
                raise InvalidArgumentError(
                    f"sample {sample}: fills must be integers in 0..{palette_size - 1}, got {f.dtype} "
                    f"{f.min() if f.size else ''}..{f.max() if f.size else ''}")
            fill_arr = f.astype(np.uint8)
        if theta is None:
            t = n_drop / g
        else:
            try:
                t = float(theta)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"sample {sample}: theta must be a number, got {theta!r}") from None
            if not (math.isfinite(t) and 0.0 <= t <= 1.0):
                raise InvalidArgumentError(f"sample {sample}: theta must be in [0, 1], got {theta!r}")
        packed = pack_mask(keep)
        return PreparedMask(gather_kept(idx, p, packed), packed.tobytes(), fill_arr.tobytes(), t)

    def commit(self, prep: PreparedMask) -> None:
        """Append a prepared sample (after its payload was written)."""
        self.keep += prep.keep_bytes
        self.fill += prep.fills
        self.theta.append(prep.theta)

    def write(self, h5: h5py.Group, write_array: Callable[..., None]) -> None:
        """Create ``/masks`` (attribute, three datasets with their CRC-32) in ``h5``."""
        g = h5.create_group(GROUP)
        g.attrs[ATTR_PATCH_SIZE] = np.uint32(self.patch_size)
        write_array(g, DS_KEEP, np.frombuffer(bytes(self.keep), np.uint8), compress=True)
        write_array(g, DS_FILL, np.frombuffer(bytes(self.fill), np.uint8), compress=True)
        write_array(g, DS_THETA, np.frombuffer(self.theta, np.float32).astype("<f4"), compress=True)


# ----------------------------------------------------------------------------- reports


def mask_report(meta: FileMetadata) -> dict[str, Any]:
    """The ``patch_mask`` entry of ``dcqformat info``: kept fractions and the bytes dropping saved.

    ``bitpacked_bytes_saved`` = Σ ceil(H·W·q/8) − Σ ceil(S·q/8) (what the payload would hold
    without masks minus what it holds, before any zstd); ``net_bytes_saved`` subtracts the
    storage of the ``/masks`` datasets."""
    t: MaskTable = meta.masks
    pixels = meta.height.astype(np.int64) * meta.width.astype(np.int64)
    unmasked = int(((pixels * meta.bits + 7) // 8).sum())
    kept = int(((t.kept_pixels * meta.bits + 7) // 8).sum())
    section = sum(v for k, v in meta.section_bytes.items() if k.startswith(f"/{GROUP}/"))
    patches = int(t.n_patches.sum())
    return {
        "patch_size": t.patch_size,
        "patches": patches,
        "kept_patches": int(t.kept_patches.sum()),
        "kept_patch_fraction": float(t.kept_patches.sum() / patches) if patches else 1.0,
        "kept_pixel_fraction": float(t.kept_pixels.sum() / pixels.sum()) if pixels.sum() else 1.0,
        "mean_theta": float(t.theta.mean()) if t.theta.size else 0.0,
        "samples_with_drops": int((t.kept_patches < t.n_patches).sum()),
        "bitpacked_bytes_unmasked": unmasked,
        "bitpacked_bytes_kept": kept,
        "bitpacked_bytes_saved": unmasked - kept,
        "mask_section_bytes": int(section),
        "net_bytes_saved": unmasked - kept - int(section),
        "payload_encoding": meta.payload_encoding,
    }


def mask_report_lines(r: dict[str, Any]) -> list[str]:
    """Text lines of :func:`mask_report` for ``dcqformat info``."""
    return [
        f"  patch masks (P={r['patch_size']}): kept {r['kept_patches']} of {r['patches']} patches "
        f"({100 * r['kept_patch_fraction']:.1f}%, {100 * r['kept_pixel_fraction']:.1f}% of pixels), "
        f"mean theta {r['mean_theta']:.3f}, {r['samples_with_drops']} samples with drops",
        f"    saved {r['bitpacked_bytes_saved']} of {r['bitpacked_bytes_unmasked']} bit-packed payload "
        f"bytes; masks cost {r['mask_section_bytes']} B; net {r['net_bytes_saved']} B"
        + (" (before zstd: dropped patches are often flat background that zstd stores almost for "
           "free, so compare with an unmasked file for the real saving)"
           if r.get("payload_encoding") == "zstd" else ""),
    ]
