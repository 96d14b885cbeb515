"""Benchmark of coreset selection: scaling of BGFDQ and quality against the random baseline.

    python benchmarks/selection.py [--sizes 10000 50000 200000] [--dim 512] [--k 20]
                                   [--ratio 0.2] [--block-size 4096] [--quality-n 20000]

Part 1 (scaling). For each size M, one class of M synthetic feature vectors (a Gaussian mixture,
see ``mixture``) is built in a fresh subprocess, then two steps are measured separately:
neighbour identification (blockwise top-k, :func:`dcqformat.select.knn_blockwise`) and the
neighbour-aware selection loop (:func:`dcqformat.select.bgfdq.neighbour_aware_order`).

How memory is measured (both are reported, neither alone is complete):
* ``tracemalloc`` peak: Python and NumPy allocations (NumPy reports its buffers to tracemalloc);
  it does NOT see torch's CPU allocator.
* RSS peak above the RSS at the start of the step: Linux ``VmHWM`` from /proc/self/status after
  resetting it by writing ``5`` to /proc/self/clear_refs; this sees torch tensors too. Where the
  reset is not allowed the script falls back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
  (a high-water mark since process start; the data are generated in chunks so that generation
  does not set it) and says so in the table.
The kNN step runs once with tracemalloc on (it makes few Python allocations, so tracing does
not slow it); the loop runs twice, timed without tracing and then traced for memory.

Part 2 (quality). On ``--quality-n`` samples (one class), BGFDQ vs random at the same size:
coverage R(S) (mean distance of every sample to its nearest selected; lower = better) and
redundancy Gamma(S) (mean distance of a selected sample to its nearest other selected;
higher = less redundant), mean over 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

MB = 1024.0 * 1024.0


def mixture(n: int, dim: int, seed: int = 0, components: int = 50, rank: int = 16) -> np.ndarray:
    """``n x dim`` float32 features from a Gaussian mixture with unequal weights.

    Each component is a centre (N(0, 1) per coordinate) plus a rank-``rank`` Gaussian (scale 0.5
    per latent direction) plus isotropic noise (0.05): clusters of low intrinsic dimension, as
    penultimate-layer features tend to be. Generated in chunks of 8192 rows in float32.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((components, dim), dtype=np.float32)
    bases = rng.standard_normal((components, rank, dim), dtype=np.float32) / np.sqrt(rank)
    weights = rng.dirichlet(np.full(components, 0.5))
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 8192):
        e = min(n, s + 8192)
        comp = rng.choice(components, size=e - s, p=weights)
        z = rng.standard_normal((e - s, rank), dtype=np.float32) * np.float32(0.5)
        out[s:e] = centres[comp] + np.einsum("nr,nrd->nd", z, bases[comp])
        out[s:e] += np.float32(0.05) * rng.standard_normal((e - s, dim), dtype=np.float32)
    return out


# -- memory probes ----------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _rss_mb() -> float:
    kb = _status_kb("VmRSS")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return kb / 1024.0


def _peak_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return kb / 1024.0


def _measure(fn: Any, trace: bool) -> tuple[Any, float, float | None, float, str]:
    """Run fn; return (result, seconds, tracemalloc peak MB or None, RSS peak above start MB, how)."""
    how = "VmHWM (reset)" if _reset_hwm() else "ru_maxrss (no reset)"
    rss0 = _rss_mb()
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    tm = None
    if trace:
        tm = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    return out, dt, tm, max(0.0, _peak_mb() - rss0), how


# -- child: one size --------------------------------------------------------------------------
def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    import torch

    from dcqformat.select.bgfdq import neighbour_aware_order
    from dcqformat.select.knn import knn_blockwise

    m, dim, k = cfg["m"], cfg["dim"], cfg["k"]
    x = mixture(m, dim, seed=1)
    xt = torch.from_numpy(x)
    rss_data = _rss_mb()
    (d, nbr), t_knn, tm_knn, rss_knn, how = _measure(
        lambda: knn_blockwise(xt, k, block_size=cfg["block_size"], device="cpu"), trace=True
    )
    nbr_np = nbr.numpy()
    d_np = d.double().numpy()
    budget = int(np.floor(cfg["ratio"] * m + 0.5))

    def loop() -> tuple[np.ndarray, int]:
        rng = np.random.default_rng(0)
        return neighbour_aware_order(
            nbr_np, d_np, budget, cfg["ratio"], rng=rng, features=xt, block_size=cfg["block_size"]
        )

    (order, refills), t_loop, _, _, _ = _measure(loop, trace=False)
    _, _, tm_loop, rss_loop, _ = _measure(loop, trace=True)
    return {
        "m": m,
        "threads": torch.get_num_threads(),
        "t_knn": t_knn,
        "tm_knn": tm_knn,
        "rss_knn": rss_knn,
        "t_loop": t_loop,
        "tm_loop": tm_loop,
        "rss_loop": rss_loop,
        "kept": int(order.shape[0]),
        "refills": refills,
        "features_mb": x.nbytes / MB,
        "knn_out_mb": (d.numel() * d.element_size() + nbr.numel() * nbr.element_size()) / MB,
        "rss_after_data_mb": rss_data,
        "rss_method": how,
        "load": os.getloadavg()[0],
    }


