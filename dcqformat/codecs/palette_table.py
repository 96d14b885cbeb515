"""Byte-table decode of large q = 1, 2, 4 images: a 256-entry table maps each packed byte to
whole output words (one 8-, 4- or 2-byte store per byte and channel), 3-6x faster at 224 px
than per-pixel loops. Contract as in :mod:`dcqformat.codecs.palette`.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

__all__ = ["decode_by_table", "TABLE_MIN_PIXELS_PLANAR", "TABLE_MIN_PIXELS_INTERLEAVED",
           "LITTLE_ENDIAN"]

#: Byte-table decoding pays for building its 256-entry table (~10-25 µs) from this many pixels
#: on (measured at 32-224 px: per-pixel unpacking costs ~2 ns planar, ~1 ns interleaved).
TABLE_MIN_PIXELS_PLANAR = 8192
TABLE_MIN_PIXELS_INTERLEAVED = 16384
LITTLE_ENDIAN = sys.byteorder == "little"


@njit(cache=True, nogil=True)
def byte_table(bits, palette, planar, table, bad_per_byte):  # type: ignore[no-untyped-def]
    """Fill ``table`` with what each possible packed byte decodes to, as little-endian words.

    Planar (and 1-channel): ``table[c, b]`` holds the ``8 // bits`` channel-``c`` bytes of byte
    ``b``. Interleaved: ``table[b, t]`` holds output bytes ``t*per .. t*per + per - 1`` of the
    ``3 * per`` interleaved bytes of byte ``b``. An index >= K decodes to zeros and is counted in
    ``bad_per_byte[b]``; returns whether any byte value holds such an index.
    """
    per = 8 // bits
    mask = (1 << bits) - 1
    n_colors = palette.shape[0]
    ch = palette.shape[1]
    any_bad = False
    for b in range(256):
        for j in range(per):
            if ((b >> (bits * j)) & mask) >= n_colors:
                bad_per_byte[b] += 1
                any_bad = True
        if planar or ch == 1:
            for c in range(ch):
                acc = np.uint64(0)
                for j in range(per):
                    idx = (b >> (bits * j)) & mask
                    if idx < n_colors:
                        acc |= np.uint64(palette[idx, c]) << np.uint64(8 * j)
                table[c, b] = acc
        else:
            for t in range(3):
                acc = np.uint64(0)
                for k in range(t * per, t * per + per):
                    idx = (b >> (bits * (k // 3))) & mask
                    if idx < n_colors:
                        acc |= np.uint64(palette[idx, k % 3]) << np.uint64(8 * (k - t * per))
                table[b, t] = acc
    return any_bad


@njit(cache=True, nogil=True)
def table_decode(packed, n_bytes, table, words, planar, ch, any_bad, bad_per_byte):  # type: ignore[no-untyped-def]
    """Write one table word per packed byte and channel (see :func:`byte_table`); returns the
    number of indices >= K."""
    if planar or ch == 1:
        for c in range(ch):
            base = c * n_bytes
            tc = table[c]
            for i in range(n_bytes):
                words[base + i] = tc[packed[i]]
    else:
        for i in range(n_bytes):
            b = packed[i]
            words[3 * i] = table[b, 0]
            words[3 * i + 1] = table[b, 1]
            words[3 * i + 2] = table[b, 2]
    bad = 0
    if any_bad:
        for i in range(n_bytes):
            bad += bad_per_byte[packed[i]]
    return bad


@njit(cache=True, nogil=True)
def decode_by_table(packed, bits, n_pixels, palette, out, planar):  # type: ignore[no-untyped-def]
    """q = 1, 2 or 4 with ``n_pixels`` a multiple of ``8 // q``: each packed byte becomes one
    word of ``8 // q`` bytes per channel, read from a 256-entry table built for this palette
    (6-9x faster than per-pixel unpacking at 224 px). Little-endian machines only."""
    ch = palette.shape[1]
    n_bytes = n_pixels // (8 // bits)
    bad_per_byte = np.zeros(256, np.int64)
    if bits == 1:
        t1 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint64)
        any_bad = byte_table(bits, palette, planar, t1, bad_per_byte)
        return table_decode(packed, n_bytes, t1, out.view(np.uint64), planar, ch, any_bad, bad_per_byte)
    if bits == 2:
        t2 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint32)
        any_bad = byte_table(bits, palette, planar, t2, bad_per_byte)
        return table_decode(packed, n_bytes, t2, out.view(np.uint32), planar, ch, any_bad, bad_per_byte)
    t4 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint16)
    any_bad = byte_table(bits, palette, planar, t4, bad_per_byte)
    return table_decode(packed, n_bytes, t4, out.view(np.uint16), planar, ch, any_bad, bad_per_byte)


