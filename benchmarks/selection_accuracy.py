"""Train on a coreset, test on the original test set: bgfdq, semred, el2n and random on
Fashion-MNIST at 10 % and 30 % (issue #5), mean ± std over seeds.

    python benchmarks/selection_accuracy.py [--pool 10000] [--test 5000] [--seeds 0 1]
                                            [--ratios 0.1 0.3] [--epochs 4]

Protocol.
- Data: a class-stratified ``--pool`` of the 60,000 Fashion-MNIST training images (the set the
  coresets are drawn from) and a class-stratified ``--test`` of the 10,000 test images (seed 0).
- Features and scores come from the proxy exactly as ``convert(coreset=...)`` computes them:
  the library's ``train_proxy`` (convert's defaults: 32 px thumbnails made by the pipeline's own
  ``_thumbnail``, 4 epochs, seeded) with the EL2N epoch hook; then, per batch of 64 originals,
  ``TaskModel.prepare`` / ``forward_maps`` and :class:`SelectionStage.observe_model` (embedding =
  the last block averaged over space; EL2N from the proxy snapshot after epoch 1); the coresets
  are made by :meth:`SelectionStage.select` (what ``convert`` runs in its ``select`` stage).
  Seed ``s`` is the proxy's seed, the selection's seed and the CNN's seed.
- Training: ``benchmarks/train_probe.py``'s small CNN and ``train_eval`` (SGD nesterov, lr 0.1,
  wd 5e-4, batch 128, 5 % warm-up + cosine, random crop + flip, 28x28x1, width 16) with the SAME
  number of steps for every row: ``--epochs`` passes over the full pool (a 10 % coreset sees its
  images ten times as often). Anchors in the same run: the full pool (100 %) and random.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

METHODS = ("bgfdq", "semred", "el2n", "random")


def _stratified(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    from train_probe import _stratified_take  # type: ignore[import-not-found]

    return np.asarray(_stratified_take(labels, n, seed))


def proxy_signals(x: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> dict[str, Any]:
    """Train the proxy as convert does and collect embeddings and EL2N for every pool image."""
    import torch

    from dcqformat.encode.model import deterministic, train_proxy
    from dcqformat.encode.selection_stage import SelectionStage
    from dcqformat.encode.stages.proxy import thumbnail as _thumbnail

    t0 = time.perf_counter()
    collector = SelectionStage.from_args("el2n:0.5", None, False, seed)
    both = SelectionStage.from_args("bgfdq:0.5", None, False, seed)
    with deterministic(seed):
        thumbs = torch.stack([_thumbnail(a[..., None], 32) for a in x])
        task = train_proxy(thumbs, torch.from_numpy(y.astype(np.int64)), 10, epochs=epochs,
                           seed=seed, device="cpu", on_epoch_model=collector.epoch_hook())
        t_train = time.perf_counter() - t0
        task.module.eval()
        with torch.no_grad():
            for s in range(0, len(x), 64):
                xb = torch.from_numpy(np.ascontiguousarray(x[s:s + 64, None]))
                inp = task.prepare(xb)
                logits, _sh, last = task.forward_maps(inp)
                labels = y[s:s + 64].tolist()
                collector.observe_model(inp, logits, last, labels, 10)
                both.observe_model(inp, logits, last, labels, 10)
    return {"emb": both._emb, "el2n": collector._el2n, "scorer": collector._scorer,
            "identity": dict(task.identity), "train_s": t_train,
            "total_s": time.perf_counter() - t0}


def make_coreset(method: str, ratio: float, seed: int, sig: dict[str, Any],
                 y: np.ndarray) -> tuple[np.ndarray, float]:
    """The coreset ``convert(coreset=f"{method}:{ratio}", seed=seed)`` would store."""
    import torch

    from dcqformat.encode.selection_stage import SelectionStage

    st = SelectionStage.from_args(f"{method}:{ratio}", None, False, seed)
    st._emb, st._el2n, st._scorer = sig["emb"], sig["el2n"], sig["scorer"]
    t0 = time.perf_counter()
    plan = st.select(y, [str(i) for i in range(len(y))], sig["identity"], torch.device("cpu"))
    return plan.stored, time.perf_counter() - t0


def result_rows(rows: dict[tuple[str, float], list[dict[str, Any]]], ratios: list[float]) -> list[str]:
    """The report's table rows (the full pool, then every method at every ratio: accuracy mean ±
    std over the runs and its distance to random and to the full pool), then the per-seed
    accuracies."""
    def stats(key: tuple[str, float]) -> tuple[float, float]:
        acc = [100 * r["accuracy"] for r in rows[key]]
        return float(np.mean(acc)), float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0

    lines = []
    full_m, _ = stats(("full pool", 1.0))
    for key in [("full pool", 1.0)] + [(m, r) for r in ratios for m in METHODS]:
        mean, sd = stats(key)
        rnd = stats(("random", key[1]))[0] if key[0] != "full pool" else mean
        runs = rows[key]
        lines.append(
            f"| {key[0]} | {key[1]:.0%} | {int(np.mean([r['m'] for r in runs])):,} | {mean:.2f} ± {sd:.2f} "
            f"| {mean - rnd:+.2f} | {mean - full_m:+.2f} | {np.mean([r['select_s'] for r in runs]):.1f} "
            f"| {np.mean([r['train_seconds'] for r in runs]):.0f} |")
    return lines + [
        "",
        "Per-seed accuracies (%): " + "; ".join(
            f"{k[0]}@{k[1]:.0%}: " + ", ".join(f"{100 * r['accuracy']:.2f}" for r in v)
            for k, v in rows.items()),
    ]


def main(argv: list[str] | None = None) -> int:
    """Train the full pool and every method at every ratio for each seed, then print the
    markdown report and write it to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=10000)
    ap.add_argument("--test", type=int, default=5000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--epochs", type=float, default=4.0,
                    help="CNN steps = ceil(epochs * pool / 128) for every row")
    ap.add_argument("--proxy-epochs", type=int, default=4)
    ap.add_argument("--workdir", default="/tmp/selection_accuracy")
    ap.add_argument("--out", default=str(HERE / "results" / "selection_accuracy.md"))
    args = ap.parse_args(argv)

    import torch
    from _data import fashion_mnist  # type: ignore[import-not-found]
    from train_probe import Settings, train_eval  # type: ignore[import-not-found]

    torch.set_num_threads(1)
    t_start = time.perf_counter()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    xtr, ytr = fashion_mnist("train")
    xte, yte = fashion_mnist("t10k")
    pi = _stratified(ytr, args.pool, 0)
    ti = _stratified(yte, args.test, 0)
    x, y = xtr[pi], ytr[pi].astype(np.int64)
    np.savez(work / "train.npz", x=x[..., None], y=y)
    np.savez(work / "test.npz", x=xte[ti][..., None], y=yte[ti].astype(np.int64))
    st = Settings("fashion-mnist", len(y), len(ti), resolution=28, channels=1, width=16,
                  epochs=args.epochs, pad=2)
    source = {"kind": "npz", "path": str(work / "train.npz")}
    test = {"path": str(work / "test.npz")}

    rows: dict[tuple[str, float], list[dict[str, Any]]] = {}
    proxy_s: list[float] = []
    loads: list[float] = []
    for seed in args.seeds:
        sig = proxy_signals(x, y, seed, args.proxy_epochs)
        proxy_s.append(sig["total_s"])
        print(f"seed {seed}: proxy + signals {sig['total_s']:.0f} s", file=sys.stderr, flush=True)
        r = train_eval({**source}, test, st, seed, 10)
        rows.setdefault(("full pool", 1.0), []).append({**r, "select_s": 0.0, "m": len(y)})
        for ratio in args.ratios:
            for method in METHODS:
                idx, t_sel = make_coreset(method, ratio, seed, sig, y)
                r = train_eval({**source, "indices": idx}, test, st, seed, 10)
                rows.setdefault((method, ratio), []).append({**r, "select_s": t_sel, "m": len(idx)})
                loads.append(os.getloadavg()[0])
                print(f"seed {seed} {method}:{ratio}: {100 * r['accuracy']:.2f} % "
                      f"({len(idx)} images, select {t_sel:.1f} s, train {r['train_seconds']:.0f} s)",
                      file=sys.stderr, flush=True)

    wall = time.perf_counter() - t_start
    lines = [
        "# Coreset selection: train on the selection, test on the original test set",
        "",
        f"- command: `{shlex.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: "
        f"{os.cpu_count()} CPU(s), {platform.machine()}, torch {torch.__version__}, 1 torch thread, "
        f"`nice -n 5`; shared with other jobs: 1-min load average during the run "
        f"{min(loads or [0]):.1f}..{max(loads or [0]):.1f} (times are inflated accordingly)",
        f"- data: Fashion-MNIST, pool = {len(y):,} of the 60,000 training images (class-stratified, "
        f"seed 0), test = {len(ti):,} of the 10,000 test images (class-stratified, seed 0), 28x28 grey",
        f"- proxy / features / EL2N: `train_proxy` as `convert` runs it (32 px, {args.proxy_epochs} "
        f"epochs, seed = run seed) with the EL2N epoch hook (snapshot after epoch 1 scores every "
        f"pool image); embedding = last block averaged over space (64-d); coresets by "
        f"`SelectionStage.select` (convert's select stage); proxy + signals "
        f"{np.mean(proxy_s):.0f} s per seed",
        f"- CNN: `train_probe.build_cnn` width 16 via `train_probe.train_eval`; {st.steps} SGD steps "
        f"of 128 (= {args.epochs:g} epochs of the full pool) for EVERY row; seeds {args.seeds} "
        "(seed = proxy, selection and CNN seed); mean ± sample std",
        f"- wall time of the whole run: {wall / 60:.1f} min",
        "",
        "| selection | ratio | images | accuracy % (mean ± std) | Δ vs random (pts) | Δ vs full pool (pts) "
        "| select s | train s/run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += result_rows(rows, args.ratios)
    from _common import emit_report  # type: ignore[import-not-found]

    emit_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
