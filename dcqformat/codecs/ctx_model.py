"""Probability models of the ``ctx`` payload encoding (spec ``dcq-v1.md`` §14.4).

A model assigns every context (0..1023, :mod:`dcqformat.codecs.ctx_context`) a frequency table
over the K rank symbols: K 16-bit frequencies summing to exactly ``PROB_TOTAL`` = 4096
(12-bit probabilities). A file stores one model, or one per cluster; only the contexts that
occur are stored, as *rows*: ``rows[r] = model * 1024 + context`` (strictly increasing) and
``freq[r * K + s]`` the frequency of symbol s in that row.

This module holds what the writer and reader do with models:

- :func:`count_contexts` -- the context/symbol histogram of one index map (a Numba kernel, with
  the reference :func:`dcqformat.codecs.ctx_reference.count_reference`), which the writer sums
  over every sample;
- :func:`normalise_counts` -- the writer's choice of frequencies from counts (not normative: any
  table that sums to 4096 decodes);
- :class:`CtxModel` -- a validated model (:meth:`CtxModel.from_arrays` refuses bad sums, bad
  rows, overflowing counts) with the lookup tables the coder kernels use.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from dcqformat.codecs.ctx_context import NUM_CONTEXTS, context_of, neighbours, to_rank
from dcqformat.errors import InvalidArgumentError

#: Probabilities are multiples of 2**-PROB_BITS.
PROB_BITS = 12
PROB_TOTAL = 1 << PROB_BITS
#: Largest number of models x contexts a file may declare (bounds the reader's row table).
MAX_MODEL_SLOTS = 1 << 22

__all__ = ["MAX_MODEL_SLOTS", "PROB_BITS", "PROB_TOTAL", "CtxModel", "ModelError",
           "count_contexts", "count_kernel", "normalise_counts", "rects_of"]


class ModelError(Exception):
    """A model breaks a rule of §14.4 (the format layer names the file and raises a DcqError)."""


@njit(cache=True, nogil=True)
def count_kernel(values, rect_h, rect_w, counts):  # type: ignore[no-untyped-def]
    """Add the (context, rank symbol) pairs of every pixel to ``counts`` [1024, K].

    ``values`` holds the rectangles' indices one after another (each row-major); the caller
    guarantees sum(h*w) == values.size and every value < K."""
    base = 0
    for r in range(rect_h.shape[0]):
        h = rect_h[r]
        w = rect_w[r]
        for y in range(h):
            for x in range(w):
                vw, vn, vnw, vne, vnn, vww, vnne, vnww = neighbours(values, base, w, y, x)
                c = context_of(vw, vn, vnw, vne, vnn, vww, vnne, vnww)
                s = to_rank(np.int64(values[base + y * w + x]), vw, vn, vnw, vne)
                counts[c, s] += 1
        base += h * w


def rects_of(shape: tuple[int, int] | None, rects: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The rectangle heights and widths (int64) of a sample: one ``shape`` (H, W), or the
    ``rects`` array [n, 2] of a masked sample's kept patches."""
    if rects is None:
        if shape is None:
            raise InvalidArgumentError("give the sample's shape or its rectangles")
        return np.array([shape[0]], np.int64), np.array([shape[1]], np.int64)
    arr = np.asarray(rects, dtype=np.int64).reshape(-1, 2)
    return np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])


def count_contexts(values: np.ndarray, rect_h: np.ndarray, rect_w: np.ndarray,
                   counts: np.ndarray) -> None:
    """Add the context histogram of one sample to ``counts`` (int64 [1024, K], in place).

    ``values``: uint8, the sample's stored indices (all < K), the rectangles' pixels one after
    another; ``rect_h``/``rect_w``: int64 rectangle sizes covering exactly ``values.size``."""
    vals = np.ascontiguousarray(values, dtype=np.uint8).reshape(-1)
    if counts.dtype != np.int64 or counts.ndim != 2 or counts.shape[0] != NUM_CONTEXTS:
        raise InvalidArgumentError(f"counts must be int64 [{NUM_CONTEXTS}, K], got {counts.dtype} {counts.shape}")
    if int((rect_h * rect_w).sum()) != vals.size:
        raise InvalidArgumentError(f"rectangles cover {int((rect_h * rect_w).sum())} pixels, the map has {vals.size}")
    if vals.size and int(vals.max()) >= counts.shape[1]:
        raise InvalidArgumentError(f"index {int(vals.max())} >= K = {counts.shape[1]}")
    count_kernel(vals, rect_h, rect_w, counts)


