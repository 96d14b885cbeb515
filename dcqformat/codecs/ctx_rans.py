"""The rANS coder of the ``ctx`` payload encoding (spec ``dcq-v1.md`` §14.5).

One sample is one stream: a 32-bit state x with 2**23 <= x < 2**31 (``STATE_LOW`` = 2**23),
byte-wise renormalisation, 12-bit probabilities. Decoding, normative::

    x = the stream's first 4 bytes, little-endian; refuse x outside [2**23, 2**31)
    for each stored pixel p in order (rectangle by rectangle, each row-major):
        row   = the model row of (model of the sample, context of p); refuse a missing row
        slot  = x mod 4096
        s     = the symbol with cum[s] <= slot < cum[s] + freq[s]
        x     = freq[s] * (x >> 12) + slot - cum[s]
        while x < 2**23: x = x * 256 + next byte  (refuse when the stream has none left)
        index of p = the index whose rank symbol is s
    refuse unless x == 2**23 and every byte of the stream was read

The renormalisation loop runs at most twice per pixel (freq >= 1), every loop is bounded by the
pixel count, and every byte read is checked against the stream length, so a hostile stream or
model can only make the kernels return an error code, never read or write out of bounds.

Kernels (``@njit(cache=True, nogil=True)``) return a status; the wrappers in
:mod:`dcqformat.codecs.ctx` turn a status into a ``PayloadError``. Status codes: ``OK`` = 0,
``BAD_START`` (shorter than 4 bytes or the first state out of range), ``TRUNCATED`` (the stream
ended before the last pixel), ``NO_ROW`` (a context the model does not store), ``BAD_END`` (the
final state is not 2**23), ``TRAILING`` (bytes left after the last pixel), ``NO_FREQ`` (encoder:
a symbol of frequency 0).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcqformat.codecs.ctx_context import context_of, from_rank, neighbours, to_rank

STATE_LOW = 1 << 23
STATE_BYTES = 4
OK, BAD_START, TRUNCATED, NO_ROW, BAD_END, TRAILING, NO_FREQ = range(7)
STATUS_TEXT = {
    BAD_START: "the stream is shorter than 4 bytes or its first state is outside [2**23, 2**31)",
    TRUNCATED: "the stream ends before the last pixel (truncated)",
    NO_ROW: "a pixel's context has no row in the model",
    BAD_END: "the final coder state is not 2**23 (corrupt stream or model)",
    TRAILING: "bytes follow the end of the stream",
    NO_FREQ: "a symbol has frequency 0 in its model row",
}

__all__ = ["OK", "STATE_BYTES", "STATE_LOW", "STATUS_TEXT", "ctx_decode_batch_kernel", "ctx_decode_kernel",
           "ctx_decode_pixels_kernel", "ctx_encode_kernel", "decode_core", "gather_palette",
           "pack_into"]


@njit(cache=True, nogil=True)
def ctx_encode_kernel(values, rect_h, rect_w, row_of, model_base, freq, cum, rows, syms, out):  # type: ignore[no-untyped-def]
    """Encode ``values`` (the rectangles' indices one after another) into the tail of ``out``
    (at least 4 + 2 * n + 4 bytes). ``rows``/``syms`` are int32 scratch of n entries.

    Returns ``(start, status)``: the stream is ``out[start:]`` when status is OK."""
    n = values.shape[0]
    base = 0
    p = 0
    for r in range(rect_h.shape[0]):
        h = rect_h[r]
        w = rect_w[r]
        for y in range(h):
            for x in range(w):
                vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours(values, base, w, y, x)
                row = row_of[model_base + context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww)]
                if row < 0:
                    return 0, NO_ROW
                s = to_rank(np.int64(values[p]), vw, vn, vnw, vne)
                if freq[row, s] == 0:
                    return 0, NO_FREQ
                rows[p] = row
                syms[p] = s
                p += 1
        base += h * w
    x = np.int64(STATE_LOW)
    pos = out.shape[0]
    for p in range(n - 1, -1, -1):
        row = rows[p]
        s = syms[p]
        f = np.int64(freq[row, s])
        limit = f << 19  # ((STATE_LOW >> 12) << 8) * f
        while x >= limit:
            pos -= 1
            out[pos] = x & 0xFF
            x >>= 8
        x = ((x // f) << 12) + (x % f) + cum[row, s]
    for j in range(STATE_BYTES - 1, -1, -1):
        pos -= 1
        out[pos] = (x >> (8 * j)) & 0xFF
    return pos, OK


@njit(cache=True, nogil=True, inline="always")
def decode_core(stream, start, length, rect_h, rect_w, r0, r1, row_of, model_base, freq, cum,
                 out, o0):  # type: ignore[no-untyped-def]
    """Decode the stream ``stream[start:start + length]`` into ``out[o0:]`` (one uint8 index
    per pixel of rectangles r0..r1-1). Returns a status code."""
    if length < STATE_BYTES:
        return BAD_START
    end = start + length
    x = (np.int64(stream[start]) | (np.int64(stream[start + 1]) << 8)
         | (np.int64(stream[start + 2]) << 16) | (np.int64(stream[start + 3]) << 24))
    if x < STATE_LOW or x >= (np.int64(STATE_LOW) << 8):
        return BAD_START
    pos = start + STATE_BYTES
    k = freq.shape[1]
    base = o0
    for r in range(r0, r1):
        h = rect_h[r]
        w = rect_w[r]
        for y in range(h):
            for xx in range(w):
                vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours(out, base, w, y, xx)
                row = row_of[model_base + context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww)]
                if row < 0:
                    return NO_ROW
                slot = x & 0xFFF
                s = 0
                while s < k - 1 and slot >= cum[row, s + 1]:
                    s += 1
                x = np.int64(freq[row, s]) * (x >> 12) + slot - cum[row, s]
                while x < STATE_LOW:
                    if pos >= end:
                        return TRUNCATED
                    x = (x << 8) | np.int64(stream[pos])
                    pos += 1
                out[base + y * w + xx] = from_rank(s, vw, vn, vnw, vne)
        base += h * w
    if x != STATE_LOW:
        return BAD_END
    if pos != end:
        return TRAILING
    return OK


@njit(cache=True, nogil=True)
def ctx_decode_kernel(stream, start, length, rect_h, rect_w, row_of, model_base, freq, cum, out):  # type: ignore[no-untyped-def]
    """Decode one sample's stream into ``out`` (uint8, exactly its stored pixels)."""
    return decode_core(stream, start, length, rect_h, rect_w, 0, rect_h.shape[0], row_of,
                        model_base, freq, cum, out, 0)


@njit(cache=True, nogil=True)
def pack_into(idx, n, bits, out, o):  # type: ignore[no-untyped-def]
    """Pack ``idx[:n]`` as the §5 q-bit little-endian stream into ``out[o:o + ceil(n*bits/8)]``
    (padding bits zero)."""
    acc = np.int64(0)
    have = 0
    pos = o
    for p in range(n):
        acc |= np.int64(idx[p]) << have
        have += bits
        while have >= 8:
            out[pos] = acc & 0xFF
            acc >>= 8
            have -= 8
            pos += 1
    if have > 0:
        out[pos] = acc & 0xFF


@njit(cache=True, nogil=True)
def gather_palette(idx, n, palette, out, o, planar):  # type: ignore[no-untyped-def]
    """Palette lookup of ``idx[:n]`` into ``out[o:o + n*ch]`` (HWC, or CHW when planar)."""
    ch = palette.shape[1]
    if planar:
        for c in range(ch):
            b = o + c * n
            for p in range(n):
                out[b + p] = palette[idx[p], c]
    elif ch == 3:
        for p in range(n):
            v = idx[p]
            q = o + 3 * p
            out[q] = palette[v, 0]
            out[q + 1] = palette[v, 1]
            out[q + 2] = palette[v, 2]
    else:
        for p in range(n):
            v = idx[p]
            for c in range(ch):
                out[o + p * ch + c] = palette[v, c]


@njit(cache=True, nogil=True)
def ctx_decode_pixels_kernel(stream, start, length, h, w, row_of, model_base, freq, cum, palette,
                          out, planar):  # type: ignore[no-untyped-def]
    """Decode one unmasked H x W sample straight to pixels in ``out`` (H*W*ch bytes)."""
    rect_h = np.full(1, h, np.int64)
    rect_w = np.full(1, w, np.int64)
    idx = np.empty(h * w, np.uint8)
    status = decode_core(stream, start, length, rect_h, rect_w, 0, 1, row_of, model_base, freq,
                          cum, idx, 0)
    if status == OK:
        gather_palette(idx, h * w, palette, out, 0, planar)
    return status


@njit(cache=True, nogil=True)
def ctx_decode_batch_kernel(stream, starts, lengths, heights, widths, model_bases, row_of, freq,
                         cum, bits, palettes, clusters, out, out_offsets, mode):  # type: ignore[no-untyped-def]
    """Decode many unmasked samples in one call.

    ``mode`` 0: write each sample's packed q-bit map (§5) at ``out[out_offsets[b]:]``;
    1: pixels HWC; 2: pixels CHW (``palettes[clusters[b]]``). Returns ``-1`` or
    ``b * 8 + status`` of the first sample that fails (decoding stops there)."""
    n = starts.shape[0]
    top = 0
    for b in range(n):
        top = max(top, heights[b] * widths[b])
    idx = np.empty(top, np.uint8)
    rect_h = np.empty(1, np.int64)
    rect_w = np.empty(1, np.int64)
    for b in range(n):
        rect_h[0] = heights[b]
        rect_w[0] = widths[b]
        npx = heights[b] * widths[b]
        status = decode_core(stream, starts[b], lengths[b], rect_h, rect_w, 0, 1, row_of,
                              model_bases[b], freq, cum, idx, 0)
        if status != OK:
            return b * 8 + status
        o = out_offsets[b]
        if mode == 0:
            pack_into(idx, npx, bits, out, o)
        else:
            gather_palette(idx, npx, palettes[clusters[b]], out, o, mode == 2)
    return -1

