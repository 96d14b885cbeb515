"""Palette decode: unpack q-bit indices and gather palette colours in one pass.

This is the decode hot path. :func:`decode_into` decodes one sample into a caller-provided
uint8 buffer, :func:`decode_many_into` decodes a batch of samples from one contiguous payload in
a single Numba call. Both validate every size, offset and id in Python first and then call a raw
kernel; the kernels do no bounds checks (Numba does none), so a bad argument must never reach them.

Output layouts (``ch`` = number of palette channels, ``n`` = number of pixels):

* ``planar=False`` -- pixel-interleaved HWC: pixel ``p`` channel ``c`` at ``out[p*ch + c]``;
* ``planar=True`` -- channel-planar CHW: pixel ``p`` channel ``c`` at ``out[c*n + p]``.

A pixel whose index is ``>= K`` (possible only when the palette has ``K < 2**bits`` colours) is
counted as invalid and written as all-zero channels; the palette is never read out of bounds.

Raw kernels (call them only with arguments validated exactly as the wrappers do):

``_decode_kernel(packed, bits, n_pixels, palette, out, planar) -> int``
    ``packed`` 1-D uint8 with at least ``ceil(n_pixels*bits/8)`` bytes, ``bits`` in 1..8,
    ``palette`` C-contiguous uint8 ``(K, ch)`` with ``1 <= K <= 256``, ``out`` 1-D uint8 of
    exactly ``n_pixels*ch`` elements. Returns the number of pixels with an index ``>= K``.
``_decode_many_kernel(payload, offsets, n_pixels, palette_ids, palettes, bits, out, out_offsets,
planar) -> int``
    Per-sample preconditions as above on ``payload[offsets[i]:]``, ``palettes[palette_ids[i]]``,
    ``out[out_offsets[i]:out_offsets[i] + n_pixels[i]*ch]``. Returns -1 or the position of the
    first sample with an invalid index (decoding stops there).

Kernel organisation: ``_decode_kernel`` dispatches on (channels, layout, bits) to one small
loop per case -- ``_{hwc3,chw3,c1}_q{8,4,2,1}`` read whole bytes with constant shifts (no
cross-byte reads), ``_{hwc3,chw3,c1}_qx`` stream q = 3, 5, 6, 7 through a bit accumulator, and
``_decode_strided`` handles the last partial byte of q = 1, 2, 4 and channel counts other than
1 and 3. Large images (at least 8,192 planar / 16,384 interleaved pixels) at q = 1, 2, 4
take ``_decode_by_table`` instead: a 256-entry table maps each packed byte to whole output words
(one 8-, 4- or 2-byte store per byte and channel), 3-6x faster at 224 px. Separate functions (rather than one big one, or Numba ``inline="always"``) keep every
loop tight and the one-time compilation (cached on disk by ``cache=True``) short. Note that a
read-only ``packed`` (e.g. a read-only memory map) is a different Numba type from a writable one
and compiles (once) a second specialisation.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from numba import njit

from dcqformat.codecs.bitpack import _U8, _as_packed_array, _check_count, check_bits
from dcqformat.errors import InvalidArgumentError, PayloadError

__all__ = ["decode_into", "decode_many_into"]


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _decode_strided(  # type: ignore[no-untyped-def]
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
def _hwc3_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _hwc3_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _hwc3_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _hwc3_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _hwc3_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _chw3_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _chw3_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _chw3_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _chw3_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _chw3_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _c1_q8(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _c1_q4(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _c1_q2(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _c1_q1(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _c1_qx(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
def _q8_count_bad(packed, n_pixels, n_colors):  # type: ignore[no-untyped-def]
    bad = 0
    if n_colors < 256:
        for p in range(n_pixels):
            bad += packed[p] >= n_colors
    return bad


@njit(cache=True, nogil=True)
def _hwc3_q8_words(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
    return _q8_count_bad(packed, n_pixels, n_colors)


@njit(cache=True, nogil=True)
def _chw3_q8_words(packed, bits, n_pixels, palette, out):  # type: ignore[no-untyped-def]
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
    return _q8_count_bad(packed, n_pixels, n_colors)


#: Byte-table decoding pays for building its 256-entry table (~10-25 µs) from this many pixels
#: on (measured at 32-224 px: per-pixel unpacking costs ~2 ns planar, ~1 ns interleaved).
_TABLE_MIN_PIXELS_PLANAR = 8192
_TABLE_MIN_PIXELS_INTERLEAVED = 16384
_LITTLE_ENDIAN = sys.byteorder == "little"


@njit(cache=True, nogil=True)
def _byte_table(bits, palette, planar, table, bad_per_byte):  # type: ignore[no-untyped-def]
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
def _table_decode(packed, n_bytes, table, words, planar, ch, any_bad, bad_per_byte):  # type: ignore[no-untyped-def]
    """Write one table word per packed byte and channel (see :func:`_byte_table`); returns the
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
def _decode_by_table(packed, bits, n_pixels, palette, out, planar):  # type: ignore[no-untyped-def]
    """q = 1, 2 or 4 with ``n_pixels`` a multiple of ``8 // q``: each packed byte becomes one
    word of ``8 // q`` bytes per channel, read from a 256-entry table built for this palette
    (6-9x faster than per-pixel unpacking at 224 px). Little-endian machines only."""
    ch = palette.shape[1]
    n_bytes = n_pixels // (8 // bits)
    bad_per_byte = np.zeros(256, np.int64)
    if bits == 1:
        t1 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint64)
        any_bad = _byte_table(bits, palette, planar, t1, bad_per_byte)
        return _table_decode(packed, n_bytes, t1, out.view(np.uint64), planar, ch, any_bad, bad_per_byte)
    if bits == 2:
        t2 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint32)
        any_bad = _byte_table(bits, palette, planar, t2, bad_per_byte)
        return _table_decode(packed, n_bytes, t2, out.view(np.uint32), planar, ch, any_bad, bad_per_byte)
    t4 = np.zeros((ch, 256) if (planar or ch == 1) else (256, 3), np.uint16)
    any_bad = _byte_table(bits, palette, planar, t4, bad_per_byte)
    return _table_decode(packed, n_bytes, t4, out.view(np.uint16), planar, ch, any_bad, bad_per_byte)


