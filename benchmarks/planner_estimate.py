"""Does the planner's training-value estimate rank plans as the train probe does? (issue #14)

For every dcq row of a finished ``benchmarks/train_probe.py`` run that is a plan (q, palettes,
scale, a BGFDQ coreset, patch dropping; loader rows and budget rows are skipped), the planner
estimates its training value on the probe's own training folder (``--workdir`` of the probe
run), with one or more estimate settings; the table puts each estimate beside the probe's
mean accuracy (3 seeds) and reports Spearman's rank correlation and the estimate's cost.

    python benchmarks/planner_estimate.py --dataset emoji64 \\
        --probe benchmarks/results/train_probe_frontier_emoji64.json \\
        --train-folder /tmp/probe_e64/emoji64/train_folder
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def plan_of(row: str) -> Any:
    """The planner Plan a probe row stands for, or None (loader / budget / baseline rows)."""
    from dcqformat.encode.planner.plans import Plan

    if row in ("dcq-q1", "dcq-q2"):
        return Plan(bits=int(row[-1]))
    if not row.startswith("dcq:") or "load." in row or "budget=" in row:
        return None
    kw = dict(item.split("=", 1) for item in row[4:].split(","))
    known = {"bits", "palette", "clusters", "scale", "coreset", "patch_drop", "refine"}
    if set(kw) - known:
        return None
    fraction = 1.0
    if "coreset" in kw:
        method, ratio = kw["coreset"].split(":")
        if method != "bgfdq":
            return None
        fraction = float(ratio)
    return Plan(kw.get("palette", "cluster"), int(kw.get("clusters", 20)), int(kw.get("bits", 2)),
                float(kw.get("scale", 1.0)), fraction, kw.get("patch_drop"))


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write it with --out)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--probe", required=True, help="the probe run's JSON")
    ap.add_argument("--train-folder", required=True, help="the probe's training ImageFolder")
    ap.add_argument("--settings", default="1seed:epochs=12,seeds=0;2seeds (the default):epochs=12,seeds=0+1",
                    help="NAME:epochs=E,seeds=A+B;... estimate settings to compare")
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from dcqformat.encode.planner.choose import PlanSettings, make_plan

    torch.set_num_threads(1)
    probe = json.loads(Path(args.probe).read_text())
    rows = {}
    for name, r in probe["rows"].items():
        p = plan_of(name)
        accs = [100 * run["accuracy"] for run in r.get("runs", [])]
        if p is not None and accs:
            rows[name] = (p, float(np.mean(accs)), float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0)
    plans = [p for p, _m, _s in rows.values()]
    lines = [f"# Planner estimate vs train probe: {args.dataset}", "",
             f"- command: `python {' '.join(sys.argv)}`",
             f"- load average at start: {os.getloadavg()}; {len(plans)} plans from `{args.probe}`", ""]
    results: dict[str, tuple[dict[str, float], float, float]] = {}
    for spec in args.settings.split(";"):
        label, opts = spec.split(":")
        kv = dict(o.split("=") for o in opts.split(","))
        st = PlanSettings(sample=args.sample, evaluate_all=True, epochs=int(kv["epochs"]),
                          seeds=tuple(int(s) for s in kv["seeds"].split("+")))
        t0 = time.perf_counter()
        rep = make_plan(args.train_folder, 10**12, settings=st, grid=plans, progress=False)
        est = {c.plan.name(): 100 * (c.estimate or 0.0) for c in rep.candidates}
        results[label] = (est, time.perf_counter() - t0, rep.seconds.get("estimate", 0.0))
    head = "| probe row | plan | probe acc % (3 seeds) | " + " | ".join(f"estimate {k} %" for k in results)
    lines += [head + " |", "|---|---|---:|" + "---:|" * len(results)]
    for name, (p, m, s) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        ests = " | ".join(f"{results[k][0][p.name()]:.1f}" for k in results)
        lines.append(f"| `{name}` | {p.name()} | {m:.2f} ± {s:.2f} | {ests} |")
    lines += ["", "| estimate | Spearman vs probe | cost: whole plan run s | of which estimates s |",
              "|---|---:|---:|---:|"]
    probe_means = [m for _p, m, _s in rows.values()]
    for k, (est, total, est_s) in results.items():
        rho = spearman(probe_means, [est[p.name()] for p, _m, _s in rows.values()])
        lines.append(f"| {k} | {rho:.3f} | {total:.0f} | {est_s:.0f} |")
    lines.append(f"\nload average at end: {os.getloadavg()}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
