"""§14 of spec/dcq-v1.md, the ctx payload, for ``tools/independent_reader.py``: the checks
of the /ctx model when a file is opened, and the decoding of one sample's stream.

Written from the spec alone, like the reader: h5py and NumPy, never dcqformat (nor the reader
itself: a broken rule is a :class:`CtxRuleError`, which the reader reports in its own
error family and stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np


class CtxRuleError(ValueError):
    """A rule of §14 broken; the message says which (the reader adds file, family and stage)."""


def read_ctx_model(h5: h5py.File, num_clusters: int, palette_size: int, lengths: Sequence[int],
                   dataset: Callable[..., h5py.Dataset], checked: Callable[..., np.ndarray],
                   ) -> dict[str, Any]:
    """§14.1: the checked model of /ctx, ``{"per_cluster": bool, "row": key -> K frequencies}``,
    for a file of ``num_clusters`` palettes of ``palette_size`` colours whose samples store
    ``lengths`` bytes. ``dataset`` and ``checked`` are the reader's dataset readers (their
    errors pass through); a broken rule of §14 is a CtxRuleError."""
    group = h5.get("ctx")
    if not isinstance(group, h5py.Group):
        raise CtxRuleError("payload_encoding ctx but no /ctx group")
    attrs = {}
    for name in ("models", "context"):
        value = group.attrs.get(name)
        attrs[name] = value.decode() if isinstance(value, bytes) else value
    if attrs["models"] not in ("file", "cluster") or attrs["context"] != "neighbours-10":
        raise CtxRuleError(f"/ctx attributes {attrs}")
    bits = np.asarray(group.attrs.get("prob_bits", -1))
    if bits.shape != () or bits.dtype.kind not in "iu" or int(bits) != 12:
        raise CtxRuleError("/ctx prob_bits is not 12")
    m = 1 if attrs["models"] == "file" else num_clusters
    if 1024 * m > 1 << 22:
        raise CtxRuleError(f"{m} models are too many")
    declared = dataset(h5, "ctx/rows", "<u4", None).shape
    if declared[0] > 1024 * m or declared[0] * palette_size > 1 << 24:  # before reading
        raise CtxRuleError(f"/ctx/rows declares {declared[0]} rows")
    rows = [int(v) for v in checked(h5, "ctx/rows", "<u4", None)]
    if any(b <= a for a, b in zip(rows, rows[1:], strict=False)) or (rows and rows[-1] >= 1024 * m):
        raise CtxRuleError("/ctx/rows not increasing or out of range")
    k = palette_size
    freq = checked(h5, "ctx/freq", "<u2", (len(rows) * k,))
    table = [[int(v) for v in freq[r * k:(r + 1) * k]] for r in range(len(rows))]
    for r, f in enumerate(table):
        if sum(f) != 4096:  # Python ints: no wrap-around
            raise CtxRuleError(f"/ctx row {r} sums to {sum(f)}")
    for i, length in enumerate(lengths):
        if length < 4:
            raise CtxRuleError(f"sample {i}: ctx stream under 4 bytes")
    return {"per_cluster": attrs["models"] == "cluster", "row": dict(zip(rows, table, strict=True))}


def neighbours(m: list[int], w: int, y: int, x: int) -> tuple[int, ...]:
    """§14.2: W, N, NW, NE, NN, WW, NNE, NWW of (y, x) in a rectangle of width w."""
    def at(yy: int, xc: int) -> int:
        return m[yy * w + xc]
    W = at(y, x - 1) if x > 0 else (at(y - 1, x) if y > 0 else 0)
    N = at(y - 1, x) if y > 0 else W
    NW = at(y - 1, x - 1) if y > 0 and x > 0 else N
    NE = at(y - 1, x + 1) if y > 0 and x + 1 < w else N
    NN = at(y - 2, x) if y > 1 else N
    WW = at(y, x - 2) if x > 1 else W
    NNE = at(y - 2, x + 1) if y > 1 and x + 1 < w else NE
    NWW = at(y - 1, x - 2) if y > 0 and x > 1 else NW
    return W, N, NW, NE, NN, WW, NNE, NWW


def decode_stream(stored: bytes, rects: list[tuple[int, int]], row: dict[int, list[int]],
                  model: int, palette_size: int) -> np.ndarray:
    """§14.2-§14.4: the indices of one sample's stream, pixel by pixel over the rectangles
    ``rects`` (H, W), with model ``model`` of the rows ``row``; a stream the spec refuses is
    a CtxRuleError saying why."""
    if len(stored) < 4:
        raise CtxRuleError("shorter than 4 bytes")
    x = int.from_bytes(stored[:4], "little")
    if not 1 << 23 <= x < 1 << 31:
        raise CtxRuleError("first state out of range")
    pos, out = 4, []
    for h, w in rects:
        m: list[int] = []
        for y in range(h):
            for xx in range(w):
                W, N, NW, NE, NN, WW, NNE, NWW = neighbours(m, w, y, xx)
                c = sum(int(e) << b for b, e in enumerate(
                    (N == W, NW == W, NW == N, NE == W, NE == N, NE == NW, NN == N, WW == W,
                     NNE == NE, NWW == NW)))
                f = row.get(1024 * model + c)
                if f is None:
                    raise CtxRuleError(f"context {c} of model {model} has no row")
                slot, s, cum = x % 4096, 0, 0
                while not cum <= slot < cum + f[s]:
                    cum += f[s]
                    s += 1
                x = f[s] * (x // 4096) + slot - cum
                while x < 1 << 23:
                    if pos == len(stored):
                        raise CtxRuleError("truncated")
                    x, pos = x * 256 + stored[pos], pos + 1
                d: list[int] = []
                for v in (W, N, NW, NE):
                    if v not in d:
                        d.append(v)
                if s < len(d):
                    m.append(d[s])
                else:
                    outside = [v for v in range(palette_size + len(d)) if v not in d]
                    m.append(outside[s - len(d)])
        out.extend(m)
    if x != 1 << 23 or pos != len(stored):
        raise CtxRuleError("does not end in state 2**23 exactly at its last byte")
    return np.array(out, dtype=np.int64)
