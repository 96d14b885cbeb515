"""Patch dropping (issue #6): bytes saved at fixed 25 % and with spd, and train-on-compressed /
test-on-original accuracy on Fashion-MNIST.

    python benchmarks/patchdrop.py                    # both datasets, 2 seeds (~20 min on 2 cores)
    python benchmarks/patchdrop.py --quick            # tiny, for iteration

For each dataset one proxy task model (the library's ``train_proxy``, as in
``benchmarks/train_probe.py``) is trained once and passed to every ``convert``, so the three
files differ only in ``patch_drop``: ``none`` (the anchor), ``fixed:0.25`` and ``spd``, all at
q = 2, C = 20, ``payload_encoding="auto"``, seed 0. Reported per file: bytes (every byte of the
.dcq), bytes saved against the no-drop file of the same run, the kept-patch fraction, the mean θ,
PSNR against the originals (dropped patches decoded with the stored fill colour).

Accuracy (Fashion-MNIST only): the CNN, schedule and augmentation of ``train_probe.py``
(imported, not copied), trained on each .dcq read through ``DCQDataset`` (stored fill) and on
the original images, tested on the ORIGINAL test set; mean ± sample std over ``--seeds`` seeds.
Data: the class-stratified Fashion-MNIST subset of ``train_probe.py`` (``--fm-train``, default
10,000 of 60,000) and the emoji64 80 % training split (bytes only).
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from train_probe import (  # noqa: E402
    Config,
    Scheduler,
    default_settings,
    prepare_dataset,
    task_convert,
    task_proxy,
    task_train,
)

RESULTS = HERE / "results"
DROPS = ("none", "fixed:0.25", "spd")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def task_convert_drop(ds: dict[str, Any], drop: str, proxy: str, dst: str) -> dict[str, Any]:
    """One convert (q=2) with ``patch_drop=drop``; adds the file's patch-mask report."""
    from dcqformat import DCQFile

    extra = {} if drop == "none" else {"patch_drop": drop}
    d = task_convert(ds, Config(f"dcq-q2-{drop}", "dcq", "patch drop " + drop, 2, extra), proxy, dst)
    f = DCQFile(dst)
    d["patch_mask"] = f.info().get("patch_mask")
    d["payload_bytes"] = f.info()["payload_bytes"]
    d["payload_encoding"] = f.payload_encoding
    return d


def _acc(runs: list[dict[str, Any]]) -> str:
    a = np.array([100 * r["accuracy"] for r in runs])
    return f"{a.mean():.2f} ± {a.std(ddof=1) if a.size > 1 else 0.0:.2f}"


