"""Context formation of the ``ctx`` payload encoding (spec ``dcq-v1.md`` §14.2-§14.3).

Every pixel of an index map is coded with a probability model chosen by its *context*, formed
from eight causal neighbours, and as a *rank symbol* instead of its palette index:

Neighbours of pixel (y, x) in a rectangle of width ``w`` (the image, or one kept patch of a
masked sample); ``m[y][x]`` is the already decoded index; a neighbour outside the rectangle
falls back to a nearer one (normative)::

    W   = m[y][x-1]    if x > 0          else (m[y-1][x] if y > 0 else 0)
    N   = m[y-1][x]    if y > 0          else W
    NW  = m[y-1][x-1]  if y > 0, x > 0   else N
    NE  = m[y-1][x+1]  if y > 0, x+1 < w else N
    NN  = m[y-2][x]    if y > 1          else N
    WW  = m[y][x-2]    if x > 1          else W
    NNE = m[y-2][x+1]  if y > 1, x+1 < w else NE
    NWW = m[y-1][x-2]  if y > 0, x > 1   else NW

Context (0..1023)::

    c = [N==W] + 2[NW==W] + 4[NW==N] + 8[NE==W] + 16[NE==N] + 32[NE==NW]
        + 64[NN==N] + 128[WW==W] + 256[NNE==NE] + 512[NWW==NW]

Rank symbol: the distinct values of (W, N, NW, NE) in that order of first appearance form the
list D (1..4 values). An index v equal to D[j] is coded as j; any other v as
``len(D) + v - #{d in D : d < v}`` (its rank among the indices not in D). The symbols of a
palette of K colours are again 0..K-1, so the transform is a bijection; its value is that the
probability of "same as W" is one model entry whatever colour W has.

The helpers (:func:`neighbours`, :func:`context_of`, :func:`to_rank`, :func:`from_rank`) are
``@njit`` functions inlined into the kernels of :mod:`dcqformat.codecs.ctx_rans`
and :mod:`dcqformat.codecs.ctx_model`; :mod:`dcqformat.codecs.ctx_reference` spells the same
rules in plain Python.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Number of contexts (10 equality bits).
NUM_CONTEXTS = 1024

__all__ = ["NUM_CONTEXTS", "context_of", "from_rank", "neighbours", "to_rank"]


@njit(cache=True, nogil=True, inline="always")
def neighbours(m, base, w, y, x):  # type: ignore[no-untyped-def]
    """The eight causal neighbours of pixel (y, x) of the rectangle stored row-major at
    ``m[base:]`` with width ``w`` (rows above y and pixels left of x already decoded)."""
    p = base + y * w + x
    zero = np.int64(0)
    if x > 0:
        vw = np.int64(m[p - 1])
    elif y > 0:
        vw = np.int64(m[p - w])
    else:
        vw = zero
    if y > 0:
        vn = np.int64(m[p - w])
        vnw = np.int64(m[p - w - 1]) if x > 0 else vn
        vne = np.int64(m[p - w + 1]) if x + 1 < w else vn
        vnww = np.int64(m[p - w - 2]) if x > 1 else vnw
    else:
        vn = vw
        vnw = vn
        vne = vn
        vnww = vnw
    vnn = np.int64(m[p - 2 * w]) if y > 1 else vn
    vww = np.int64(m[p - 2]) if x > 1 else vw
    vnne = np.int64(m[p - 2 * w + 1]) if y > 1 and x + 1 < w else vne
    return vw, vn, vnw, vne, vnn, vww, vnne, vnww


@njit(cache=True, nogil=True, inline="always")
def context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww):  # type: ignore[no-untyped-def]
    """The context number 0..1023 of a pixel from its eight neighbours."""
    c = 0
    if vn == vw:
        c |= 1
    if vnw == vw:
        c |= 2
    if vnw == vn:
        c |= 4
    if vne == vw:
        c |= 8
    if vne == vn:
        c |= 16
    if vne == vnw:
        c |= 32
    if vnn == vn:
        c |= 64
    if vww == vw:
        c |= 128
    if vnne == vne:
        c |= 256
    if vnww == vnw:
        c |= 512
    return c


@njit(cache=True, nogil=True, inline="always")
def to_rank(v, vw, vn, vnw, vne):  # type: ignore[no-untyped-def]
    """The rank symbol of index ``v`` given the neighbours W, N, NW, NE."""
    if v == vw:
        return 0
    m = 1
    below = 1 if vw < v else 0
    if vn != vw:
        if v == vn:
            return m
        m += 1
        if vn < v:
            below += 1
    if vnw != vw and vnw != vn:
        if v == vnw:
            return m
        m += 1
        if vnw < v:
            below += 1
    if vne != vw and vne != vn and vne != vnw:
        if v == vne:
            return m
        m += 1
        if vne < v:
            below += 1
    return m + v - below


@njit(cache=True, nogil=True, inline="always")
def from_rank(s, vw, vn, vnw, vne):  # type: ignore[no-untyped-def]
    """The index whose rank symbol is ``s`` (inverse of :func:`to_rank`)."""
    if s == 0:
        return vw
    # The distinct neighbours, in order of first appearance.
    d1 = vw
    d2 = vw
    d3 = vw
    m = 1
    if vn != vw:
        d1 = vn
        m = 2
    if vnw != vw and vnw != vn:
        if m == 1:
            d1 = vnw
        else:
            d2 = vnw
        m += 1
    if vne != vw and vne != vn and vne != vnw:
        if m == 1:
            d1 = vne
        elif m == 2:
            d2 = vne
        else:
            d3 = vne
        m += 1
    if s < m:
        if s == 1:
            return d1
        if s == 2:
            return d2
        return d3
    # The (s - m)-th smallest index not in D: step over the members of D in ascending order.
    a0 = vw
    a1 = d1
    a2 = d2
    a3 = d3
    # sort the m distinct values (at most 4) ascending, a small network
    if m > 1 and a1 < a0:
        a0, a1 = a1, a0
    if m > 2:
        if a2 < a1:
            a1, a2 = a2, a1
        if a1 < a0:
            a0, a1 = a1, a0
    if m > 3:
        if a3 < a2:
            a2, a3 = a3, a2
        if a2 < a1:
            a1, a2 = a2, a1
        if a1 < a0:
            a0, a1 = a1, a0
    v = s - m
    if a0 <= v:
        v += 1
    if m > 1 and a1 <= v:
        v += 1
    if m > 2 and a2 <= v:
        v += 1
    if m > 3 and a3 <= v:
        v += 1
    return v