def normalise_counts(counts: np.ndarray) -> np.ndarray:
    """Frequencies (int64, same shape) for every row of ``counts`` [R, K] that has a count:
    each row sums to exactly 4096 and every symbol that occurred keeps a frequency >= 1
    (rounded proportionally; the difference goes to, or comes from, the largest entries).
    Rows without counts stay zero."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros_like(counts)
    totals = counts.sum(axis=1)
    for r in np.flatnonzero(totals):
        c = counts[r]
        f = np.where(c > 0, np.maximum(1, np.rint(c * (PROB_TOTAL / totals[r]))), 0).astype(np.int64)
        diff = PROB_TOTAL - int(f.sum())
        order = np.argsort(-c, kind="stable")
        j = 0
        while diff != 0:  # at most K*4096 steps; in practice a few
            s = order[j % order.size]
            if diff > 0:
                f[s] += diff
                diff = 0
            elif f[s] > 1:
                take = min(-diff, int(f[s]) - 1)
                f[s] -= take
                diff += take
            j += 1
        out[r] = f
    return out


@dataclass
class CtxModel:
    """A validated set of ``num_models`` models over K symbols (see the module docstring).

    ``rows`` (<u4 [R]) and ``stored_freq`` (<u2 [R*K]) are what the file stores;
    ``row_of[model * 1024 + context]`` is the row of that context or -1 (not stored); ``freq``
    and ``cum`` (int32 [R, K] and [R, K + 1]; ``cum_flat`` the same, 1-D) are the kernels'
    tables; ``row_start[model * 1024 + context]`` is that row's offset in ``cum_flat`` or -1;
    ``entry`` (int64, same index) is what the decoders read: ``row_start << 16 | cum[row, 1]``
    (symbol 0's frequency, the interior fast path's one load), -1 << 16 when not stored."""

    num_models: int
    k: int
    rows: np.ndarray
    stored_freq: np.ndarray = field(repr=False)
    row_of: np.ndarray = field(repr=False)
    freq: np.ndarray = field(repr=False)
    cum: np.ndarray = field(repr=False)
    cum_flat: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.int32))
    row_start: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.int32))
    entry: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, np.int64))

    def __post_init__(self) -> None:
        self.cum_flat = np.ascontiguousarray(self.cum.reshape(-1))
        # Where each (model, context) row starts in cum_flat, -1 when not stored (decoders).
        self.row_start = np.where(self.row_of < 0, -1, self.row_of * (self.k + 1)).astype(np.int32)
        first = self.cum[np.maximum(self.row_of, 0), 1] if self.cum.shape[0] else 0
        self.entry = np.where(self.row_of < 0, np.int64(-1) << 16,
                              (self.row_start.astype(np.int64) << 16) | first).astype(np.int64)

    @classmethod
    def from_arrays(cls, num_models: int, k: int, rows: np.ndarray, freq: np.ndarray) -> CtxModel:
        """Validate the stored arrays (``rows`` [R], ``freq`` [R*K]) and build the tables;
        raise :class:`ModelError` naming the first broken rule."""
        if not 1 <= num_models or num_models * NUM_CONTEXTS > MAX_MODEL_SLOTS:
            raise ModelError(f"{num_models} models x {NUM_CONTEXTS} contexts exceed {MAX_MODEL_SLOTS}")
        rows = np.asarray(rows)
        freq = np.asarray(freq)
        if rows.ndim != 1 or freq.ndim != 1 or freq.size != rows.size * k:
            raise ModelError(f"freq holds {freq.size} entries, expected rows ({rows.size}) x K ({k})")
        r64 = rows.astype(np.int64)
        if r64.size and (r64[0] < 0 or (np.diff(r64) <= 0).any()):
            raise ModelError("rows are not strictly increasing")
        if r64.size and r64[-1] >= num_models * NUM_CONTEXTS:
            raise ModelError(f"row key {int(r64[-1])} >= models x contexts = {num_models * NUM_CONTEXTS}")
        table = freq.astype(np.int64).reshape(rows.size, k)
        sums = table.sum(axis=1)
        bad = np.flatnonzero(sums != PROB_TOTAL)
        if bad.size:
            r = int(bad[0])
            raise ModelError(f"row {r} (model {int(r64[r]) // NUM_CONTEXTS}, context "
                             f"{int(r64[r]) % NUM_CONTEXTS}) sums to {int(sums[r])}, not {PROB_TOTAL}")
        row_of = np.full(num_models * NUM_CONTEXTS, -1, dtype=np.int32)
        row_of[r64] = np.arange(rows.size, dtype=np.int32)
        cum = np.zeros((rows.size, k + 1), dtype=np.int32)
        np.cumsum(table, axis=1, out=cum[:, 1:])
        return cls(int(num_models), int(k), rows.astype("<u4"), freq.astype("<u2"), row_of,
                   np.ascontiguousarray(table.astype(np.int32)), cum)

    @classmethod
    def fit(cls, counts: np.ndarray) -> CtxModel:
        """The model the writer stores for ``counts`` (int64 [num_models, 1024, K])."""
        m, nc, k = counts.shape
        flat = counts.reshape(m * nc, k)
        used = np.flatnonzero(flat.sum(axis=1))
        freq = normalise_counts(flat[used])
        return cls.from_arrays(m, k, used.astype("<u4"), freq.reshape(-1))

    def cost_bits(self, counts: np.ndarray) -> float:
        """Ideal code length in bits of data with these ``counts`` under this model."""
        m, nc, k = counts.shape
        flat = counts.reshape(m * nc, k)
        rows = self.row_of[: m * nc]
        used = np.flatnonzero(flat.sum(axis=1))
        if (rows[used] < 0).any():
            return float("inf")
        f = self.freq[rows[used]].astype(np.float64)
        c = flat[used].astype(np.float64)
        if ((f == 0) & (c > 0)).any():
            return float("inf")
        return float(-(c * np.log2(np.where(f > 0, f, 1) / PROB_TOTAL)).sum())
