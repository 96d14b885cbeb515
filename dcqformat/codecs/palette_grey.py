"""Raw decode loops for 1-channel palettes and the generic strided loop (contract: see
:mod:`dcqformat.codecs.palette`; every argument validated by the caller).

``decode_strided`` decodes any channel count and layout from a pixel offset (the last partial
byte of q = 1, 2, 4, channel counts other than 1 and 3); ``c1_q{8,4,2,1,x}`` are the grey loops;
``q8_count_bad`` counts q = 8 indices >= K.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["decode_strided", "q8_count_bad", "c1_q1", "c1_q2", "c1_q4", "c1_q8", "c1_qx"]


@njit(cache=True, nogil=True)
def decode_strided(  # type: ignore[no-untyped-def]
    packed, bits, p_start, p_end, n_pixels, palette, out, pixel_stride, channel_stride
):
    """Decode pixels ``p_start..p_end-1`` by random access, for any channel count.

    Pixel ``p`` channel ``c`` goes to ``out[p*pixel_stride + c*channel_stride]``. Used for the
    last partial group of the fast paths and for channel counts other than 1 and 3. Reads the
    second byte of a pixel only when the pixel actually crosses into it, so it never reads past
    ``ceil(n_pixels*bits/8)`` bytes. Returns the number of indices >= K.
    """
    n_colors = palette.shape[0]
    ch = palette.shape[1]
    check = n_colors < (1 << bits)
    mask = (1 << bits) - 1
    bad = 0
    for p in range(p_start, p_end):
        bit = p * bits
        byte = bit >> 3
        shift = bit & 7
        word = np.int64(packed[byte])
        if shift + bits > 8:
            word |= np.int64(packed[byte + 1]) << 8
        idx = (word >> shift) & mask
        o = p * pixel_stride
        if check and idx >= n_colors:
            bad += 1
            for c in range(ch):
                out[o + c * channel_stride] = 0
        else:
            for c in range(ch):
                out[o + c * channel_stride] = palette[idx, c]
    return bad


@njit(cache=True, nogil=True)
def c1_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 8, 1-channel output (HWC and CHW coincide); returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 256
    bad = 0
    for p in range(n_pixels):
        idx = np.int64(packed[p])
        o = p
        if check and idx >= n_colors:
            bad += 1
            out[o] = 0
        else:
            out[o] = palette[idx, 0]
    return bad


@njit(cache=True, nogil=True)
def c1_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 4, 1-channel output (HWC and CHW coincide), whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 16
    bad = 0
    for i in range(n_pixels // 2):
        byte = np.int64(packed[i])
        for j in range(2):
            idx = (byte >> (4 * j)) & 15
            o = i * 2 + j
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
            else:
                out[o] = palette[idx, 0]
    return bad


@njit(cache=True, nogil=True)
def c1_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 2, 1-channel output (HWC and CHW coincide), whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 4
    bad = 0
    for i in range(n_pixels // 4):
        byte = np.int64(packed[i])
        for j in range(4):
            idx = (byte >> (2 * j)) & 3
            o = i * 4 + j
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
            else:
                out[o] = palette[idx, 0]
    return bad


@njit(cache=True, nogil=True)
def c1_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 1, 1-channel output (HWC and CHW coincide), whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 2
    bad = 0
    for i in range(n_pixels // 8):
        byte = np.int64(packed[i])
        for j in range(8):
            idx = (byte >> j) & 1
            o = i * 8 + j
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
            else:
                out[o] = palette[idx, 0]
    return bad


@njit(cache=True, nogil=True)
def c1_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """Any q (used for 3, 5, 6, 7), 1-channel output (HWC and CHW coincide); returns the number of indices >= K.

    Streams the bits through a 64-bit accumulator, reading each byte once and only
    when needed, so it never reads past ``ceil(n_pixels*bits/8)`` bytes.
    """
    n_colors = palette.shape[0]
    check = n_colors < (1 << bits)
    mask = (1 << bits) - 1
    bad = 0
    acc = np.int64(0)
    n_acc = 0
    ib = 0
    for p in range(n_pixels):
        if n_acc < bits:
            acc |= np.int64(packed[ib]) << n_acc
            ib += 1
            n_acc += 8
        idx = acc & mask
        acc >>= bits
        n_acc -= bits
        o = p
        if check and idx >= n_colors:
            bad += 1
            out[o] = 0
        else:
            out[o] = palette[idx, 0]
    return bad


@njit(cache=True, nogil=True)
def q8_count_bad(packed, n_pixels, n_colors):  # type: ignore[no-untyped-def]
    """q = 8: how many of the ``n_pixels`` index bytes are >= K (``n_colors``); 0 when K is 256."""
    bad = 0
    if n_colors < 256:
        for p in range(n_pixels):
            bad += packed[p] >= n_colors
    return bad


