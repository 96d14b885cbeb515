"""Which context model for the ctx payload (#12): ideal code lengths of candidate models on the
index maps of real .dcq files, the measurements behind spec §14's choices.

    python benchmarks/ctx_design.py FILE.dcq [FILE.dcq ...]   # e.g. files made by convert

For each file, bytes per image of: the stored streams' ideal length under a static model fitted
to the file (12-bit frequencies, as the writer stores them) plus 4 state bytes per image, and
the model's deflated bytes (shuffled <u2 frequencies, as HDF5 stores them); for one model per
file and one per cluster. Candidates: contexts from the full values of W, N, NW, NE (K⁴
contexts) with the index as symbol, or rank symbols (§14.3) with equality-bit contexts (6 bits
of W, N, NW, NE; + [NN=N], [WW=W]; + [NNE=NE], [NWW=NW] = spec §14.2), with or without W's value.
``adaptive`` estimates an adaptive model initialised from the shared one (counts start at T x
the shared probabilities, +1 per coded symbol; on a subsample of images): it codes smaller but
needs a per-pixel model update (and a division or binary decisions) on the decode path.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dcqformat import DCQFile  # noqa: E402
from dcqformat.codecs.ctx_model import normalise_counts  # noqa: E402


def neighbours(m: np.ndarray) -> dict[str, np.ndarray]:
    """§14.2's eight neighbours of every pixel of maps [N, H, W], with the border fall-backs."""
    z = np.zeros_like
    W = z(m); W[:, :, 1:] = m[:, :, :-1]; W[:, 1:, 0] = m[:, :-1, 0]  # noqa: E702
    N = z(m); N[:, 1:] = m[:, :-1]; N[:, 0] = W[:, 0]  # noqa: E702
    NW = N.copy(); NW[:, 1:, 1:] = m[:, :-1, :-1]  # noqa: E702
    NE = N.copy(); NE[:, 1:, :-1] = m[:, :-1, 1:]  # noqa: E702
    NN = N.copy(); NN[:, 2:] = m[:, :-2]  # noqa: E702
    WW = W.copy(); WW[:, :, 2:] = m[:, :, :-2]  # noqa: E702
    NNE = NE.copy(); NNE[:, 2:, :-1] = m[:, :-2, 1:]  # noqa: E702
    NWW = NW.copy(); NWW[:, 1:, 2:] = m[:, :-1, :-2]  # noqa: E702
    return {"W": W, "N": N, "NW": NW, "NE": NE, "NN": NN, "WW": WW, "NNE": NNE, "NWW": NWW}


def rank_symbols(v: np.ndarray, nb: dict[str, np.ndarray]) -> np.ndarray:
    """§14.3, vectorised."""
    order = [nb["W"], nb["N"], nb["NW"], nb["NE"]]
    out = np.full(v.shape, -1, np.int64)
    count = np.zeros(v.shape, np.int64)
    below = np.zeros(v.shape, np.int64)
    for j, d in enumerate(order):
        new = np.ones(v.shape, bool)
        for e in order[:j]:
            new &= d != e
        hit = new & (v == d) & (out < 0)
        out[hit] = count[hit]
        below += new & (d < v)
        count += new
    esc = out < 0
    out[esc] = (count + v - below)[esc]
    return out


def cost(ctx: np.ndarray, sym: np.ndarray, groups: np.ndarray, n_ctx: int, k: int) -> tuple[float, int]:
    """(stream bytes incl. 4 state bytes per image, model bytes) of a static 12-bit model."""
    n = ctx.shape[0]
    g = np.broadcast_to(groups[:, None, None], ctx.shape)
    counts = np.bincount(((g * n_ctx + ctx) * k + sym).ravel(), minlength=(int(groups.max()) + 1) * n_ctx * k)
    counts = counts.reshape(-1, k)
    used = counts.sum(1) > 0
    freq = normalise_counts(counts[used])
    bits = -(counts[used] * np.log2(np.maximum(freq, 1) / 4096)).sum()
    model = 0
    for arr in (freq.astype("<u2"), np.flatnonzero(used).astype("<u4")):
        raw = arr.reshape(-1).view(np.uint8).reshape(-1, arr.dtype.itemsize)
        model += len(zlib.compress(np.ascontiguousarray(raw.T).tobytes(), 6))
    return bits / 8 + 4 * n, model