def _run_child(cfg: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child for M={cfg['m']} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- quality ----------------------------------------------------------------------------------
def _quality(
    n: int, dim: int, k: int, ratios: list[float], block_size: int, rank: int
) -> list[dict[str, Any]]:
    from dcqformat.select import bgfdq_select, coverage, random_select, redundancy

    x = mixture(n, dim, seed=2, rank=rank)
    y = np.zeros(n, dtype=np.int64)
    rows = []
    for ratio in ratios:
        acc: dict[str, list[float]] = {}
        for seed in range(3):
            t0 = time.perf_counter()
            b = bgfdq_select(x, y, ratio, k=k, seed=seed, device="cpu", block_size=block_size)
            tb = time.perf_counter() - t0
            t0 = time.perf_counter()
            r = random_select(y, ratio, seed=seed)
            tr = time.perf_counter() - t0
            assert b.size == r.size
            for name, sel, t in (("random", r, tr), ("bgfdq", b, tb)):
                acc.setdefault(name + "_R", []).append(coverage(x, sel, block_size=block_size))
                acc.setdefault(name + "_G", []).append(redundancy(x, sel, block_size=block_size))
                acc.setdefault(name + "_t", []).append(t)
                acc.setdefault(name + "_m", []).append(sel.size)
            acc.setdefault("refills", []).append(b.params["refills_per_class"]["0"])
        rows.append({"ratio": ratio, **{key: float(np.mean(v)) for key, v in acc.items()}})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10000, 50000, 200000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--quality-n", type=int, default=20000)
    ap.add_argument("--quality-ratios", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument(
        "--quality-ranks",
        type=int,
        nargs="+",
        default=[16, 2],
        help="intrinsic dimension of the mixture components in the quality part",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return

    import torch

    print(
        f"# Selection benchmark\n\n{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {np.__version__}, device cpu\n"
    )
    if args.sizes:
        _print_scaling(args)
    if args.quality_n > 0:
        _print_quality(args)


def _print_scaling(args: argparse.Namespace) -> None:
    print(
        f"## Scaling: one class of M samples, dim={args.dim}, K={args.k}, ratio={args.ratio}, "
        f"block_size={args.block_size}\n"
    )
    print(
        "| M / class | kNN time (s) | kNN RSS peak (MB) | kNN tracemalloc peak (MB) "
        "| loop time (s) | loop RSS peak (MB) | loop tracemalloc peak (MB) | kept | refills "
        "| features (MB) | kNN lists (MB) | dense M×M f32 (MB) | load avg |"
    )
    print("|---:" * 13 + "|")
    how = ""
    for m in args.sizes:
        cfg = {
            "m": m,
            "dim": args.dim,
            "k": args.k,
            "ratio": args.ratio,
            "block_size": args.block_size,
        }
        r = _run_child(cfg)
        how = r["rss_method"]
        print(
            f"| {m:,} | {r['t_knn']:.1f} | {r['rss_knn']:.0f} | {r['tm_knn']:.1f} "
            f"| {r['t_loop']:.2f} | {r['rss_loop']:.0f} | {r['tm_loop']:.1f} | {r['kept']:,} "
            f"| {r['refills']} | {r['features_mb']:.0f} | {r['knn_out_mb']:.1f} "
            f"| {m * m * 4 / MB:,.0f} | {r['load']:.1f} |",
            flush=True,
        )
    print(
        f"\nRSS peak = high-water mark above the RSS at the start of the step ({how}); it "
        "includes torch's allocations (distance tiles, running top-k, outputs). tracemalloc "
        "sees Python/NumPy only. Features are not counted (allocated before the step). "
        "'dense M×M f32' is what a dense distance matrix alone would need. 'load avg' is the "
        "1-minute load average at the end of the step: this machine is shared, so a load above "
        "the core count means the times are inflated by other processes.\n"
    )


def _print_quality(args: argparse.Namespace) -> None:
    print(
        f"## Quality: {args.quality_n:,} samples (one class), dim={args.dim}, K={args.k}, "
        "mean of 3 seeds\n"
    )
    print(
        "| intrinsic rank | ratio | m | R(S) random | R(S) bgfdq | Γ(S) random | Γ(S) bgfdq "
        "| bgfdq refills | time random (s) | time bgfdq (s) |"
    )
    print("|---:" * 10 + "|")
    for rank in args.quality_ranks:
        rows = _quality(
            args.quality_n, args.dim, args.k, args.quality_ratios, args.block_size, rank
        )
        for row in rows:
            print(
                f"| {rank} | {row['ratio']:.2f} | {row['bgfdq_m']:,.0f} | {row['random_R']:.4f} "
                f"| {row['bgfdq_R']:.4f} | {row['random_G']:.4f} | {row['bgfdq_G']:.4f} "
                f"| {row['refills']:.1f} | {row['random_t']:.3f} | {row['bgfdq_t']:.1f} |",
                flush=True,
            )
    print(
        "\nR(S): mean Euclidean distance of every sample to its nearest selected sample "
        "(lower = better coverage). Γ(S): mean distance of each selected sample to its nearest "
        "other selected sample (higher = less redundant). 'intrinsic rank' is the dimension of "
        "each mixture component's latent Gaussian (features live in 512-d either way)."
    )


if __name__ == "__main__":
    main()
