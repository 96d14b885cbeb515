"""Experiment (not product code): would a *flat-span mode* make the ctx payload decode fast enough?

    python benchmarks/ctx_span_experiment.py FILE.dcq [FILE.dcq ...] [--out results.md]

Issue #12 asks ctx decoding to be >= 2x faster than PIL JPEG at 224 px. The shipped coder spends
one rANS step per pixel, and its interior fast path is bound by instruction count (~10 cycles a
pixel even on a one-colour map), so this script measures the most promising format change: in
the interior (rows >= 2, columns 2..w-2), at a pixel whose W, N, NW and NE are one value v, the
coder codes one *span* symbol instead of each pixel. The span is the L pixels from here whose
row-above neighbourhood is all v (L <= 4096, known to the decoder from the row above)
symbol 0
in model row 1024 + bucket(L) (bucket = min(floor(log2 L), 6)) says "all L pixels are v",
symbol 1 says "a break": then the number j < L of v pixels before it (ceil(log2 L) raw bits,
one rANS step) and the breaking pixel's rank symbol (row 1031
symbol 0 impossible) follow.
Everything else is the shipped coder (contexts, rank symbols, 12-bit static models fitted per
file, 32-bit rANS, byte renormalisation).

For each file it re-codes every index map with the span coder (a model fitted on the file),
checks that decoding gives back every map, and prints bytes per image and decode ns/pixel of
both coders to packed q-bit maps (the shipped one through ``DCQFile.packed_batch(threads=1)``,
one kernel call; the span decoder with the same pack after each map), best of 5.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from numba import njit

from dcqformat import DCQFile
from dcqformat.codecs.ctx_context import context_of, from_rank, neighbours, to_rank
from dcqformat.codecs.ctx_decode import pack_into
from dcqformat.codecs.ctx_model import normalise_counts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of  # noqa: E402

U = np.uint64
SPAN = 1024
BREAK = 1031
NCTX = 1032
LOW = 1 << 23
MAXSPAN = 4096


@njit(cache=True, inline="always")
def eq(a, b):
    """1 if a == b else 0, branch-free (int64)."""
    return ((a ^ b) - 1) >> 63 & 1


@njit(cache=True, inline="always")
def symbol(x, tb, cum, k):
    """(symbol, state) of one rANS step in the row at ``cum[tb:]``, no renormalisation."""
    slot = x & 0xFFF
    s = 0
    while s < k - 1 and slot >= cum[tb + U(s + 1)]:
        s += 1
    lo = np.int64(cum[tb + U(s)])
    return s, (np.int64(cum[tb + U(s + 1)]) - lo) * (x >> 12) + slot - lo


@njit(cache=True, inline="always")
def symbol_above(x, tb, cum, k):
    """:func:`symbol` when the slot is known not to be symbol 0's."""
    slot = x & 0xFFF
    s = 1
    while s < k - 1 and slot >= cum[tb + U(s + 1)]:
        s += 1
    lo = np.int64(cum[tb + U(s)])
    return s, (np.int64(cum[tb + U(s + 1)]) - lo) * (x >> 12) + slot - lo

@njit(cache=True)
def bucket_of(L):
    """The span-length bucket of ``L``: min(floor(log2 L), 6) (model row SPAN + bucket)."""
    b = 0
    t = L
    while t > 1 and b < 6:
        t >>= 1
        b += 1
    return b

@njit(cache=True)
def bitlen(n):
    """The number of bits of ``n`` (0 for 0): a break position j < L takes bitlen(L - 1) raw bits."""
    b = 0
    while n > 0:
        n >>= 1
        b += 1
    return b

@njit(cache=True)
def walk(values, h, w, octx, osym, onb):
    """The coding events of one map in decoding order: ``octx`` (model row, -1 for raw bits),
    ``osym`` (symbol, or the raw value) and ``onb`` (raw bit count); returns how many."""
    n = 0
    for y in range(h):
        x = 0
        while x < w:
            vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours(values, 0, w, y, x)
            if y >= 2 and x >= 2 and x <= w - 2 and vw == vn and vn == vnw and vnw == vne:
                v = vw
                L = 1
                while x + L <= w - 2 and L < MAXSPAN and values[(y - 1) * w + x + L + 1] == v:
                    L += 1
                j = 0
                while j < L and values[y * w + x + j] == v:
                    j += 1
                b = bucket_of(L)
                if j == L:
                    octx[n] = SPAN + b
                    osym[n] = 0
                    onb[n] = 0
                    n += 1
                    x += L
                    continue
                octx[n] = SPAN + b
                osym[n] = 1
                onb[n] = 0
                n += 1
                nb = bitlen(L - 1)
                if nb > 0:
                    octx[n] = -1
                    osym[n] = j
                    onb[n] = nb
                    n += 1
                s = to_rank(np.int64(values[y * w + x + j]), v, v, v, v)
                octx[n] = BREAK
                osym[n] = s
                onb[n] = 0
                n += 1
                x += j + 1
                continue
            c = context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww)
            octx[n] = c
            osym[n] = to_rank(np.int64(values[y * w + x]), vw, vn, vnw, vne)
            onb[n] = 0
            n += 1
            x += 1
    return n

