"""Pure-Python reference of the ``ctx`` coder (spec ``dcq-v1.md`` §14): context formation, rank
symbols, histograms, rANS encoding and decoding, written pixel by pixel from the spec text.

Slow and plain on purpose: the property tests hold the Numba kernels of
:mod:`dcqformat.codecs.ctx_context`, :mod:`dcqformat.codecs.ctx_model` and
:mod:`dcqformat.codecs.ctx_rans` to these functions. ``rects`` is a list of (h, w) rectangles whose
pixels follow one another in ``values`` (one rectangle for an unmasked sample); ``row_of`` maps
``model_base + context`` to a row of ``freq`` (a list of K frequencies) or -1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dcqformat.codecs.ctx_rans import BAD_END, BAD_START, NO_FREQ, NO_ROW, OK, TRAILING, TRUNCATED

STATE_LOW = 1 << 23

__all__ = ["context_ref", "count_reference", "decode_reference", "decode_status_reference",
           "encode_reference", "encode_status_reference", "from_rank_ref", "neighbours_ref",
           "to_rank_ref"]


def neighbours_ref(m: Sequence[int], base: int, w: int, y: int, x: int) -> tuple[int, ...]:
    """(W, N, NW, NE, NN, WW, NNE, NWW) of pixel (y, x) in the rectangle stored row-major at
    ``m[base:]`` with width ``w``, with the spec's fall-backs at the borders."""
    def at(yy: int, xx: int) -> int:
        return int(m[base + yy * w + xx])
    W = at(y, x - 1) if x > 0 else (at(y - 1, x) if y > 0 else 0)
    N = at(y - 1, x) if y > 0 else W
    NW = at(y - 1, x - 1) if y > 0 and x > 0 else N
    NE = at(y - 1, x + 1) if y > 0 and x + 1 < w else N
    NN = at(y - 2, x) if y > 1 else N
    WW = at(y, x - 2) if x > 1 else W
    NNE = at(y - 2, x + 1) if y > 1 and x + 1 < w else NE
    NWW = at(y - 1, x - 2) if y > 0 and x > 1 else NW
    return W, N, NW, NE, NN, WW, NNE, NWW


def context_ref(nb: tuple[int, ...]) -> int:
    """The context number 0..1023 of the neighbours ``nb`` (as :func:`neighbours_ref` gives)."""
    W, N, NW, NE, NN, WW, NNE, NWW = nb
    bits = [N == W, NW == W, NW == N, NE == W, NE == N, NE == NW, NN == N, WW == W, NNE == NE,
            NWW == NW]
    return sum(int(b) << i for i, b in enumerate(bits))


def _distinct(nb: tuple[int, ...]) -> list[int]:
    d: list[int] = []
    for v in nb[:4]:
        if v not in d:
            d.append(v)
    return d


def to_rank_ref(v: int, nb: tuple[int, ...]) -> int:
    """The rank symbol of index ``v``: its position in D, else len(D) + its rank outside D."""
    d = _distinct(nb)
    if v in d:
        return d.index(v)
    return len(d) + v - sum(1 for u in d if u < v)


def from_rank_ref(s: int, nb: tuple[int, ...]) -> int:
    """The index whose rank symbol is ``s``."""
    d = _distinct(nb)
    if s < len(d):
        return d[s]
    r = s - len(d)
    v = 0
    while True:  # the r-th smallest index not in D
        if v not in d:
            if r == 0:
                return v
            r -= 1
        v += 1


def _pixels(rects: Sequence[tuple[int, int]]):  # type: ignore[no-untyped-def]
    base = 0
    for h, w in rects:
        for y in range(h):
            for x in range(w):
                yield base, w, y, x
        base += h * w


