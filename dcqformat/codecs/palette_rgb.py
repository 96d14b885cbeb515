"""Raw per-case decode loops for 3-channel palettes (see :mod:`dcqformat.codecs.palette` for
their contract: every argument validated by the caller, no bounds checks inside).

``hwc3_q{8,4,2,1}`` / ``chw3_q{8,4,2,1}`` read whole bytes with constant shifts (interleaved HWC /
planar CHW output), ``hwc3_qx`` / ``chw3_qx`` stream q = 3, 5, 6, 7 through a bit accumulator,
``hwc3_q8_words`` / ``chw3_q8_words`` turn four q = 8 pixels into uint32 stores. Each returns
the number of pixels whose index is >= K (written as zeros).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcqformat.codecs.palette_grey import q8_count_bad

__all__ = ["chw3_q1", "chw3_q2", "chw3_q4", "chw3_q8", "chw3_q8_words", "chw3_qx", "hwc3_q1", "hwc3_q2", "hwc3_q4", "hwc3_q8", "hwc3_q8_words", "hwc3_qx"]


@njit(cache=True, nogil=True)
def hwc3_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 8, pixel-interleaved 3-channel output; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 256
    bad = 0
    for p in range(n_pixels):
        idx = np.int64(packed[p])
        o = p * 3
        if check and idx >= n_colors:
            bad += 1
            out[o] = 0
            out[o + 1] = 0
            out[o + 2] = 0
        else:
            out[o] = palette[idx, 0]
            out[o + 1] = palette[idx, 1]
            out[o + 2] = palette[idx, 2]
    return bad


@njit(cache=True, nogil=True)
def hwc3_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 4, pixel-interleaved 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 16
    bad = 0
    for i in range(n_pixels // 2):
        byte = np.int64(packed[i])
        for j in range(2):
            idx = (byte >> (4 * j)) & 15
            o = (i * 2 + j) * 3
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
                out[o + 1] = 0
                out[o + 2] = 0
            else:
                out[o] = palette[idx, 0]
                out[o + 1] = palette[idx, 1]
                out[o + 2] = palette[idx, 2]
    return bad


@njit(cache=True, nogil=True)
def hwc3_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 2, pixel-interleaved 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 4
    bad = 0
    for i in range(n_pixels // 4):
        byte = np.int64(packed[i])
        for j in range(4):
            idx = (byte >> (2 * j)) & 3
            o = (i * 4 + j) * 3
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
                out[o + 1] = 0
                out[o + 2] = 0
            else:
                out[o] = palette[idx, 0]
                out[o + 1] = palette[idx, 1]
                out[o + 2] = palette[idx, 2]
    return bad


@njit(cache=True, nogil=True)
def hwc3_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 1, pixel-interleaved 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 2
    bad = 0
    for i in range(n_pixels // 8):
        byte = np.int64(packed[i])
        for j in range(8):
            idx = (byte >> j) & 1
            o = (i * 8 + j) * 3
            if check and idx >= n_colors:
                bad += 1
                out[o] = 0
                out[o + 1] = 0
                out[o + 2] = 0
            else:
                out[o] = palette[idx, 0]
                out[o + 1] = palette[idx, 1]
                out[o + 2] = palette[idx, 2]
    return bad


@njit(cache=True, nogil=True)
def hwc3_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """Any q (used for 3, 5, 6, 7), pixel-interleaved 3-channel output; returns the number of indices >= K.

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
        o = p * 3
        if check and idx >= n_colors:
            bad += 1
            out[o] = 0
            out[o + 1] = 0
            out[o + 2] = 0
        else:
            out[o] = palette[idx, 0]
            out[o + 1] = palette[idx, 1]
            out[o + 2] = palette[idx, 2]
    return bad


@njit(cache=True, nogil=True)
def chw3_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 8, channel-planar 3-channel output; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 256
    bad = 0
    c0 = out[0:n_pixels]
    c1 = out[n_pixels : 2 * n_pixels]
    c2 = out[2 * n_pixels : 3 * n_pixels]
    for p in range(n_pixels):
        idx = np.int64(packed[p])
        o = p
        if check and idx >= n_colors:
            bad += 1
            c0[o] = 0
            c1[o] = 0
            c2[o] = 0
        else:
            v0 = palette[idx, 0]
            v1 = palette[idx, 1]
            v2 = palette[idx, 2]
            c0[o] = v0
            c1[o] = v1
            c2[o] = v2
    return bad


