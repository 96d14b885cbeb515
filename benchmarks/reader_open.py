#!/usr/bin/env python3
"""What the hostile-input checks cost: ``DCQFile`` open time and per-sample read time.

Anchors, measured in the same run: for open, plain h5py reading the same metadata (every
``/samples`` array, ``/classes``, ``/palettes``) with no checks at all; for a read, the Numba
decode kernel alone (``dcqformat.codecs.decode_into``) on the sample's packed bytes. Run it with
``PYTHONPATH=<checkout>`` to measure another checkout's reader against the same anchors.

    OMP_NUM_THREADS=1 python benchmarks/reader_open.py [--out benchmarks/results/reader_open.md]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

import dcqformat
from dcqformat import DCQFile, DCQWriter
from dcqformat.codecs import decode_into

SIZES = (1_000, 100_000)


def _write(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 4, size=(64, 32, 32), dtype=np.uint8)
    with DCQWriter(path, bits=2, channels=3, classes=[f"class {k}" for k in range(10)]) as w:
        w.set_palettes(rng.integers(0, 256, size=(20, 4, 3), dtype=np.uint8))
        for i in range(n):
            w.add_sample(maps[i % 64], cluster=i % 20, label=i % 10)


def _median(fn: object, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _h5py_anchor(path: Path) -> None:
    with h5py.File(path, "r") as h5:
        for name in ("height", "width", "label", "cluster", "offset", "length", "crc32"):
            h5[f"samples/{name}"][()]
        h5["classes"][()]
        h5["palettes"][()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    lines = [f"dcqformat from {Path(dcqformat.__file__).parent}; load average "
             + " ".join(f"{x:.2f}" for x in os.getloadavg()), "",
             "| samples | file | DCQFile open | anchor: h5py metadata read | ratio | f[i] (32x32 q2) "
             "| anchor: decode kernel | ratio |", "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for n in SIZES:
            path = Path(tmp) / f"n{n}.dcq"
            _write(path, n)
            t_open = _median(lambda p=path: DCQFile(p).close())
            t_anchor = _median(lambda p=path: _h5py_anchor(p))
            f = DCQFile(path)
            pal = np.ascontiguousarray(f.palettes[0])
            with h5py.File(path, "r") as h5:  # sample 0's packed bytes, read as any tool would
                start, length = int(h5["samples/offset"][0]), int(h5["samples/length"][0])
                packed = np.ascontiguousarray(h5["payload"][start:start + length])
            out = np.empty(32 * 32 * 3, np.uint8)
            reps = 20_000
            for i in range(200):
                f[i % n]
                decode_into(packed, 2, 1024, pal, out, False)
            t0 = time.perf_counter()
            for i in range(reps):
                f[i % n]
            t_read = (time.perf_counter() - t0) / reps
            t0 = time.perf_counter()
            for _ in range(reps):
                decode_into(packed, 2, 1024, pal, out, False)
            t_kernel = (time.perf_counter() - t0) / reps
            lines.append(f"| {n:,} | {path.stat().st_size / 1e6:.1f} MB | {t_open * 1e3:.1f} ms | "
                         f"{t_anchor * 1e3:.1f} ms | {t_open / t_anchor:.2f} | {t_read * 1e6:.2f} µs | "
                         f"{t_kernel * 1e6:.2f} µs | {t_read / t_kernel:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
