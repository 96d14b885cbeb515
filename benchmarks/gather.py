"""The palette lookup after a ctx decode: ``gather_palette``'s word paths against the plain byte
loops (``gather_bytes``, the anchor), measured in the same run.

    python benchmarks/gather.py [--out benchmarks/results/gather.md]

Random index maps of 64x64 and 224x224 RGB pixels at q = 1, 2, 4, 8 (K = 2**q), HWC and CHW,
into buffers reused across calls (no fresh pages); ns per pixel, best of 300 calls, outputs
compared equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dcqformat.codecs.gather import gather_bytes, gather_palette

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of  # noqa: E402


def best_ns(fn: Callable[[], object], n: int) -> float:
    """Best of 300 calls of ``fn``, in ns per pixel."""
    return best_of(fn, 300) / n * 1e9


def rows() -> list[str]:
    """One table row per (size, q, layout)."""
    rng = np.random.default_rng(0)
    out_rows = []
    for side in (64, 224):
        n = side * side
        for bits in (1, 2, 4, 8):
            idx = rng.integers(0, 1 << bits, n).astype(np.uint8)
            palette = rng.integers(0, 256, (1 << bits, 3)).astype(np.uint8)
            for planar in (False, True):
                a, b = np.empty(3 * n, np.uint8), np.empty(3 * n, np.uint8)
                anchor = best_ns(lambda: gather_bytes(idx, n, palette, a, 0, planar), n)  # noqa: B023
                ours = best_ns(lambda: gather_palette(idx, n, palette, b, 0, planar), n)  # noqa: B023
                assert np.array_equal(a, b)
                out_rows.append(f"| {side}x{side} | {bits} | {'CHW' if planar else 'HWC'} | "
                                f"{anchor:.2f} | {ours:.2f} | {anchor / ours:.2f}× |")
    return out_rows


def main() -> int:
    """Print (and with --out write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    table = rows()
    text = "\n".join([
        "# Palette lookup after a ctx decode: word paths against byte loops",
        "",
        f"`python benchmarks/gather.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs, load average {load:.2f} before, {os.getloadavg()[0]:.2f} after.",
        "",
        "| size | q | layout | byte loops (anchor), ns/px | gather_palette, ns/px | speed-up |",
        "|---|---:|---|---:|---:|---:|",
        *table, ""])
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