@njit(cache=True, nogil=True)
def chw3_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 4, channel-planar 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 16
    bad = 0
    c0 = out[0:n_pixels]
    c1 = out[n_pixels : 2 * n_pixels]
    c2 = out[2 * n_pixels : 3 * n_pixels]
    for i in range(n_pixels // 2):
        byte = np.int64(packed[i])
        for j in range(2):
            idx = (byte >> (4 * j)) & 15
            o = i * 2 + j
            if check and idx >= n_colors:
                bad += 1
                c0[o] = 0
                c1[o] = 0
                c2[o] = 0
            else:
                v0 = palette[idx, 0]
                v1 = palette[idx, 1]
                v2 = palette[idx, 2]
                c0[o] = v0
                c1[o] = v1
                c2[o] = v2
    return bad


@njit(cache=True, nogil=True)
def chw3_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 2, channel-planar 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 4
    bad = 0
    c0 = out[0:n_pixels]
    c1 = out[n_pixels : 2 * n_pixels]
    c2 = out[2 * n_pixels : 3 * n_pixels]
    for i in range(n_pixels // 4):
        byte = np.int64(packed[i])
        for j in range(4):
            idx = (byte >> (2 * j)) & 3
            o = i * 4 + j
            if check and idx >= n_colors:
                bad += 1
                c0[o] = 0
                c1[o] = 0
                c2[o] = 0
            else:
                v0 = palette[idx, 0]
                v1 = palette[idx, 1]
                v2 = palette[idx, 2]
                c0[o] = v0
                c1[o] = v1
                c2[o] = v2
    return bad


@njit(cache=True, nogil=True)
def chw3_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 1, channel-planar 3-channel output, whole bytes only; returns the number of indices >= K."""
    n_colors = palette.shape[0]
    check = n_colors < 2
    bad = 0
    c0 = out[0:n_pixels]
    c1 = out[n_pixels : 2 * n_pixels]
    c2 = out[2 * n_pixels : 3 * n_pixels]
    for i in range(n_pixels // 8):
        byte = np.int64(packed[i])
        for j in range(8):
            idx = (byte >> j) & 1
            o = i * 8 + j
            if check and idx >= n_colors:
                bad += 1
                c0[o] = 0
                c1[o] = 0
                c2[o] = 0
            else:
                v0 = palette[idx, 0]
                v1 = palette[idx, 1]
                v2 = palette[idx, 2]
                c0[o] = v0
                c1[o] = v1
                c2[o] = v2
    return bad


@njit(cache=True, nogil=True)
def chw3_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """Any q (used for 3, 5, 6, 7), channel-planar 3-channel output; returns the number of indices >= K.

    Streams the bits through a 64-bit accumulator, reading each byte once and only
    when needed, so it never reads past ``ceil(n_pixels*bits/8)`` bytes.
    """
    n_colors = palette.shape[0]
    check = n_colors < (1 << bits)
    mask = (1 << bits) - 1
    bad = 0
    c0 = out[0:n_pixels]
    c1 = out[n_pixels : 2 * n_pixels]
    c2 = out[2 * n_pixels : 3 * n_pixels]
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
            c0[o] = 0
            c1[o] = 0
            c2[o] = 0
        else:
            v0 = palette[idx, 0]
            v1 = palette[idx, 1]
            v2 = palette[idx, 2]
            c0[o] = v0
            c1[o] = v1
            c2[o] = v2
    return bad


@njit(cache=True, nogil=True)
def hwc3_q8_words(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 8, interleaved RGB: four pixels (12 bytes) become three little-endian uint32 stores
    built from a 256-entry RGB-word table (indices >= K map to zero words); ~2x faster than
    three byte stores per pixel. Returns the number of indices >= K."""
    n_colors = palette.shape[0]
    rgb = np.zeros(256, np.uint32)
    for k in range(n_colors):
        rgb[k] = (np.uint32(palette[k, 0]) | (np.uint32(palette[k, 1]) << np.uint32(8))
                  | (np.uint32(palette[k, 2]) << np.uint32(16)))
    n4 = n_pixels // 4
    w = out[: n4 * 12].view(np.uint32)
    for i in range(n4):
        a = rgb[packed[4 * i]]
        b = rgb[packed[4 * i + 1]]
        c = rgb[packed[4 * i + 2]]
        d = rgb[packed[4 * i + 3]]
        w[3 * i] = a | (b << np.uint32(24))
        w[3 * i + 1] = (b >> np.uint32(8)) | (c << np.uint32(16))
        w[3 * i + 2] = (c >> np.uint32(16)) | (d << np.uint32(8))
    for p in range(n4 * 4, n_pixels):
        v = rgb[packed[p]]
        out[3 * p] = v & np.uint32(255)
        out[3 * p + 1] = (v >> np.uint32(8)) & np.uint32(255)
        out[3 * p + 2] = v >> np.uint32(16)
    return q8_count_bad(packed, n_pixels, n_colors)


@njit(cache=True, nogil=True)
def chw3_q8_words(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
    """q = 8, planar RGB: per channel, four pixels become one little-endian uint32 store from
    a 256-entry channel table (indices >= K map to zero). Returns the number of indices >= K."""
    n_colors = palette.shape[0]
    table = np.zeros((3, 256), np.uint32)
    for k in range(n_colors):
        for c in range(3):
            table[c, k] = palette[k, c]
    n4 = n_pixels // 4
    for c in range(3):
        base = c * n_pixels
        tc = table[c]
        w = out[base: base + n4 * 4].view(np.uint32)
        for i in range(n4):
            w[i] = (tc[packed[4 * i]] | (tc[packed[4 * i + 1]] << np.uint32(8))
                    | (tc[packed[4 * i + 2]] << np.uint32(16)) | (tc[packed[4 * i + 3]] << np.uint32(24)))
        for p in range(n4 * 4, n_pixels):
            out[base + p] = tc[packed[p]]
    return q8_count_bad(packed, n_pixels, n_colors)