def adaptive(ctx: np.ndarray, sym: np.ndarray, n_ctx: int, k: int, t: float, step: int) -> float:
    """Ideal bytes per image of an adaptive model started at t x the shared probabilities."""
    c, s = ctx.reshape(ctx.shape[0], -1), sym.reshape(sym.shape[0], -1)
    shared = np.bincount((c * k + s).ravel(), minlength=n_ctx * k).reshape(n_ctx, k) + 0.01
    p0 = shared / shared.sum(1, keepdims=True)
    total, images = 0.0, range(0, c.shape[0], step)
    for i in images:
        table = p0 * t
        for cc, ss in zip(c[i].tolist(), s[i].tolist(), strict=True):
            total -= np.log2(table[cc, ss] / table[cc].sum())
            table[cc, ss] += 1
    return total / 8 / len(images) + 4


def report(path: str) -> list[str]:
    """Markdown rows for one file (all its samples must share one size)."""
    f = DCQFile(path)
    maps = np.stack([f.index_map(i) for i in range(len(f))]).astype(np.int64)
    k, n, clusters = f.palette_size, len(f), f.clusters
    nb = neighbours(maps)
    eq = sum((nb[a] == nb[b]).astype(np.int64) << i for i, (a, b) in enumerate(
        [("N", "W"), ("NW", "W"), ("NW", "N"), ("NE", "W"), ("NE", "N"), ("NE", "NW"),
         ("NN", "N"), ("WW", "W"), ("NNE", "NE"), ("NWW", "NW")]))
    ranks = rank_symbols(maps, nb)
    cands = []
    if k ** 4 <= 1 << 16:
        full = nb["W"] + k * nb["N"] + k * k * nb["NW"] + k ** 3 * nb["NE"]
        cands.append(("values of W, N, NW, NE; symbol = index", full, maps, k ** 4))
    cands += [("rank; 6 equality bits", eq & 63, ranks, 64),
              ("rank; + [NN=N], [WW=W]", eq & 255, ranks, 256),
              ("rank; + [NNE=NE], [NWW=NW] (spec §14.2)", eq, ranks, 1024)]
    if k <= 16:
        cands.append(("rank; spec's 10 bits + W's value", eq + 1024 * nb["W"], ranks, 1024 * k))
    lines = [f"**{Path(path).name}**: {n} images {maps.shape[1]}×{maps.shape[2]}, q = {f.bits}, "
             f"K = {k}, C = {f.num_clusters}; stored as {f.payload_encoding}, "
             f"{f.metadata.payload_size / n:.1f} B/image payload", "",
             "| contexts | per file: streams + model = total | per cluster: streams + model = total |",
             "|---|---:|---:|"]
    for name, ctx, sym, n_ctx in cands:
        cells = []
        for groups in (np.zeros(n, np.int64), clusters):
            stream, model = cost(ctx, sym, groups, n_ctx, k)
            cells.append(f"{stream / n:.1f} + {model / n:.1f} = {(stream + model) / n:.1f}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if k ** 4 <= 1 << 16:
        step = max(1, n // 200)
        est = adaptive(full, maps, k ** 4, k, 4.0, step)
        lines.append(f"| adaptive, values of W, N, NW, NE, from the shared model (T = 4; every "
                     f"{step}th image) | {est:.1f} (streams only) | |")
    return lines + [""]


def main(argv: list[str]) -> int:
    """Print the table of every file given."""
    if not argv:
        print(__doc__)
        return 1
    for path in argv:
        print("\n".join(report(path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