@njit(cache=True, nogil=True)
def _decode_kernel(packed, bits, n_pixels, palette, out, planar):  # type: ignore[no-untyped-def]
    """Raw decode kernel; see the module docstring for its preconditions.

    Dispatches on (channels, layout, bits) to a specialised loop; the q = 1, 2, 4 loops handle
    whole bytes and the last partial byte goes through :func:`_decode_strided`.
    """
    ch = palette.shape[1]
    if (_LITTLE_ENDIAN and (ch == 1 or ch == 3) and (bits == 1 or bits == 2 or bits == 4)
            and n_pixels % (8 // bits) == 0
            and n_pixels >= (_TABLE_MIN_PIXELS_PLANAR if (planar or ch == 1)
                             else _TABLE_MIN_PIXELS_INTERLEAVED)):
        return _decode_by_table(packed, bits, n_pixels, palette, out, planar)
    if ch == 3:
        if planar:
            if bits == 8:
                if _LITTLE_ENDIAN:
                    return _chw3_q8_words(packed, bits, n_pixels, palette, out)
                return _chw3_q8(packed, bits, n_pixels, palette, out)
            if bits == 4:
                bad = _chw3_q4(packed, bits, n_pixels, palette, out)
            elif bits == 2:
                bad = _chw3_q2(packed, bits, n_pixels, palette, out)
            elif bits == 1:
                bad = _chw3_q1(packed, bits, n_pixels, palette, out)
            else:
                return _chw3_qx(packed, bits, n_pixels, palette, out)
            ps = 1
            cs = n_pixels
        else:
            if bits == 8:
                if _LITTLE_ENDIAN:
                    return _hwc3_q8_words(packed, bits, n_pixels, palette, out)
                return _hwc3_q8(packed, bits, n_pixels, palette, out)
            if bits == 4:
                bad = _hwc3_q4(packed, bits, n_pixels, palette, out)
            elif bits == 2:
                bad = _hwc3_q2(packed, bits, n_pixels, palette, out)
            elif bits == 1:
                bad = _hwc3_q1(packed, bits, n_pixels, palette, out)
            else:
                return _hwc3_qx(packed, bits, n_pixels, palette, out)
            ps = 3
            cs = 1
    elif ch == 1:
        if bits == 8:
            return _c1_q8(packed, bits, n_pixels, palette, out)
        if bits == 4:
            bad = _c1_q4(packed, bits, n_pixels, palette, out)
        elif bits == 2:
            bad = _c1_q2(packed, bits, n_pixels, palette, out)
        elif bits == 1:
            bad = _c1_q1(packed, bits, n_pixels, palette, out)
        else:
            return _c1_qx(packed, bits, n_pixels, palette, out)
        ps = 1
        cs = n_pixels
    else:
        if planar:
            return _decode_strided(packed, bits, 0, n_pixels, n_pixels, palette, out, 1, n_pixels)
        return _decode_strided(packed, bits, 0, n_pixels, n_pixels, palette, out, ch, 1)
    done = (n_pixels // (8 // bits)) * (8 // bits)
    if done < n_pixels:
        bad += _decode_strided(packed, bits, done, n_pixels, n_pixels, palette, out, ps, cs)
    return bad


@njit(cache=True, nogil=True)
def _decode_many_kernel(  # type: ignore[no-untyped-def]
    payload, offsets, n_pixels, palette_ids, palettes, bits, out, out_offsets, planar
):
    """Raw batched decode kernel; see the module docstring for its preconditions."""
    ch = palettes.shape[2]
    for i in range(offsets.shape[0]):
        n = n_pixels[i]
        start = out_offsets[i]
        bad = _decode_kernel(
            payload[offsets[i] :],
            bits,
            n,
            palettes[palette_ids[i]],
            out[start : start + n * ch],
            planar,
        )
        if bad != 0:
            return i
    return -1


# ---------------------------------------------------------------------------------------------
# Validated wrappers
# ---------------------------------------------------------------------------------------------


def _check_palette(palette: Any, ndim: int, name: str) -> np.ndarray:
    """Check a uint8 C-contiguous palette array of ``ndim`` dims with 1..256 colours."""
    if (
        type(palette) is np.ndarray
        and palette.dtype is _U8
        and palette.ndim == ndim
        and palette.flags.c_contiguous
        and 1 <= palette.shape[-2] <= 256
        and palette.shape[-1] >= 1
    ):  # fast path
        return palette
    if not isinstance(palette, np.ndarray):
        raise InvalidArgumentError(
            f"{name} must be a numpy uint8 array, got {type(palette).__name__}"
        )
    if palette.dtype != np.uint8 or palette.ndim != ndim:
        raise InvalidArgumentError(
            f"{name} must be a {ndim}-D uint8 array, got dtype {palette.dtype} "
            f"with shape {palette.shape}"
        )
    if not palette.flags.c_contiguous:
        raise InvalidArgumentError(f"{name} must be C-contiguous")
    k = palette.shape[-2]
    if not 1 <= k <= 256:
        raise InvalidArgumentError(f"{name} must have 1..256 colours, got {k}")
    if palette.shape[-1] < 1:
        raise InvalidArgumentError(
            f"{name} must have at least one channel, got shape {palette.shape}"
        )
    if type(palette) is not np.ndarray:
        palette = palette.view(np.ndarray)
    return palette


def _check_out(out: Any, need: int | None) -> np.ndarray:
    """Check ``out`` is a writable C-contiguous uint8 array (of ``need`` elements); return it 1-D."""
    if type(out) is np.ndarray and out.dtype is _U8 and (need is None or out.size == need):
        flags = out.flags
        if flags.c_contiguous and flags.writeable:  # fast path
            return out if out.ndim == 1 else out.reshape(-1)
    if not isinstance(out, np.ndarray):
        raise InvalidArgumentError(f"out must be a numpy uint8 array, got {type(out).__name__}")
    if out.dtype != np.uint8:
        raise InvalidArgumentError(f"out must have dtype uint8, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise InvalidArgumentError("out must be C-contiguous")
    if not out.flags.writeable:
        raise InvalidArgumentError("out must be writeable")
    if need is not None and out.size != need:
        raise InvalidArgumentError(
            f"out has {out.size} elements, expected exactly {need} (n_pixels * channels)"
        )
    if type(out) is not np.ndarray:
        out = out.view(np.ndarray)
    return out.reshape(-1)


def decode_into(
    packed: np.ndarray,
    bits: int,
    n_pixels: int,
    palette: np.ndarray,
    out: np.ndarray,
    planar: bool,
) -> int:
    """Decode one packed index map into ``out`` through ``palette``.

    Parameters
    ----------
    packed
        1-D uint8 array with at least ``packed_size(n_pixels, bits)`` bytes (extra bytes are
        ignored); bytes-like objects are accepted.
    bits
        Bits per index, 1..8.
    n_pixels
        Number of pixels (H*W).
    palette
        C-contiguous uint8 array of shape ``(K, ch)``, ``1 <= K <= 256``.
    out
        Writable C-contiguous uint8 array of exactly ``n_pixels * ch`` elements, any shape
        (e.g. ``(H, W, ch)`` for HWC or ``(ch, H, W)`` for planar).
    planar
        False: pixel-interleaved HWC; True: channel-planar CHW.

    Returns
    -------
    int
        The number of pixels whose index is ``>= K`` (written as zeros); 0 means success.

    Raises :class:`InvalidArgumentError` for bad arguments and :class:`PayloadError` if
    ``packed`` is too short.
    """
    q = check_bits(bits)
    n = _check_count(n_pixels, "n_pixels")
    arr = _as_packed_array(packed)
    pal = _check_palette(palette, 2, "palette")
    ch = pal.shape[1]
    flat = _check_out(out, n * ch)
    need = (n * q + 7) // 8
    if arr.size < need:
        raise PayloadError(
            f"packed index map has {arr.size} bytes, needs {need} for {n} pixels at {q} bits"
        )
    return int(_decode_kernel(arr, q, n, pal, flat, bool(planar)))


def _as_int64_vector(x: Any, name: str, length: int | None) -> np.ndarray:
    """Return ``x`` as a 1-D C-contiguous int64 array (integer dtypes only)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "ui" or arr.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be a 1-D integer array, got dtype {arr.dtype} with shape {arr.shape}"
        )
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InvalidArgumentError(f"{name} holds values beyond the int64 range")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if length is not None and arr.size != length:
        raise InvalidArgumentError(f"{name} has {arr.size} entries, expected {length}")
    return arr


def _first(mask: np.ndarray) -> int:
    """Index of the first True in ``mask``."""
    return int(np.flatnonzero(mask)[0])


def decode_many_into(
    payload: np.ndarray,
    offsets: np.ndarray,
    n_pixels: np.ndarray,
    palette_ids: np.ndarray,
    palettes: np.ndarray,
    bits: int,
    out: np.ndarray,
    out_offsets: np.ndarray,
    planar: bool,
) -> int:
    """Decode B samples from one contiguous payload in a single kernel call.

    Sample ``i`` is read from ``payload[offsets[i] : offsets[i] + packed_size(n_pixels[i], bits)]``,
    decoded through ``palettes[palette_ids[i]]`` (shape ``(K, ch)``) and written to
    ``out[out_offsets[i] : out_offsets[i] + n_pixels[i] * ch]`` in HWC or (``planar=True``) CHW
    layout. ``offsets``, ``n_pixels``, ``palette_ids`` and ``out_offsets`` are 1-D integer arrays
    of length B (converted to int64); ``palettes`` is a C-contiguous uint8 array ``(C, K, ch)``;
    ``out`` a writable C-contiguous uint8 array (any shape, addressed flat).

    Returns -1 if every index was below K, else the position (0..B-1) of the first sample with
    an index ``>= K``; decoding stops at that sample and later samples are left unwritten.

    Every offset, length and palette id is checked before the kernel runs: a sample whose bytes
    lie outside ``payload`` raises :class:`PayloadError`, a palette id outside ``0..C-1`` or an
    output range outside ``out`` raises :class:`InvalidArgumentError`; the message names the
    sample position.
    """
    q = check_bits(bits)
    data = _as_packed_array(payload, "payload")
    pals = _check_palette(palettes, 3, "palettes")
    if pals.shape[0] < 1:
        raise InvalidArgumentError("palettes must hold at least one palette")
    ch = pals.shape[2]
    flat = _check_out(out, None)
    offs = _as_int64_vector(offsets, "offsets", None)
    b = offs.size
    npx = _as_int64_vector(n_pixels, "n_pixels", b)
    pids = _as_int64_vector(palette_ids, "palette_ids", b)
    oofs = _as_int64_vector(out_offsets, "out_offsets", b)
    if b == 0:
        return -1

    bad = npx < 0
    if bad.any():
        i = _first(bad)
        raise InvalidArgumentError(f"sample {i}: n_pixels must be >= 0, got {npx[i]}")
    bad = offs < 0
    if bad.any():
        i = _first(bad)
        raise PayloadError(f"sample {i}: payload offset {offs[i]} is negative")
    # n*q <= 8*len(payload) must hold for the sample to fit at all; checking it first keeps
    # the size arithmetic below far from int64 overflow.
    bad = npx > (8 * data.size) // q
    if bad.any():
        i = _first(bad)
        raise PayloadError(
            f"sample {i}: {npx[i]} pixels at {q} bits need more bytes than the whole "
            f"payload ({data.size} bytes)"
        )
    sizes = (npx * q + 7) // 8
    bad = offs > data.size - sizes
    if bad.any():
        i = _first(bad)
        raise PayloadError(
            f"sample {i}: bytes [{offs[i]}, {int(offs[i]) + int(sizes[i])}) lie past the end of the "
            f"payload ({data.size} bytes)"
        )
    bad = (pids < 0) | (pids >= pals.shape[0])
    if bad.any():
        i = _first(bad)
        raise InvalidArgumentError(
            f"sample {i}: palette id {pids[i]} is outside 0..{pals.shape[0] - 1}"
        )
    bad = npx > flat.size // ch
    if bad.any():
        i = _first(bad)
        raise InvalidArgumentError(
            f"sample {i}: {npx[i]} pixels x {ch} channels do not fit in out ({flat.size} elements)"
        )
    bad = (oofs < 0) | (oofs > flat.size - npx * ch)
    if bad.any():
        i = _first(bad)
        raise InvalidArgumentError(
            f"sample {i}: output range [{oofs[i]}, {int(oofs[i]) + int(npx[i]) * ch}) lies outside out "
            f"({flat.size} elements)"
        )
    return int(_decode_many_kernel(data, offs, npx, pids, pals, q, flat, oofs, bool(planar)))
