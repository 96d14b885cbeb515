"""Decoding kernels of the ``ctx`` payload encoding (spec ``dcq-v1.md`` §14.4), the reader's
hot path: one sample to indices, one sample to pixels, a batch to packed maps or pixels.

:func:`decode_rect` decodes one rectangle. Rows 0 and 1, the first two and the last column take
the general path (the eight neighbours with their border fall-backs, :func:`neighbours_u`); every
other pixel takes the interior path: the six context bits that involve only the rows above are
computed for the whole row first (a loop without dependencies), and the four that involve W or
WW per pixel, with W, WW, N, NW kept in registers (one load per pixel). Indices into arrays are
``uint64``: Numba then emits no negative-index wrap-around code, which made the signed version
2-4x slower. The coder state and the byte position are checked exactly as in the spec; a hostile
stream or model only produces a status code (see :mod:`dcqformat.codecs.ctx_rans`): every read
is inside the rectangle's decoded pixels, ``entry`` (the caller checks the model id),
``cum`` (every offset ``entry`` holds starts a stored row) or ``stream[start:start + length]``.

On the interior path the W bits of the next pixel's context are carried over: after symbol 0
the next pixel's W and WW are both this pixel's W, so [N=W] and [NW=W] follow from this pixel's
[NE=W] and [N=W] and [WW=W] is 1; only [NE=W] is compared anew.

``cum`` is the model's flat int32 table ``[R * (K + 1)]`` of cumulative frequencies.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcqformat.codecs.ctx_context import context_of, from_rank
from dcqformat.codecs.ctx_rans import (
    BAD_END,
    BAD_START,
    NO_ROW,
    OK,
    STATE_BYTES,
    STATE_LOW,
    TRAILING,
    TRUNCATED,
)
from dcqformat.codecs.gather import gather_palette

U = np.uint64

__all__ = ["ctx_decode_batch_kernel", "ctx_decode_kernel", "ctx_decode_pixels_kernel",
           "decode_rect", "pack_into"]


@njit(cache=True, nogil=True, inline="always")
def _eq(a, b):  # type: ignore[no-untyped-def]
    """1 if a == b else 0, branch-free (int64 arguments)."""
    return ((a ^ b) - 1) >> 63 & 1


@njit(cache=True, nogil=True, inline="always")
def neighbours_u(m, p, w, y, x):  # type: ignore[no-untyped-def]
    """The eight neighbours (§14.2) of pixel (y, x) stored at ``m[p]`` in a rectangle of width
    ``w`` (``p`` and ``w`` uint64)."""
    one = U(1)
    two = U(2)
    if x > 0:
        vw = np.int64(m[p - one])
    elif y > 0:
        vw = np.int64(m[p - w])
    else:
        vw = np.int64(0)
    if y > 0:
        vn = np.int64(m[p - w])
        vnw = np.int64(m[p - w - one]) if x > 0 else vn
        vne = np.int64(m[p - w + one]) if U(x) + one < w else vn
        vnww = np.int64(m[p - w - two]) if x > 1 else vnw
    else:
        vn = vw
        vnw = vn
        vne = vn
        vnww = vnw
    vnn = np.int64(m[p - two * w]) if y > 1 else vn
    vww = np.int64(m[p - two]) if x > 1 else vw
    vnne = np.int64(m[p - two * w + one]) if y > 1 and U(x) + one < w else vne
    return vw, vn, vnw, vne, vnn, vww, vnne, vnww


@njit(cache=True, nogil=True, inline="always")
def _rank1(vw, vn, vnw, vne):  # type: ignore[no-untyped-def]
    """The index of rank symbol 1 (:func:`from_rank` for s = 1), written as selects: the first
    of N, NW, NE that differs from W, else (all equal: D = (W)) the smallest index other than
    W."""
    v = np.int64(1) if vw == 0 else np.int64(0)
    v = vne if vne != vw else v
    v = vnw if vnw != vw else v
    return vn if vn != vw else v


@njit(cache=True, nogil=True, inline="always")
def _symbol_above(x, tb, cum, k):  # type: ignore[no-untyped-def]
    """:func:`_symbol` when the slot is known not to be symbol 0's."""
    slot = x & 0xFFF
    s = 1
    while s < k - 1 and slot >= cum[tb + U(s + 1)]:
        s += 1
    lo = np.int64(cum[tb + U(s)])
    return s, (np.int64(cum[tb + U(s + 1)]) - lo) * (x >> 12) + slot - lo


@njit(cache=True, nogil=True, inline="always")
def _symbol(x, tb, cum, k):  # type: ignore[no-untyped-def]
    """One decoding step without renormalisation: (symbol, new state). ``tb`` is the row's
    offset in ``cum``; symbol 0 (the usual one) is tested first."""
    slot = x & 0xFFF
    c1 = np.int64(cum[tb + U(1)])
    if slot < c1:
        return 0, c1 * (x >> 12) + slot
    return _symbol_above(x, tb, cum, k)


