"""What a DataLoader worker pays to put one decoded batch into shared memory.

For a batch of ``--batch`` RGB images of ``--size`` px (256 x 64 px: 3 MiB) it times, per
batch, the ways of getting the pixels into a new shared-memory segment, in one interleaved
run (median of ``--rounds`` rounds of ``--reps`` batches each, every way once per round):

- **anchor**: ``torch.empty(n).share_memory_()`` then the copy in (what ``one_storage`` did);
- ``UntypedStorage._new_shared`` then the copy (no private buffer copied over first);
- :func:`dcqformat.torch.shared_memory.shared_uint8` (the above, pages mapped in one
  ``madvise`` call) then the copy;
- the copy alone into a private buffer that is reused (the floor: only the bytes moved).

Usage: ``python benchmarks/shm_alloc.py [--out benchmarks/results/shm_alloc.md]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from dcqformat.torch.shared_memory import shared_uint8

try:
    from benchmarks._common import emit_report
except ImportError:  # run as a script from benchmarks/
    from _common import emit_report  # type: ignore[no-redef]


def _ways(src: np.ndarray) -> dict[str, Callable[[], object]]:
    n = src.size
    private = np.empty(n, np.uint8)

    def anchor() -> object:
        buf = torch.empty(n, dtype=torch.uint8).share_memory_()
        buf.numpy()[:] = src
        return buf

    def new_shared() -> object:
        buf = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(n))
        buf.numpy()[:] = src
        return buf

    def populated() -> object:
        buf = shared_uint8(n)
        buf.numpy()[:] = src
        return buf

    def copy_only() -> object:
        private[:] = src
        return private

    return {"torch.empty(n).share_memory_() + copy (anchor)": anchor,
            "UntypedStorage._new_shared + copy": new_shared,
            "shared_uint8 (new_shared + MADV_POPULATE_WRITE) + copy": populated,
            "copy into a reused private buffer (floor)": copy_only}


def measure(nbytes: int, reps: int, rounds: int) -> dict[str, float]:
    """Median ms per batch of every way, interleaved round by round."""
    src = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
    ways = _ways(src)
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, fn in ways.items():
            fn()  # warm: the previous round's segments are freed before timing
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            times[name].append((time.perf_counter() - t0) / reps * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Print (and write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/shm_alloc.md")
    args = ap.parse_args(argv)
    nbytes = args.batch * args.size * args.size * 3 + args.batch * 8
    load0 = os.getloadavg()[0]
    ms = measure(nbytes, args.reps, args.rounds)
    anchor = next(iter(ms.values()))
    lines = [f"# One batch into shared memory: {args.batch} x {args.size} px RGB + labels = "
             f"{nbytes / 2**20:.2f} MiB", "",
             f"torch {torch.__version__}, kernel {os.uname().release}; load average "
             f"{load0:.2f} before, {os.getloadavg()[0]:.2f} after; median of {args.rounds} "
             f"interleaved rounds of {args.reps} batches.", "",
             "| way | ms per batch | x anchor |", "|---|---:|---:|"]
    lines += [f"| {name} | {v:.3f} | {anchor / v:.2f}x |" for name, v in ms.items()]
    emit_report(lines, args.out)


if __name__ == "__main__":
    main()
