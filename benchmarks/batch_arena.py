"""How a worker's decoded batch reaches the training loop: a new shared-memory segment per batch
(torch's way, the anchor) against a recycled arena slot (``dcqformat.torch.batch_arena``).

    python benchmarks/batch_arena.py [--file FILE ...] [--workers 2] [--batch 256] [--rounds 5]

Rows, each a ``DataLoader(DCQDataset(...), batch_size, shuffle=True, num_workers, persistent)``
built twice, with ``DCQFORMAT_BATCH_ARENA=0`` (the anchor: every batch a new segment, its
descriptor passed, mapped and unmapped in the main process) and with arenas on:

- ``copy only``: a dataset whose workers only copy a prepared batch into the buffer the batched
  path gives them (no decoding), so the transport is all that is measured;
- a q = 2 raw file of 4,096 random 64-px maps made here, and one row per ``--file``;
- the same files with ``output="packed"`` (packed q-bit indices, not pixels; nothing expands
  them here, as on a machine whose accelerator does).

Images per second in the main process, after one warm-up epoch; the median of ``--rounds``
rounds of at least ``--seconds``, the two settings interleaved round by round.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import loader_rate  # noqa: E402

from dcqformat import DCQWriter
from dcqformat.torch import DCQDataset
from dcqformat.torch.batch import worker_batch


class CopyOnly(torch.utils.data.Dataset[Any]):
    """N images of one shape; a batch is one copy of a prepared array into the worker buffer."""

    def __init__(self, n: int, shape: tuple[int, ...]) -> None:
        self.n, self.shape = n, shape
        self.pixels = np.random.default_rng(0).integers(0, 256, (256, *shape), dtype=np.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: Sequence[int]) -> Any:
        from dcqformat.torch.batch import DCQBatch, DCQItem

        labels = np.zeros(len(indices), np.int64)
        into = worker_batch((len(indices), *self.shape), labels)
        images, ys = into if into is not None else (torch.empty((len(indices), *self.shape), dtype=torch.uint8),
                                                    torch.from_numpy(labels))
        images.numpy()[:] = self.pixels[: len(indices)]
        out = DCQBatch(map(DCQItem, zip(images.unbind(0), ys.tolist(), strict=True)))
        out.stacked = (images, ys)
        return out


def make_raw(path: Path, n: int = 4096) -> Path:
    """A q = 2 raw file of ``n`` random 64x64 index maps (one palette)."""
    rng = np.random.default_rng(0)
    with DCQWriter(path, bits=2, channels=3, classes=["a"], payload_encoding="raw") as w:
        w.set_palettes(rng.integers(0, 256, (1, 4, 3), dtype=np.uint8))
        for _ in range(n):
            w.add_sample(rng.integers(0, 4, (64, 64), dtype=np.uint8), cluster=0, label=0)
    return path


def compare(make: Callable[[], DataLoader], rounds: int, seconds: float) -> dict[str, float]:
    """Median images/s with arenas off (anchor) and on, interleaved."""
    loaders = {}
    for setting in ("0", "1"):
        os.environ["DCQFORMAT_BATCH_ARENA"] = setting  # forked workers read it
        loaders[setting] = make()
        for _ in loaders[setting]:
            pass
    os.environ.pop("DCQFORMAT_BATCH_ARENA")
    runs: dict[str, list[float]] = {"0": [], "1": []}
    for _ in range(rounds):
        for setting, loader in loaders.items():
            runs[setting].append(loader_rate(loader, seconds))
    return {k: statistics.median(v) for k, v in runs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print one markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", action="append", default=[], type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dcq-arena-") as tmp:
        files = [make_raw(Path(tmp) / "raw64.dcq"), *args.file]
        rows: list[tuple[str, Any]] = [("copy only (64 px RGB)", CopyOnly(4096, (3, 64, 64)))]
        rows += [(f"{p.name}", DCQDataset(p)) for p in files]
        rows += [(f"{p.name}, output=\"packed\"", DCQDataset(p, output="packed")) for p in files]
        results = []
        for name, ds in rows:
            def make(ds: Any = ds) -> DataLoader:
                return DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                                  persistent_workers=True)
            results.append((name, len(ds), compare(make, args.rounds, args.seconds)))
            print(f"[{name}] {results[-1][2]}", file=sys.stderr)
    print(f"DataLoader, {args.workers} workers, batch {args.batch}, median of {args.rounds} rounds of "
          f">= {args.seconds} s; {os.cpu_count()} CPUs, load average {load0[0]:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; Python {platform.python_version()}, torch {torch.__version__}.")
    print()
    print("| dataset | images | new segment per batch (anchor): img/s | arena: img/s | × anchor |")
    print("|---|---:|---:|---:|---:|")
    for name, n, r in results:
        print(f"| {name} | {n:,} | {r['0']:,.0f} | {r['1']:,.0f} | {r['1'] / r['0']:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