@njit(cache=True, nogil=True)
def decode_rect(stream, pos, end, x, h, w, entry, model_base, cum, k, out, base, above):  # type: ignore[no-untyped-def]
    """Decode one h x w rectangle into ``out[base:base + h*w]`` from ``stream[pos:end]`` with
    coder state ``x``; ``entry`` maps model_base + context to the row's offset in ``cum``
    (-1: not stored, :attr:`CtxModel.entry`); ``above`` is uint16 scratch of at least w
    entries.

    Returns ``(x, pos, status)``: status OK, NO_ROW or TRUNCATED (``pos`` then may exceed end;
    no byte at or past ``end`` was read)."""
    uw = U(w)
    mb = U(model_base)
    low = np.int64(STATE_LOW)
    for y in range(h):
        rowp = U(base) + U(y) * uw
        fast = y >= 2 and w >= 4
        up = rowp - uw if y > 0 else rowp  # (only used when fast)
        if fast:  # the context bits of the rows above, for columns 2..w-2 (vectorisable)
            r1 = out[up:up + uw]
            r2 = out[up - uw:up]
            for xx in range(2, w - 1):
                ux = U(xx)
                a = r1[ux]
                b = r1[ux - U(1)]
                c = r1[ux + U(1)]
                d = r1[ux - U(2)]
                e = r2[ux]
                f = r2[ux + U(1)]
                above[ux] = ((np.uint16(b == a) << 2) | (np.uint16(c == a) << 4)
                             | (np.uint16(c == b) << 5) | (np.uint16(e == a) << 6)
                             | (np.uint16(f == c) << 8) | (np.uint16(d == b) << 9))
        xx = 0
        while xx < w:
            if fast and xx == 2:
                vw = np.int64(out[rowp + U(1)])
                vnw = np.int64(out[up + U(1)])
                vn = np.int64(out[up + U(2)])
                # the W bits of the context ([N=W], [NW=W], [NE=W] << 3, [WW=W] << 7) but [NE=W]
                wb = (_eq(vn, vw) | (_eq(vnw, vw) << 1)
                      | (_eq(np.int64(out[rowp]), vw) << 7))
                for x2 in range(2, w - 1):
                    ux = U(x2)
                    vne = np.int64(out[up + ux + U(1)])
                    wb |= _eq(vne, vw) << 3
                    e = entry[mb + U(np.int64(above[ux]) | wb)]
                    slot = x & 0xFFF
                    c1 = e & 0xFFFF
                    if slot < c1:  # symbol 0, "same as W": the usual case, kept short
                        x = c1 * (x >> 12) + slot
                        if x < low:  # at most twice
                            if pos >= end:
                                return x, pos, TRUNCATED
                            x = (x << 8) | np.int64(stream[pos])
                            pos += U(1)
                            if x < low:
                                if pos >= end:
                                    return x, pos, TRUNCATED
                                x = (x << 8) | np.int64(stream[pos])
                                pos += U(1)
                        out[rowp + ux] = vw  # the next pixel's W and WW are this W: reuse two bits
                        wb = ((wb >> 3) & 1) | ((wb & 1) << 1) | 128
                    else:
                        if e < 0:
                            return x, pos, NO_ROW
                        s, x = _symbol_above(x, U(e >> 16), cum, k)
                        while x < low:
                            if pos >= end:
                                return x, pos, TRUNCATED
                            x = (x << 8) | np.int64(stream[pos])
                            pos += U(1)
                        v = _rank1(vw, vn, vnw, vne) if s == 1 else from_rank(s, vw, vn, vnw, vne)
                        out[rowp + ux] = v
                        wb = _eq(vne, v) | (_eq(vn, v) << 1) | (_eq(vw, v) << 7)
                        vw = v
                    vnw = vn
                    vn = vne
                xx = w - 1
                continue
            p = rowp + U(xx)
            vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours_u(out, p, uw, y, xx)
            e = entry[mb + U(context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww))]
            if e < 0:
                return x, pos, NO_ROW
            s, x = _symbol(x, U(e >> 16), cum, k)
            while x < low:
                if pos >= end:
                    return x, pos, TRUNCATED
                x = (x << 8) | np.int64(stream[pos])
                pos += U(1)
            out[p] = from_rank(s, vw, vn, vnw, vne)
            xx += 1
    return x, pos, OK


