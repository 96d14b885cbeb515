"""Palette lookup of an unpacked index map (one uint8 index per pixel): the last step of a ctx
decode to pixels (:mod:`dcqformat.codecs.ctx_decode`).

:func:`gather_palette` writes ``palette[idx[p]]`` for every pixel, HWC or CHW, at ``out[o:]``.
A byte per store is what bounds the plain loops (three stores per RGB pixel: 0.52-0.62 ns/px HWC,
0.83-0.93 ns/px CHW here), so RGB maps whose pixel count is a multiple of 4, with ``idx`` and
``out[o:]`` 4-byte aligned, take word paths instead (``benchmarks/gather.py``, results in
``benchmarks/results/gather.md``):

* HWC: a uint32 colour per palette entry, four pixels written as three uint32 words
  (0.23-0.38 ns/px);
* CHW: the indices read four at a time as one uint32; with K <= 16 a 256-entry table per channel
  maps a pair of indices to two output bytes, so four pixels of a channel are two lookups and one
  uint32 store (0.30-0.52 ns/px); with K > 16 four lookups per word (0.50-0.68 ns/px).

The caller guarantees every index is < K (the ctx decoder only writes indices of the palette)
and that ``out`` holds ``o + n * channels`` bytes; nothing here is bounds-checked. The NumPy
reference is ``palette[idx]`` (reshaped and, for CHW, transposed); the property tests hold
every path to it (``tests/test_codecs_gather.py``).
"""

from __future__ import annotations

import sys

import numpy as np
from numba import njit

U = np.uint64
#: The word paths write little-endian words; elsewhere the byte loops run.
LITTLE_ENDIAN = sys.byteorder == "little"

__all__ = ["gather_bytes", "gather_palette"]


@njit(cache=True, nogil=True)
def _hwc3_words(idx, n, palette, words):  # type: ignore[no-untyped-def]
    """HWC RGB, n % 4 == 0: four pixels as three little-endian uint32 words."""
    k = palette.shape[0]
    col = np.empty(k, np.uint32)
    for v in range(k):
        col[v] = (np.uint32(palette[v, 0]) | (np.uint32(palette[v, 1]) << 8)
                  | (np.uint32(palette[v, 2]) << 16))
    for j in range(n // 4):
        p = U(4 * j)
        c0 = col[idx[p]]
        c1 = col[idx[p + U(1)]]
        c2 = col[idx[p + U(2)]]
        c3 = col[idx[p + U(3)]]
        w = U(3 * j)
        words[w] = c0 | (c1 << 24)
        words[w + U(1)] = (c1 >> 8) | (c2 << 16)
        words[w + U(2)] = (c2 >> 16) | (c3 << 8)


@njit(cache=True, nogil=True)
def _chw3_pairs(iw, q, palette, words):  # type: ignore[no-untyped-def]
    """CHW RGB, K <= 16: ``iw`` the indices as q uint32 words; a pair of indices -> 2 bytes."""
    k = palette.shape[0]
    t = np.empty((3, 256), np.uint32)
    for c in range(3):
        for a in range(k):
            for b in range(k):
                t[c, a | (b << 4)] = np.uint32(palette[a, c]) | (np.uint32(palette[b, c]) << 8)
    t0 = t[0]
    t1 = t[1]
    t2 = t[2]
    for j in range(q):
        v = iw[U(j)]
        lo = (v & 0xF) | ((v >> 4) & 0xF0)
        hi = ((v >> 16) & 0xF) | ((v >> 20) & 0xF0)
        words[U(j)] = t0[lo] | (t0[hi] << 16)
        words[U(q + j)] = t1[lo] | (t1[hi] << 16)
        words[U(2 * q + j)] = t2[lo] | (t2[hi] << 16)


@njit(cache=True, nogil=True, inline="always")
def _quad(t, v):  # type: ignore[no-untyped-def]
    """Four palette bytes ``t[index]`` of the four indices in ``v`` as one uint32."""
    return (np.uint32(t[v & 0xFF]) | (np.uint32(t[(v >> 8) & 0xFF]) << 8)
            | (np.uint32(t[(v >> 16) & 0xFF]) << 16) | (np.uint32(t[v >> 24]) << 24))


@njit(cache=True, nogil=True)
def _chw3_quads(iw, q, palette, words):  # type: ignore[no-untyped-def]
    """CHW RGB, any K: four lookups per output word, the indices read once."""
    p0 = np.ascontiguousarray(palette[:, 0])
    p1 = np.ascontiguousarray(palette[:, 1])
    p2 = np.ascontiguousarray(palette[:, 2])
    for j in range(q):
        v = iw[U(j)]
        words[U(j)] = _quad(p0, v)
        words[U(q + j)] = _quad(p1, v)
        words[U(2 * q + j)] = _quad(p2, v)


@njit(cache=True, nogil=True)
def gather_bytes(idx, n, palette, out, o, planar):  # type: ignore[no-untyped-def]
    """:func:`gather_palette` by the plain loops, one byte per store (any channel count, size
    or alignment): the fallback, and the anchor of ``benchmarks/gather.py``."""
    ch = palette.shape[1]
    uo = U(o)
    if planar:
        for c in range(ch):
            b = uo + U(c * n)
            for p in range(n):
                out[b + U(p)] = palette[idx[U(p)], c]
    elif ch == 3:
        for p in range(n):
            v = idx[U(p)]
            q = uo + U(3 * p)
            out[q] = palette[v, 0]
            out[q + U(1)] = palette[v, 1]
            out[q + U(2)] = palette[v, 2]
    else:
        for p in range(n):
            v = idx[U(p)]
            for c in range(ch):
                out[uo + U(p * ch + c)] = palette[v, c]


@njit(cache=True, nogil=True)
def gather_palette(idx, n, palette, out, o, planar):  # type: ignore[no-untyped-def]
    """Palette lookup of ``idx[:n]`` into ``out[o:o + n*ch]`` (HWC, or CHW when planar)."""
    ch = palette.shape[1]
    words_ok = (LITTLE_ENDIAN and ch == 3 and n > 0 and n % 4 == 0 and (out.ctypes.data + o) % 4 == 0
                and idx.ctypes.data % 4 == 0)
    if not words_ok:
        gather_bytes(idx, n, palette, out, o, planar)
        return
    uo = U(o)
    words = out[uo:uo + U(3 * n)].view(np.uint32)
    if not planar:
        _hwc3_words(idx, n, palette, words)
    elif palette.shape[0] <= 16:
        _chw3_pairs(idx[:n].view(np.uint32), n // 4, palette, words)
    else:
        _chw3_quads(idx[:n].view(np.uint32), n // 4, palette, words)
