"""Peak memory and time of converting one large image (issue #15, class 8).

Builds an ImageFolder holding one ``SIDE x SIDE`` photograph (scikit-image's astronaut, upscaled
bilinearly) and one 64 px image, converts it with the defaults in a fresh process and reports
its peak RSS and times. The anchors, measured in the same run: the same conversion of two 64 px
images (the fixed cost of torch and the proxy), the raw RGB bytes of the large image, and,
with ``--before PATH``, the same run with the dcqformat checkout at PATH (e.g. the commit before
this change). The figure that matters is the RSS above the fixed cost, per pixel.

    python benchmarks/large_image.py --sides 3000,9000 [--before /tmp/pristine]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def make_folder(root: Path, side: int) -> Path:
    """``root/astronaut/0.png`` of side x side and ``root/coffee/0.png`` of 64 px."""
    from skimage import data

    for name, img, s in (("astronaut", data.astronaut(), side), ("coffee", data.coffee(), 64)):
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).resize((s, s), Image.Resampling.BILINEAR).save(root / name / "0.png")
    return root


def run(src: Path, dst: Path, checkout: Path) -> dict[str, float]:
    """Convert in a child process; its peak RSS (MiB), wall and CPU seconds."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dcqformat", "convert", str(src), str(dst),
                             "--quiet", "--force"], env=env, cwd=str(checkout),
                            stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)  # this child's own peak (RUSAGE_CHILDREN is
    wall = time.perf_counter() - t0               # the largest of all children so far)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"convert failed with status {proc.returncode}")
    return {"rss_mib": usage.ru_maxrss / 1024, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", default="3000,9000")
    ap.add_argument("--before", default=None, help="another dcqformat checkout to compare with")
    args = ap.parse_args(argv)
    checkouts = [("this checkout", ROOT)] + ([("before", Path(args.before))] if args.before else [])
    print(f"load average: {os.getloadavg()}")
    print("| code | side | pixels | raw RGB MiB | peak RSS MiB | fixed cost MiB (64 px run) "
          "| above fixed, bytes/pixel | wall s | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="dcq-large-") as tmp:
        t = Path(tmp)
        small = make_folder(t / "s64", 64)
        for label, checkout in checkouts:
            fixed = run(small, t / "small.dcq", checkout)["rss_mib"]
            for side in (int(s) for s in args.sides.split(",")):
                src = make_folder(t / f"s{side}", side)
                r = run(src, t / f"{side}.dcq", checkout)
                px = side * side
                per_px = (r["rss_mib"] - fixed) * 2**20 / px
                print(f"| {label} | {side} | {px:,} | {3 * px / 2**20:,.0f} | {r['rss_mib']:,.0f} | "
                      f"{fixed:,.0f} | {per_px:.1f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