@njit(cache=True, nogil=True)
def _decode_sample(stream, start, length, rect_h, rect_w, r0, r1, entry, model_base, cum, k,
                   out, o0, above):  # type: ignore[no-untyped-def]
    """Decode the stream ``stream[start:start + length]`` of rectangles r0..r1-1 into
    ``out[o0:]`` (one uint8 index per pixel). Returns a status code."""
    if length < STATE_BYTES:
        return BAD_START
    s0 = U(start)
    end = s0 + U(length)
    x = (np.int64(stream[s0]) | (np.int64(stream[s0 + U(1)]) << 8)
         | (np.int64(stream[s0 + U(2)]) << 16) | (np.int64(stream[s0 + U(3)]) << 24))
    if x < STATE_LOW or x >= (np.int64(STATE_LOW) << 8):
        return BAD_START
    pos = s0 + U(STATE_BYTES)
    base = o0
    for r in range(r0, r1):
        h = rect_h[r]
        w = rect_w[r]
        x, pos, status = decode_rect(stream, pos, end, x, h, w, entry, model_base, cum, k,
                                     out, base, above)
        if status != OK:
            return status
        base += h * w
    if x != STATE_LOW:
        return BAD_END
    if pos != end:
        return TRAILING
    return OK


@njit(cache=True, nogil=True)
def ctx_decode_kernel(stream, start, length, rect_h, rect_w, entry, model_base, cum, k, out):  # type: ignore[no-untyped-def]
    """Decode one sample's stream into ``out`` (uint8, exactly its stored pixels)."""
    top = 1
    for r in range(rect_w.shape[0]):
        top = max(top, rect_w[r])
    above = np.empty(top, np.uint16)
    return _decode_sample(stream, start, length, rect_h, rect_w, 0, rect_h.shape[0], entry,
                          model_base, cum, k, out, 0, above)


@njit(cache=True, nogil=True)
def pack_into(idx, n, bits, out, o):  # type: ignore[no-untyped-def]
    """Pack ``idx[:n]`` as the §5 q-bit little-endian stream into ``out[o:o + ceil(n*bits/8)]``
    (padding bits zero). q = 1, 2, 4 fill whole bytes from 8 // q indices at a time (a loop
    without dependencies, ~4x faster than the bit accumulator), then the accumulator takes the
    rest and the other q."""
    uo = U(o)
    done = 0
    if bits == 8:
        for p in range(n):
            out[uo + U(p)] = idx[U(p)]
        return
    if bits == 1 or bits == 2 or bits == 4:
        per = 8 // bits
        whole = n // per
        for j in range(whole):
            q = U(j * per)
            b = np.int64(0)
            for t in range(per):
                b |= np.int64(idx[q + U(t)]) << (t * bits)
            out[uo + U(j)] = b
        done = whole * per
        uo += U(whole)
    acc = np.int64(0)
    have = 0
    pos = uo
    for p in range(done, n):
        acc |= np.int64(idx[U(p)]) << have
        have += bits
        while have >= 8:
            out[pos] = acc & 0xFF
            acc >>= 8
            have -= 8
            pos += U(1)
    if have > 0:
        out[pos] = acc & 0xFF


@njit(cache=True, nogil=True)
def ctx_decode_pixels_kernel(stream, start, length, h, w, entry, model_base, cum, k, palette,
                             out, planar):  # type: ignore[no-untyped-def]
    """Decode one unmasked H x W sample straight to pixels in ``out`` (H*W*ch bytes)."""
    rect_h = np.full(1, h, np.int64)
    rect_w = np.full(1, w, np.int64)
    idx = np.empty(h * w, np.uint8)
    above = np.empty(max(w, 1), np.uint16)
    status = _decode_sample(stream, start, length, rect_h, rect_w, 0, 1, entry, model_base, cum,
                            k, idx, 0, above)
    if status == OK:
        gather_palette(idx, h * w, palette, out, 0, planar)
    return status


@njit(cache=True, nogil=True)
def ctx_decode_batch_kernel(stream, starts, lengths, heights, widths, model_bases, entry, cum, k,
                            bits, palettes, clusters, out, out_offsets, mode):  # type: ignore[no-untyped-def]
    """Decode many unmasked samples in one call.

    ``mode`` 0: write each sample's packed q-bit map (§5) at ``out[out_offsets[b]:]``;
    1: pixels HWC; 2: pixels CHW (``palettes[clusters[b]]``). Returns ``-1`` or
    ``b * 8 + status`` of the first sample that fails (decoding stops there)."""
    n = starts.shape[0]
    top = 1
    wide = 1
    for b in range(n):
        top = max(top, heights[b] * widths[b])
        wide = max(wide, widths[b])
    idx = np.empty(top, np.uint8)
    above = np.empty(wide, np.uint16)
    rect_h = np.empty(1, np.int64)
    rect_w = np.empty(1, np.int64)
    for b in range(n):
        rect_h[0] = heights[b]
        rect_w[0] = widths[b]
        npx = heights[b] * widths[b]
        status = _decode_sample(stream, starts[b], lengths[b], rect_h, rect_w, 0, 1, entry,
                                model_bases[b], cum, k, idx, 0, above)
        if status != OK:
            return b * 8 + status
        o = out_offsets[b]
        if mode == 0:
            pack_into(idx, npx, bits, out, o)
        else:
            gather_palette(idx, npx, palettes[clusters[b]], out, o, mode == 2)
    return -1