@njit(cache=True)
def count_into(values, h, w, counts):
    """Add one map's (model row, symbol) counts to ``counts``; returns its number of events."""
    n = values.size * 3 + 8
    octx = np.empty(n, np.int64)
    osym = np.empty(n, np.int64)
    onb = np.empty(n, np.int64)
    m = walk(values, h, w, octx, osym, onb)
    for i in range(m):
        if octx[i] >= 0:
            counts[octx[i], osym[i]] += 1
    return m

@njit(cache=True)
def encode(values, h, w, row_of, freq, cum, out):
    """rANS-code one map backwards into the end of ``out``; returns (where its stream starts in
    ``out``, its number of events)."""
    n = values.size * 3 + 8
    octx = np.empty(n, np.int64)
    osym = np.empty(n, np.int64)
    onb = np.empty(n, np.int64)
    m = walk(values, h, w, octx, osym, onb)
    x = np.int64(LOW)
    pos = out.shape[0]
    for i in range(m - 1, -1, -1):
        if octx[i] < 0:
            f = np.int64(4096 >> onb[i])
            c = osym[i] * f
        else:
            r = row_of[octx[i]]
            f = np.int64(freq[r, osym[i]])
            c = np.int64(cum[r, osym[i]])
        limit = f << 19
        while x >= limit:
            pos -= 1
            out[pos] = x & 0xFF
            x >>= 8
        x = ((x // f) << 12) + (x % f) + c
    for j in range(3, -1, -1):
        pos -= 1
        out[pos] = (x >> (8 * j)) & 0xFF
    return pos, m

@njit(cache=True, inline="always")
def fill_above(out, up, uw, w, above):
    """The row-above equality bits of columns 2..w-2 of the row after the one at ``up``."""
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


@njit(cache=True, inline="always")
def refill(x, pos, end, stream):
    """Renormalise the rANS state: read bytes into ``x`` until x >= LOW or the stream ends at
    ``end``; returns (x, pos), x < LOW if the stream ran out."""
    while x < np.int64(LOW) and pos < end:
        x = (x << 8) | np.int64(stream[pos])
        pos += U(1)
    return x, pos


@njit(cache=True, inline="always")
def flat_run(out, rowp, up, ux, x2, w, vw):
    """The span length L at pixel x2 of the row at ``rowp``: the pixels from x2 whose row-above
    neighbourhood (row at ``up``) is all ``vw`` (L <= MAXSPAN), written ``vw`` speculatively."""
    lim = min(w - 1 - x2, MAXSPAN)
    out[rowp + ux] = vw  # speculative: a break rewrites what follows it
    L = 1
    while L < lim and np.int64(out[up + ux + U(L + 1)]) == vw:
        out[rowp + ux + U(L)] = vw
        L += 1
    return L


@njit(cache=True)
def row_interior(stream, pos, end, x, out, rowp, up, w, entry, cum, k, above):
    """Columns 2..w-2 of a row y >= 2 of :func:`decode`; returns (status, x, pos)."""
    low = np.int64(LOW)
    vw = np.int64(out[rowp + U(1)])
    vnw = np.int64(out[up + U(1)])
    vn = np.int64(out[up + U(2)])
    wb = (eq(vn, vw) | (eq(vnw, vw) << 1) | (eq(np.int64(out[rowp]), vw) << 7))
    x2 = 2
    while x2 <= w - 2:
        ux = U(x2)
        vne = np.int64(out[up + ux + U(1)])
        wb |= eq(vne, vw) << 3
        if (wb & 11) == 11:  # flat: span mode
            L = flat_run(out, rowp, up, ux, x2, w, vw)
            bk = (np.int64(L >= 2) + np.int64(L >= 4) + np.int64(L >= 8) + np.int64(L >= 16)
                  + np.int64(L >= 32) + np.int64(L >= 64))
            e = entry[U(SPAN + bk)]
            slot = x & 0xFFF
            c1 = e & 0xFFFF
            if slot < c1:
                x = c1 * (x >> 12) + slot
                x, pos = refill(x, pos, end, stream)
                if x < low:
                    return 2, x, pos
                x2 += L
                ux = U(x2)
                vnw = np.int64(out[up + ux - U(1)])
                vn = np.int64(out[up + ux])
                wb = eq(vn, vw) | (eq(vnw, vw) << 1) | 128
                continue
            if e < 0:
                return 3, x, pos
            s, x = symbol_above(x, U(e >> 16), cum, k)
            if s != 1:
                return 7, x, pos
            x, pos = refill(x, pos, end, stream)
            if x < low:
                return 2, x, pos
            nb = bitlen(L - 1)
            j = 0
            if nb > 0:
                fq = np.int64(4096 >> nb)
                slot = x & 0xFFF
                j = slot >> (12 - nb)
                x = fq * (x >> 12) + (slot & (fq - 1))
                x, pos = refill(x, pos, end, stream)
                if x < low:
                    return 2, x, pos
                if j >= L:
                    return 7, x, pos
            e = entry[U(BREAK)]
            if e < 0:
                return 3, x, pos
            s, x = symbol(x, U(e >> 16), cum, k)
            x, pos = refill(x, pos, end, stream)
            if x < low:
                return 2, x, pos
            v = from_rank(s, vw, vw, vw, vw)
            x2 += j
            ux = U(x2)
            out[rowp + ux] = v
            x2 += 1
            ux = U(x2)
            vnw = np.int64(out[up + ux - U(1)])
            vn = np.int64(out[up + ux])
            wb = eq(vn, v) | (eq(vnw, v) << 1) | (eq(np.int64(out[rowp + ux - U(2)]), v) << 7)
            vw = v
            continue
        e = entry[U(np.int64(above[ux]) | wb)]
        slot = x & 0xFFF
        c1 = e & 0xFFFF
        if slot < c1:
            x = c1 * (x >> 12) + slot
            if x < low:
                if pos >= end:
                    return 2, x, pos
                x = (x << 8) | np.int64(stream[pos])
                pos += U(1)
                if x < low:
                    if pos >= end:
                        return 2, x, pos
                    x = (x << 8) | np.int64(stream[pos])
                    pos += U(1)
            out[rowp + ux] = vw
            wb = ((wb >> 3) & 1) | ((wb & 1) << 1) | 128
        else:
            if e < 0:
                return 3, x, pos
            s, x = symbol_above(x, U(e >> 16), cum, k)
            x, pos = refill(x, pos, end, stream)
            if x < low:
                return 2, x, pos
            v = from_rank(s, vw, vn, vnw, vne)
            out[rowp + ux] = v
            wb = eq(vne, v) | (eq(vn, v) << 1) | (eq(vw, v) << 7)
            vw = v
        vnw = vn
        vn = vne
        x2 += 1
    return 0, x, pos


@njit(cache=True, nogil=True)
def decode(stream, pos, end, h, w, entry, cum, k, out, above):
    """returns status (0 ok). single model, base 0."""
    x = (np.int64(stream[pos]) | (np.int64(stream[pos + U(1)]) << 8)
         | (np.int64(stream[pos + U(2)]) << 16) | (np.int64(stream[pos + U(3)]) << 24))
    pos += U(4)
    uw = U(w)
    low = np.int64(LOW)
    for y in range(h):
        rowp = U(y) * uw
        fast = y >= 2 and w >= 5
        up = rowp - uw if y > 0 else rowp
        if fast:
            fill_above(out, up, uw, w, above)
        xx = 0
        while xx < w:
            if fast and xx == 2:
                st, x, pos = row_interior(stream, pos, end, x, out, rowp, up, w, entry, cum, k, above)
                if st != 0:
                    return st
                xx = w - 1
                continue
            p = rowp + U(xx)
            vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours(out, 0, w, y, xx)
            e = entry[U(context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww))]
            if e < 0:
                return 3
            s, x = symbol(x, U(e >> 16), cum, k)
            x, pos = refill(x, pos, end, stream)
            if x < low:
                return 2
            out[p] = from_rank(s, vw, vn, vnw, vne)
            xx += 1
    if x != LOW:
        return 4
    if pos != end:
        return 5
    return 0

@njit(cache=True, nogil=True)
def decode_all(stream, starts, lengths, h, w, entry, cum, k, out, bits, packed):
    """Decode every sample into ``out[i]`` and, as ``DCQFile.packed_batch`` does, pack each
    map at ``bits`` bits per index into ``packed`` (sample i at i * ceil(h*w*bits/8))."""
    above = np.empty(w, np.uint16)
    size = (h * w * bits + 7) // 8
    for i in range(starts.shape[0]):
        st = decode(stream, U(starts[i]), U(starts[i] + lengths[i]), h, w, entry, cum, k, out[i], above)
        if st != 0:
            return i * 8 + st
        pack_into(out[i], h * w, bits, packed, i * size)
    return -1


def span_code(maps: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Fit the span model on ``maps`` (one size) and code them: (blob, starts, lengths, entry,
    cum_flat, rows used)."""
    h, w = maps[0].shape
    counts = np.zeros((NCTX, k), np.int64)
    for m in maps:
        count_into(m.reshape(-1), h, w, counts)
    used = np.flatnonzero(counts.sum(1))
    freq = normalise_counts(counts[used]).astype(np.int64)
    row_of = np.full(NCTX, -1, np.int64)
    row_of[used] = np.arange(used.size)
    cum = np.zeros((used.size, k + 1), np.int64)
    np.cumsum(freq, 1, out=cum[:, 1:])
    streams = []
    for m in maps:
        out = np.empty(3 * m.size + 64, np.uint8)
        pos, _ = encode(m.reshape(-1), h, w, row_of, freq, cum, out)
        streams.append(out[pos:].copy())
    lengths = np.array([s.size for s in streams], np.int64)
    starts = np.zeros(len(maps), np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    row_start = np.where(row_of < 0, -1, row_of * (k + 1))
    first = cum[np.maximum(row_of, 0), 1]
    entry = np.where(row_of < 0, np.int64(-1) << 16, (row_start << 16) | first).astype(np.int64)
    return np.concatenate(streams), starts, lengths, entry, cum.astype(np.int32).reshape(-1), row_of, int(used.size)


def measure(path: Path, limit: int) -> dict[str, object]:
    """One row: the file's ctx coder against the span coder on its first ``limit`` samples."""
    f = DCQFile(path)
    if f.payload_encoding != "ctx":
        raise SystemExit(f"{path}: payload {f.payload_encoding}, not ctx")
    n = min(limit, len(f))
    maps = [np.ascontiguousarray(f.index_map(i)) for i in range(n)]
    h, w = maps[0].shape
    if any(m.shape != (h, w) for m in maps):
        raise SystemExit(f"{path}: mixed sizes (the experiment codes one size)")
    blob, starts, lengths, entry, cum, _, rows = span_code(maps, f.palette_size)
    out = np.empty((n, h * w), np.uint8)
    packed = np.empty(n * ((h * w * f.bits + 7) // 8), np.uint8)
    status = decode_all(blob, starts, lengths, h, w, entry, cum, f.palette_size, out, f.bits, packed)
    idx = np.arange(n)
    data, _ = f.packed_batch(idx, threads=1)
    equal = (status == -1 and all((out[i].reshape(h, w) == maps[i]).all() for i in range(n))
             and bool((packed == data).all()))
    span_s = best_of(lambda: decode_all(blob, starts, lengths, h, w, entry, cum, f.palette_size, out,
                                        f.bits, packed))
    ctx_s = best_of(lambda: f.packed_batch(idx, threads=1))
    px = n * h * w
    ctx_bytes = float(np.asarray(f.metadata.length[:n]).sum()) / n
    return {"file": path.name, "n": n, "size": f"{h}x{w}", "q": f.bits, "equal": equal,
            "ctx_b": ctx_bytes, "span_b": blob.size / n, "rows": rows,
            "ctx_ns": ctx_s / px * 1e9, "span_ns": span_s / px * 1e9}


def main(argv: list[str] | None = None) -> int:
    """Measure every file given; print (and with --out write) a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--limit", type=int, default=2000, help="samples per file (default 2000)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    lines = [f"`python benchmarks/ctx_span_experiment.py {' '.join(a for a in (argv or sys.argv[1:]))}`; "
             f"load average before {os.getloadavg()[0]:.2f}", "",
             "| file | samples | size | q | decoded maps equal | ctx payload B/image | span B/image | span / ctx bytes "
             "| ctx decode ns/px | span decode ns/px | speed-up |", "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for path in args.files:
        r = measure(path, args.limit)
        lines.append(f"| {r['file']} | {r['n']} | {r['size']} | {r['q']} | {'yes' if r['equal'] else 'NO'} "
                     f"| {r['ctx_b']:.1f} | {r['span_b']:.1f} | {r['span_b'] / r['ctx_b']:.3f} "  # type: ignore[operator]
                     f"| {r['ctx_ns']:.2f} | {r['span_ns']:.2f} | {r['ctx_ns'] / r['span_ns']:.2f}x |")  # type: ignore[operator]
        print(lines[-1], flush=True)
    lines.append(f"\nLoad average after: {os.getloadavg()[0]:.2f}")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
