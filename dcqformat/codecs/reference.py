"""Pure-NumPy reference implementations of every codec kernel (no Numba).

Written the obvious, slow, clearly correct way, straight from the normative layout in
:mod:`dcqformat.codecs.bitpack`: the property tests check each Numba kernel against these. They
validate nothing beyond what they need; call them with well-formed input.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cache_scatter_ref",
    "decode_many_ref",
    "decode_masked_ref",
    "decode_ref",
    "gather_palette_ref",
    "gather_ref",
    "mask_stats_ref",
    "masked_status_ref",
    "pack_ref",
    "q8_count_bad_ref",
    "scatter_ref",
    "table_slots_ref",
    "take_ref",
    "unpack_ref",
]


def pack_ref(indices: np.ndarray, bits: int) -> np.ndarray:
    """Pack indices (each < 2**bits) LSB-first into a little-endian bit stream.

    Every value contributes its ``bits`` bits, least significant first; the concatenated bits
    are packed with ``np.packbits(bitorder="little")``, which zero-fills the padding.
    """
    values = np.asarray(indices).reshape(-1).astype(np.int64)
    bit_matrix = (values[:, None] >> np.arange(bits)) & 1  # (n, bits), LSB first
    return np.packbits(bit_matrix.astype(np.uint8).reshape(-1), bitorder="little")


def unpack_ref(packed: np.ndarray, n_pixels: int, bits: int) -> np.ndarray:
    """Unpack ``n_pixels`` indices of ``bits`` bits (inverse of :func:`pack_ref`)."""
    stream = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    bit_matrix = stream[: n_pixels * bits].reshape(n_pixels, bits).astype(np.int64)
    values = (bit_matrix << np.arange(bits)).sum(axis=1)
    return values.astype(np.uint8)


def decode_ref(
    packed: np.ndarray, bits: int, n_pixels: int, palette: np.ndarray, planar: bool
) -> tuple[np.ndarray, int]:
    """Decode to a flat uint8 array (HWC, or CHW if ``planar``) plus the count of indices >= K.

    Pixels with an index >= K decode to all-zero channels.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    n_colors, ch = palette.shape
    idx = unpack_ref(packed, n_pixels, bits).astype(np.int64)
    invalid = idx >= n_colors
    pixels = palette[np.where(invalid, 0, idx)]  # (n, ch)
    pixels[invalid] = 0
    if planar:
        pixels = pixels.T
    return np.ascontiguousarray(pixels).reshape(-1), int(invalid.sum())


def decode_many_ref(
    payload: np.ndarray,
    offsets: np.ndarray,
    n_pixels: np.ndarray,
    palette_ids: np.ndarray,
    palettes: np.ndarray,
    bits: int,
    out_size: int,
    out_offsets: np.ndarray,
    planar: bool,
) -> tuple[np.ndarray, int]:
    """Decode a batch sample by sample with :func:`decode_ref`.

    Returns a zero-initialised flat output of ``out_size`` bytes with every sample up to the
    first invalid one written in, and -1 or the position of that first invalid sample.
    """
    out = np.zeros(out_size, dtype=np.uint8)
    ch = palettes.shape[2]
    for i in range(len(offsets)):
        n = int(n_pixels[i])
        size = (n * bits + 7) // 8
        start = int(offsets[i])
        pixels, bad = decode_ref(
            payload[start : start + size], bits, n, palettes[int(palette_ids[i])], planar
        )
        o = int(out_offsets[i])
        out[o : o + n * ch] = pixels
        if bad:
            return out, i
    return out, -1


def q8_count_bad_ref(packed: np.ndarray, n_pixels: int, n_colors: int) -> int:
    """How many of the first ``n_pixels`` bytes of ``packed`` (q = 8 indices) are >= K."""
    return int((np.asarray(packed, np.uint8)[:n_pixels].astype(np.int64) >= n_colors).sum())


