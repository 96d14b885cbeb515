"""Pure-NumPy reference implementations of every codec kernel (no Numba).

Written the obvious, slow, clearly correct way, straight from the normative layout in
:mod:`dcqformat.codecs.bitpack`: the property tests check each Numba kernel against these. They
validate nothing beyond what they need; call them with well-formed input.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "decode_many_ref",
    "decode_ref",
    "nearest_ref",
    "pack_ref",
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


def nearest_ref(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour per pixel; squared Euclidean, ties to lowest index.

    Distances accumulate in float64 channel by channel in order (as the kernel does), and
    ``argmin`` returns the first minimum, i.e. the lowest index.
    """
    px = np.asarray(pixels, dtype=np.float32).astype(np.float64)
    pal = np.asarray(palette, dtype=np.float32).astype(np.float64)
    d = np.zeros((px.shape[0], pal.shape[0]), dtype=np.float64)
    for c in range(px.shape[1]):
        diff = px[:, c, None] - pal[None, :, c]
        d += diff * diff
    if d.shape[0] == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.argmin(d, axis=1).astype(np.uint8)
