"""The floor of single-state rANS decoding on this CPU: the ctx decoder's state update alone.

    python benchmarks/rans_floor.py [--symbols 4194304]

Each ctx pixel costs one decoding step ``x = c1 * (x >> 12) + (x & 4095)`` (symbol 0, the usual
one) and a renormalisation test; the next step needs the new ``x``, so however little else a
kernel does per pixel it cannot beat this chain. The script times that loop alone (one state,
nothing else: no contexts, no table loads) and the same work split over two independent states
(what a layout with two interleaved streams, e.g. over row bands, would allow), in ns per
symbol, best of 5, beside ``benchmarks/results/entropy.md``'s kernel figures.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit

STATE_LOW = 1 << 23


@njit(cache=True)
def one_state(n, c1):  # type: ignore[no-untyped-def]
    """``n`` symbol-0 steps of one rANS state."""
    x = np.int64(1 << 30)
    for _ in range(n):
        x = c1 * (x >> 12) + (x & 0xFFF)
        if x < STATE_LOW:
            x = (x << 8) | 0x5A
    return x


@njit(cache=True)
def two_states(n, c1):  # type: ignore[no-untyped-def]
    """The same ``n`` steps alternating between two independent states."""
    x = np.int64(1 << 30)
    y = np.int64(1 << 29)
    for _ in range(n // 2):
        x = c1 * (x >> 12) + (x & 0xFFF)
        if x < STATE_LOW:
            x = (x << 8) | 0x5A
        y = c1 * (y >> 12) + (y & 0xFFF)
        if y < STATE_LOW:
            y = (y << 8) | 0x5A
    return x + y


def ns_per_symbol(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Best of 5 calls of ``fn(n, 4000)``, ns per symbol."""
    fn(n, 4000)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn(n, 4000)
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e9


def main(argv: list[str] | None = None) -> int:
    """Print the two figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--symbols", type=int, default=1 << 22)
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; {args.symbols} symbols")
    print(f"| states | ns per symbol |\n|---:|---:|\n| 1 | {ns_per_symbol(one_state, args.symbols):.2f} |"
          f"\n| 2 | {ns_per_symbol(two_states, args.symbols):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