def table_slots_ref(palette_ids: np.ndarray, n_pixels: np.ndarray, bits: int, min_pixels: int
                    ) -> tuple[np.ndarray, int]:
    """Which samples of a batch share a byte table: a palette gets one when its samples whose
    pixel count is a whole number of bytes (a multiple of 8 // bits) hold at least
    ``min_pixels`` pixels in all; tables are numbered in increasing palette id. Returns each
    sample's table (-1: none, also for a sample whose count is not whole bytes) and how many."""
    ids = [int(v) for v in palette_ids]
    whole = [int(n) % (8 // bits) == 0 for n in n_pixels]
    total = {u: 0 for u in ids}
    for u, n, ok in zip(ids, n_pixels, whole, strict=True):
        total[u] += int(n) if ok else 0
    table = {u: t for t, u in enumerate(sorted(u for u in total if total[u] >= min_pixels))}
    slot = [table.get(u, -1) if ok else -1 for u, ok in zip(ids, whole, strict=True)]
    return np.array(slot, np.int64), len(table)


def gather_palette_ref(idx: np.ndarray, palette: np.ndarray, planar: bool) -> np.ndarray:
    """The colours of the (valid) indices ``idx`` as one flat HWC or, if ``planar``, CHW array."""
    pixels = np.asarray(palette, np.uint8)[np.asarray(idx).reshape(-1)]
    return np.ascontiguousarray(pixels.T if planar else pixels).reshape(-1)


# -- the decoded-map cache (kernels in dcqformat.format.cache) ------------------------------


def take_ref(src: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranges ``src[start:start + length]`` one after another, and where each begins
    (``[B + 1]`` offsets, the last the total)."""
    parts = [np.asarray(src)[int(s):int(s) + int(n)] for s, n in zip(starts, lengths, strict=True)]
    offsets = np.array([0, *np.cumsum([p.size for p in parts], dtype=np.int64)], np.int64)
    return (np.concatenate(parts) if parts else np.empty(0, np.uint8)).astype(np.uint8), offsets


def cache_scatter_ref(src: np.ndarray, src_offsets: np.ndarray, dst: np.ndarray,
                      dst_offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """A copy of ``dst`` with part b of ``src`` (``src_offsets[b]:src_offsets[b + 1]``) written
    at ``dst_offsets[idx[b]]``, for b in order (a later part wins where two overlap)."""
    out = np.array(dst, np.uint8, copy=True)
    for b, i in enumerate(np.asarray(idx).tolist()):
        part = np.asarray(src)[int(src_offsets[b]):int(src_offsets[b + 1])]
        out[int(dst_offsets[i]):int(dst_offsets[i]) + part.size] = part
    return out


# -- patch masks (spec §13; kernels in dcqformat.codecs.patches) ------------------------------


def _patch_of_pixel(h: int, w: int, p: int) -> np.ndarray:
    """Patch number ``(y // p) * ceil(w / p) + x // p`` of every pixel, raveled row-major."""
    gw = -(-w // p)
    ys, xs = np.divmod(np.arange(h * w, dtype=np.int64), w)
    return (ys // p) * gw + xs // p


def _patch_order(h: int, w: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices in patch order (patches raster, pixels raster) and their patch ids."""
    pid = _patch_of_pixel(h, w, p)
    perm = np.argsort(pid, kind="stable")
    return perm, pid[perm]


def gather_ref(idx: np.ndarray, p: int, keep: np.ndarray) -> np.ndarray:
    """The indices of the kept patches of ``idx`` ``[H, W]`` in patch order (``keep`` boolean
    ``[G]``, row-major over the patch grid)."""
    h, w = idx.shape
    perm, pids = _patch_order(h, w, p)
    return np.asarray(idx).reshape(-1)[perm][np.asarray(keep, bool).reshape(-1)[pids]]


def scatter_ref(kept: np.ndarray, h: int, w: int, p: int, keep: np.ndarray,
                fills: np.ndarray | None) -> np.ndarray:
    """The ``[h, w]`` index map from the kept indices (patch order) and one fill per dropped
    patch (None: zeros in dropped patches)."""
    keep = np.asarray(keep, bool).reshape(-1)
    perm, pids = _patch_order(h, w, p)
    out = np.zeros(h * w, np.uint8)
    out[perm[keep[pids]]] = kept
    if fills is not None:
        fill_of = np.zeros(keep.size, np.uint8)
        fill_of[np.flatnonzero(~keep)] = fills
        pid = _patch_of_pixel(h, w, p)
        dropped = ~keep[pid]
        out[dropped] = fill_of[pid[dropped]]
    return out.reshape(h, w)


def decode_masked_ref(packed: np.ndarray, bits: int, h: int, w: int, p: int, keep: np.ndarray,
                      fills: np.ndarray | None, palette: np.ndarray, planar: bool) -> np.ndarray:
    """Decode a masked sample to a flat uint8 array (HWC, or CHW if ``planar``): unpack the kept
    indices, scatter them (:func:`scatter_ref`) and look every pixel up in ``palette``; dropped
    patches take their fill's colour, or zeros when ``fills`` is None."""
    keep = np.asarray(keep, bool).reshape(-1)
    areas = np.bincount(_patch_of_pixel(h, w, p), minlength=keep.size)
    kept = unpack_ref(packed, int(areas[keep].sum()), bits)
    index_map = scatter_ref(kept, h, w, p, keep, fills)
    pixels = np.asarray(palette, np.uint8)[index_map.reshape(-1)]
    if fills is None:
        pixels[~keep[_patch_of_pixel(h, w, p)]] = 0
    return np.ascontiguousarray(pixels.T if planar else pixels).reshape(-1)


def mask_stats_ref(keep: np.ndarray, heights: np.ndarray, widths: np.ndarray, p: int
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per sample the kept patches and kept pixels of the concatenated masks ``keep`` (each
    sample's ceil(G/8) bytes, in order), and the first sample whose padding bits are not zero
    (or -1)."""
    kp = np.zeros(len(heights), np.int64)
    px = np.zeros(len(heights), np.int64)
    bad, start = -1, 0
    for i, (h, w) in enumerate(zip(np.asarray(heights).tolist(), np.asarray(widths).tolist(), strict=True)):
        g = (-(-h // p)) * (-(-w // p))
        n_bytes = (g + 7) // 8
        bits = np.unpackbits(np.asarray(keep[start:start + n_bytes], np.uint8), bitorder="little").astype(bool)
        areas = np.bincount(_patch_of_pixel(h, w, p), minlength=g)
        kp[i] = bits[:g].sum()
        px[i] = areas[bits[:g]].sum()
        if bad < 0 and bits[g:].any():
            bad = i
        start += n_bytes
    return kp, px, bad


def masked_status_ref(packed: np.ndarray, bits: int, h: int, w: int, p: int, keep: np.ndarray,
                      fills: np.ndarray | None, n_colors: int) -> int:
    """The verdict of decoding a masked sample, walking the patches in raster order and each kept
    patch's pixels in raster order: 3 when a kept pixel's index is not wholly inside ``packed``,
    1 when it is >= K; for a dropped patch (with ``fills``) 4 when ``fills`` has no entry left,
    2 when its fill is >= K; the first such event decides, else 0."""
    keep = np.asarray(keep, bool).reshape(-1)
    areas = np.bincount(_patch_of_pixel(h, w, p), minlength=keep.size)
    stream = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")
    pos = dropped = 0
    for g in range(keep.size):
        if keep[g]:
            for _ in range(int(areas[g])):
                if (pos + 1) * bits > stream.size:
                    return 3
                if int((stream[pos * bits:(pos + 1) * bits].astype(np.int64) << np.arange(bits)).sum()) >= n_colors:
                    return 1
                pos += 1
        elif fills is not None:
            if dropped >= len(fills):
                return 4
            if int(fills[dropped]) >= n_colors:
                return 2
            dropped += 1
    return 0