def count_reference(values: np.ndarray, rects: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """Histogram int64 [1024, K] of (context, rank symbol) over every pixel."""
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    counts = np.zeros((1024, k), np.int64)
    for base, w, y, x in _pixels(rects):
        nb = neighbours_ref(vals, base, w, y, x)
        counts[context_ref(nb), to_rank_ref(vals[base + y * w + x], nb)] += 1
    return counts


def encode_reference(values: np.ndarray, rects: Sequence[tuple[int, int]], row_of: Sequence[int],
                     model_base: int, freq: Sequence[Sequence[int]]) -> bytes:
    """The stream of one sample: symbols coded in reverse order, the final state in front."""
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    coded = []
    for base, w, y, x in _pixels(rects):
        nb = neighbours_ref(vals, base, w, y, x)
        row = row_of[model_base + context_ref(nb)]
        s = to_rank_ref(vals[base + y * w + x], nb)
        if row < 0 or freq[row][s] == 0:
            raise ValueError("the model cannot code this map")
        coded.append((freq[row][s], sum(freq[row][:s])))
    x = STATE_LOW
    emitted = bytearray()
    for f, c in reversed(coded):
        while x >= ((STATE_LOW >> 12) << 8) * f:
            emitted.append(x & 0xFF)
            x >>= 8
        x = (x // f) * 4096 + x % f + c
    return x.to_bytes(4, "little") + bytes(reversed(emitted))


def decode_reference(stream: bytes, rects: Sequence[tuple[int, int]], row_of: Sequence[int],
                     model_base: int, freq: Sequence[Sequence[int]]) -> np.ndarray:
    """Decode one sample's stream; raises ValueError for anything §14.5 refuses."""
    if len(stream) < 4:
        raise ValueError("stream shorter than 4 bytes")
    x = int.from_bytes(stream[:4], "little")
    if not STATE_LOW <= x < STATE_LOW << 8:
        raise ValueError("first state out of range")
    pos = 4
    out: list[int] = []
    for base, w, y, xx in _pixels(rects):
        nb = neighbours_ref(out, base, w, y, xx)
        row = row_of[model_base + context_ref(nb)]
        if row < 0:
            raise ValueError("context without a model row")
        slot = x % 4096
        s, cum = 0, 0
        while not cum <= slot < cum + freq[row][s]:  # rows sum to 4096: some s holds the slot
            cum += freq[row][s]
            s += 1
        x = freq[row][s] * (x >> 12) + slot - cum
        while x < STATE_LOW:
            if pos >= len(stream):
                raise ValueError("truncated stream")
            x = x * 256 + stream[pos]
            pos += 1
        out.append(from_rank_ref(s, nb))
    if x != STATE_LOW:
        raise ValueError("final state is not 2**23")
    if pos != len(stream):
        raise ValueError("trailing bytes")
    return np.array(out, dtype=np.uint8)


#: The kernels' status code of each refusal :func:`decode_reference` raises.
_DECODE_STATUS = {"stream shorter than 4 bytes": BAD_START, "first state out of range": BAD_START,
                  "context without a model row": NO_ROW, "truncated stream": TRUNCATED,
                  "final state is not 2**23": BAD_END, "trailing bytes": TRAILING}


def decode_status_reference(stream: bytes, rects: Sequence[tuple[int, int]], row_of: Sequence[int],
                            model_base: int, freq: Sequence[Sequence[int]]) -> tuple[int, np.ndarray | None]:
    """:func:`decode_reference` as the kernels report it: ``(OK, indices)``, or the status code
    of the first rule of §14.5 the stream breaks and None."""
    try:
        return OK, decode_reference(stream, rects, row_of, model_base, freq)
    except ValueError as exc:
        return _DECODE_STATUS[str(exc)], None


def encode_status_reference(values: np.ndarray, rects: Sequence[tuple[int, int]], row_of: Sequence[int],
                            model_base: int, freq: Sequence[Sequence[int]]) -> int:
    """Whether the model can code the map: the first pixel (in coding order) whose context has no
    row is NO_ROW, whose rank symbol has frequency 0 is NO_FREQ; else OK."""
    vals = [int(v) for v in np.asarray(values).reshape(-1)]
    for base, w, y, x in _pixels(rects):
        nb = neighbours_ref(vals, base, w, y, x)
        row = row_of[model_base + context_ref(nb)]
        if row < 0:
            return NO_ROW
        if freq[row][to_rank_ref(vals[base + y * w + x], nb)] == 0:
            return NO_FREQ
    return OK