def render(ds: dict[str, Any], state: dict[str, Any], st: Any, seeds: list[int], argv: list[str],
           wall: float) -> str:
    conv = state["convert"]
    anchor = conv["none"]
    lines = [
        f"# Patch dropping: {ds['name']}",
        "",
        f"- command: `{shlex.join(['python', 'benchmarks/patchdrop.py', *argv])}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: "
        f"{os.cpu_count()} CPU(s) shared with other jobs (load avg at the end "
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}), python {platform.python_version()}; "
        f"wall time of the run so far {wall / 60:.1f} min",
        f"- data: {ds['note']}",
        "- every .dcq: `convert(bits=2, clusters=20, payload_encoding='auto', seed=0, device='cpu', "
        "threads=1, model=<one proxy per dataset>, patch_drop=...)`; default patch size "
        "max(4, smallest side // 8); anchor = the same convert without patch_drop",
        "",
        "| patch_drop | file bytes | saved vs no drop | payload bytes (enc.) | P | kept patches | mean θ | "
        "PSNR dB | encode s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for drop in DROPS:
        c = conv.get(drop)
        if c is None:
            continue
        pm = c.get("patch_mask") or {}
        saved = anchor["file_bytes"] - c["file_bytes"]
        lines.append(
            f"| {drop} | {c['file_bytes']:,} | {saved:,} ({100 * saved / anchor['file_bytes']:.1f} %) | "
            f"{c['payload_bytes']:,} ({c['payload_encoding']}) | {pm.get('patch_size', '–')} | "
            f"{100 * pm.get('kept_patch_fraction', 1.0):.1f} % | {pm.get('mean_theta', 0.0):.3f} | "
            f"{c['psnr_mean_db']:.2f} | {c['seconds'] + state['proxy']['seconds']:.0f} |")
    spd = conv.get("spd")
    if spd and spd.get("patch_mask"):
        prov = spd.get("patch_drop") or {}
        lines += ["", f"spd: mean θ {spd['patch_mask']['mean_theta']:.3f}; images with θ = 0: "
                  f"{prov.get('theta_zero_images', '?')} of {spd['images']}; λ_C per class: "
                  f"{', '.join(f'{v:.3f}' for v in prov.get('lambda_per_class', []))}"]
    if state.get("train"):
        lines += ["", f"Accuracy (train on the encoded training set, test on the {ds['n_test']:,} ORIGINAL "
                  f"test images; mean ± sample std over seeds {seeds}; CNN width {st.width}, {st.steps} "
                  f"steps = {st.epochs:g} epochs, batch {st.batch}, SGD lr {st.lr}; train_probe.py's "
                  "model and augmentation):", "",
                  "| training data | bytes | accuracy % | Δ vs no drop (points) |", "|---|---:|---:|---:|"]
        base = np.mean([r["accuracy"] for r in state["train"].get("none", [])]) if state["train"].get("none") else None
        for name in ("original", *DROPS):
            runs = state["train"].get(name)
            if not runs:
                continue
            nbytes = f"{conv[name]['file_bytes']:,}" if name in conv else "– (originals)"
            delta = "" if base is None else f"{100 * (np.mean([r['accuracy'] for r in runs]) - base):+.2f}"
            lines.append(f"| {name if name != 'none' else 'dcq q2, no drop (anchor)'} | {nbytes} | "
                         f"{_acc(runs)} | {delta} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="fashion-mnist,emoji64")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--fm-train", type=int, default=10_000)
    ap.add_argument("--fm-test", type=int, default=10_000)
    ap.add_argument("--epochs", type=float, default=None, help="training epochs (default train_probe's: 8)")
    ap.add_argument("--no-original", action="store_true", help="skip training on the original images")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workdir", default="/tmp/patchdrop_bench")
    args = ap.parse_args(argv)
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.fm_train, args.fm_test = 1000, 1000
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seeds = list(range(args.seeds))
    sched = Scheduler(args.jobs)
    plans: list[tuple[dict[str, Any], dict[str, Any], Any]] = []
    for name in args.datasets.split(","):
        ds = prepare_dataset(name, work, fm_train=args.fm_train, fm_test=args.fm_test)
        if ds is None:
            continue
        st = default_settings(ds, args.quick, args.epochs)
        state: dict[str, Any] = {"convert": {}, "train": {}}
        plans.append((ds, state, st))
        proxy = str(work / name / "proxy.pt")
        test = {"path": str(Path(ds["dir"]) / "test.npz")}
        train = name == "fashion-mnist"

        def add_train(label: str, source: dict[str, Any], ds: dict[str, Any] = ds, st: Any = st,
                      state: dict[str, Any] = state, test: dict[str, Any] = test) -> None:
            for seed in seeds:
                sched.add(5, task_train, (source, test, st, seed, len(ds["classes"])),
                          lambda r, label=label, state=state: state["train"].setdefault(label, []).append(r))

        def converted(r: dict[str, Any], drop: str, dst: str, state: dict[str, Any] = state,
                      add_train: Any = add_train, train: bool = train, name: str = name) -> None:
            state["convert"][drop] = r
            _log(f"{name} {drop}: {r['file_bytes']:,} B, psnr {r['psnr_mean_db']:.2f}")
            if train:
                add_train(drop, {"kind": "dcq", "path": dst})

        def proxied(r: dict[str, Any], ds: dict[str, Any] = ds, state: dict[str, Any] = state,
                    proxy: str = proxy, converted: Any = converted, name: str = name) -> None:
            state["proxy"] = r
            _log(f"{name}: proxy trained in {r['seconds']:.0f} s")
            for drop in DROPS:
                dst = str(Path(ds["dir"]) / f"q2_{drop.replace(':', '')}.dcq")
                sched.add(1 if drop == "spd" else 2, task_convert_drop, (ds, drop, proxy, dst),
                          lambda res, drop=drop, dst=dst, converted=converted: converted(res, drop, dst))

        sched.add(0, task_proxy, (ds, proxy, st.proxy_epochs), proxied)
        if train and not args.no_original:
            add_train("original", {"kind": "npz", "path": str(Path(ds["dir"]) / "train.npz")})
    sched.run()
    RESULTS.mkdir(exist_ok=True)
    for ds, state, st in plans:
        text = render(ds, state, st, seeds, raw_argv, time.perf_counter() - t0)
        print(text)
        suffix = "_quick" if args.quick else ""
        (RESULTS / f"patchdrop_{ds['name']}{suffix}.md").write_text(text)
        (RESULTS / f"patchdrop_{ds['name']}{suffix}.json").write_text(
            json.dumps(state, indent=1, default=str, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
