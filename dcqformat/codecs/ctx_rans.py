"""The rANS coder of the ``ctx`` payload encoding (spec ``dcq-v1.md`` §14.4): constants, status
codes and the encoder kernel (the decoding kernels are in :mod:`dcqformat.codecs.ctx_decode`).

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

from dcqformat.codecs.ctx_context import context_of, neighbours, to_rank

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

__all__ = ["OK", "STATE_BYTES", "STATE_LOW", "STATUS_TEXT", "ctx_encode_kernel"]


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
