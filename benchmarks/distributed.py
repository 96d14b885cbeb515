"""Scale-out benchmark (issue #8): wall time of ``dcqformat convert`` on 1 process vs
``torchrun --nproc_per_node=N`` on this machine, the bytes each stage passes to collectives,
and whether the two files decode identically.

    python benchmarks/distributed.py --images 60000 --nproc 2

The first ``--images`` Fashion-MNIST training images are written once as a PNG ImageFolder under
``--cache`` (not timed). Both runs use the encoder defaults (one torch thread per process),
``--quiet --json``, and run under ``nice -n 5``; the load average before and after each run is
recorded because the machine is shared. The 1-process run is the anchor: the table quotes the
N-process time as a ratio of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import fashion_mnist, write_imagefolder  # type: ignore[import-not-found]  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _folder(n: int, cache: Path) -> Path:
    root = cache / f"fashion-mnist-train-{n}"
    done = root / ".complete"
    if not done.exists():
        images, labels = fashion_mnist("train")
        write_imagefolder(images[:n], labels[:n], root)
        done.write_text("ok")
    return root


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    load0 = _load()
    t0 = time.perf_counter()
    proc = subprocess.run(["nice", "-n", "5", *cmd], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = proc.stdout
    summary = json.loads(out[out.index("{"):])
    return {"wall_s": wall, "summary": summary, "load_before": load0, "load_after": _load()}


def _identical(a: Path, b: Path) -> bool:
    from dcqformat.format.reader import DCQFile

    fa, fb = DCQFile(a), DCQFile(b)
    if len(fa) != len(fb) or not np.array_equal(fa.palettes, fb.palettes):
        return False
    if not (np.array_equal(fa.labels, fb.labels) and np.array_equal(fa.clusters, fb.clusters)):
        return False
    step = 256
    for s in range(0, len(fa), step):
        idx = list(range(s, min(len(fa), s + step)))
        if not np.array_equal(np.asarray(fa.decode_batch(idx)), np.asarray(fb.decode_batch(idx))):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=60_000)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dcq-bench"))
    ap.add_argument("--extra", default="", help="extra convert flags, e.g. '--epochs 1'")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    src = _folder(args.images, args.cache)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    extra = args.extra.split()
    one, many = args.cache / f"one-{args.images}.dcq", args.cache / f"dist-{args.images}.dcq"
    for p in (one, many):
        p.unlink(missing_ok=True)
    base = [sys.executable, "-m", "dcqformat", "convert", str(src)]
    r1 = _run([*base, str(one), "--quiet", "--json", *extra], env)
    rn = _run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}",
               "-m", "dcqformat", "convert", str(src), str(many), "--quiet", "--json", *extra], env)
    from dcqformat.format.reader import DCQFile

    scale = DCQFile(many).provenance["scale_out"]
    same = _identical(one, many)
    from dcqformat.encode.pipeline import STAGES

    seen = set(r1["summary"]["stage_seconds"]) | set(rn["summary"]["stage_seconds"])  # type: ignore[index]
    stages = [s for s in (*STAGES, "merge") if s in seen]
    cmd = f"python benchmarks/distributed.py --images {args.images} --nproc {args.nproc}" + (
        f" --extra '{args.extra}'" if args.extra else "")
    lines = [
        f"# Scale-out: Fashion-MNIST train, {args.images:,} images, 1 vs {args.nproc} processes",
        "",
        f"- command: `{cmd}` (each run under `nice -n 5`)",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other jobs, python {platform.python_version()}",
        f"- 1 process: `python -m dcqformat convert SRC DST --quiet --json {args.extra}`".rstrip(),
        f"- {args.nproc} processes: `python -m torch.distributed.run --nproc_per_node={args.nproc} -m "
        f"dcqformat convert SRC DST --quiet --json {args.extra}` (gloo)".rstrip(),
        f"- load average (1/5/15 min) before / after: 1 process {r1['load_before']} / {r1['load_after']}; "
        f"{args.nproc} processes {rn['load_before']} / {rn['load_after']}",
        f"- decoded images, labels, clusters and palettes identical: **{'yes' if same else 'NO'}**",
        "",
        f"| | 1 process (anchor) | {args.nproc} processes | ratio |",
        "|---|---:|---:|---:|",
        f"| wall time, s (incl. interpreter start, merge) | {r1['wall_s']:.1f} | {rn['wall_s']:.1f} | "
        f"{rn['wall_s'] / r1['wall_s']:.2f} |",  # type: ignore[operator]
    ]
    for s in stages:
        a = r1["summary"]["stage_seconds"].get(s, 0.0)  # type: ignore[index]
        b = rn["summary"]["stage_seconds"].get(s, 0.0)  # type: ignore[index]
        lines.append(f"| stage {s} (rank 0), s | {a:.1f} | {b:.1f} | {b / a if a else float('nan'):.2f} |")
    lines += ["", "Bytes passed to collectives per stage (pickled payloads; per rank):", "",
              "| stage | " + " | ".join(f"rank {r} sent | rank {r} received" for r in range(args.nproc)) + " |",
              "|---|" + "---:|---:|" * args.nproc]
    sent, recv = scale["collective_bytes_sent"], scale["collective_bytes_received"]
    for st in sorted({k for d in sent + recv for k in d}):
        cells = " | ".join(f"{sent[r].get(st, 0):,} | {recv[r].get(st, 0):,}" for r in range(args.nproc))
        lines.append(f"| {st} | {cells} |")
    lines += ["", "JSON summaries: see the .json file of the same name."]
    name = f"distributed_fashion-mnist_{args.images}"
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    (RESULTS / f"{name}.json").write_text(json.dumps(
        {"one": r1, "many": rn, "scale_out": scale, "identical": same}, indent=2, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
