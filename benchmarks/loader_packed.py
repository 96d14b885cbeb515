"""DataLoader throughput of packed batches (``DCQDataset(output="packed")``) beside today's
decoded batches, measured side by side on the CPU (issue #13).

    python benchmarks/loader_packed.py [--workers 2] [--batch 256] [--seconds 1.5] [--rounds 3]
        [--emoji64-dcq /tmp/pk/e64q2.dcq] [--count224 1024] [--out benchmarks/results/loader_packed.md]

Datasets:

- emoji64 (64 px): the real ``dcqformat convert`` output at q = 2 (``--emoji64-dcq``; made with
  ``dcqformat convert ../shared/data/emoji64 PATH --bits 2`` when the file is missing, ~25 s);
- photo224 (224 px): ``--count224`` real photo crops (scikit-image's sample photos), each
  quantized to 4 colours by Pillow's median cut with its own palette, q = 2, raw payload.

Rows, each a ``torch.utils.data.DataLoader`` (batch 256, shuffled, persistent workers), timed
round by round beside each other (median of ``--rounds`` rounds of whole epochs lasting at
least ``--seconds``; one warm-up epoch first):

- ``decoded + collate`` (the anchor): ``DCQDataset(path)`` with ``collate_fn=DCQDataset.collate``,
  one Numba decode per batch in the worker, the uint8 [B, C, H, W] buffer is the batch;
- ``decoded, default collate``: the same with torch's default collate (one stacking copy);
- ``packed``: ``DCQDataset(path, output="packed")``, default collate: the stored packed bytes,
  no decode;
- ``packed + expand (CPU)``: the packed batch expanded in the main process with
  ``dcqformat.torch.expand(batch, "cpu")`` (torch ops, 1 thread): the whole path on a machine
  without an accelerator.

"batch bytes" is what a batch carries from the worker to the main process (the images, or the
PackedBatch's tensors). A second table compares, in the main process alone, the torch CPU
expansion with the Numba decode of the same batch (µs per image, 1 thread each).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, emit_report, time_per_call  # noqa: E402
from _packed import (  # noqa: E402
    consume_decoded,
    consume_packed,
    convert,
    decoded_loader,
    load_average,
    packed_loader,
    photo_dcq,
    photo_images,
    time_loaders,
)

from dcqformat import DCQFile  # noqa: E402
from dcqformat.torch import DCQDataset, expand  # noqa: E402

ROWS = ["decoded + collate", "decoded, default collate", "packed", "packed + expand (CPU)"]


def loader_rows(path: Path, workers: int, batch: int, seconds: float, rounds: int) -> dict[str, float]:
    """Images/s of every row on one file."""
    def default_collate_loader() -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(DCQDataset(path), batch_size=batch, shuffle=True,
                                           num_workers=workers, persistent_workers=workers > 0)
    loaders = {
        "decoded + collate": (decoded_loader(path, batch, workers, False), consume_decoded(None)),
        "decoded, default collate": (default_collate_loader(), consume_decoded(None)),
        "packed": (packed_loader(path, batch, workers, False), consume_packed(None)),
        "packed + expand (CPU)": (packed_loader(path, batch, workers, False), consume_packed(torch.device("cpu"))),
    }
    return time_loaders(loaders, seconds, rounds)


def batch_bytes(path: Path, batch: int) -> tuple[float, float]:
    """Bytes per batch crossing from a worker: decoded images + labels, and the PackedBatch."""
    f = DCQFile(path)
    n = min(batch, len(f))
    decoded = float((f.heights[:n] * f.widths[:n]).sum() * f.channels + 8 * n)
    packed = DCQDataset(path, output="packed").pack(list(range(n))).nbytes()["total"]
    return decoded, float(packed)


def expansion_rows(path: Path, batch: int) -> dict[str, float]:
    """µs per image in the main process: Numba decode_batch, pack(), torch expand on the CPU."""
    f = DCQFile(path)
    ds = DCQDataset(path, output="packed")
    idx = np.arange(min(batch, len(f)))
    packed = ds.pack(idx.tolist())
    want = f.decode_batch(idx, "chw")
    got, _ = expand(packed, "cpu")
    assert np.array_equal(np.asarray(got), want), "expand differs from decode_batch"
    n = idx.size
    return {
        "numba": time_per_call(lambda _i: f.decode_batch(idx, "chw"), 1) * 1e6 / n,
        "pack": time_per_call(lambda _i: ds.pack(idx.tolist()), 1) * 1e6 / n,
        "expand": time_per_call(lambda _i: expand(packed, "cpu"), 1) * 1e6 / n,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and write the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--emoji64-dcq", type=Path, default=Path("/tmp/pk/e64q2.dcq"))
    ap.add_argument("--count224", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "loader_packed.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="dcq-packed-") as tmp:
        if not args.emoji64_dcq.exists():
            args.emoji64_dcq.parent.mkdir(parents=True, exist_ok=True)
            convert(SHARED_DATA / "emoji64", args.emoji64_dcq, "cpu")
        files = {"emoji64 (64 px, dcqformat convert q=2, zstd)": args.emoji64_dcq,
                 f"photo224 (224 px, {args.count224} photo crops, q=2, raw)":
                     photo_dcq(Path(tmp) / "p224.dcq", photo_images(224, args.count224), 2)}
        lines = [f"# benchmarks/loader_packed.py — {started}", "",
                 f"Command: `python benchmarks/loader_packed.py --workers {args.workers} --batch {args.batch} "
                 f"--seconds {args.seconds} --rounds {args.rounds}`. Load average before: {load_average()}.", ""]
        expansion = {}
        for name, path in files.items():
            res = loader_rows(path, args.workers, args.batch, args.seconds, args.rounds)
            dec_b, pk_b = batch_bytes(path, args.batch)
            anchor = res["decoded + collate"]
            lines += [f"**{name}: {len(DCQFile(path))} images, {args.workers} workers, batch {args.batch}**", "",
                      "| loader | img/s | × decoded + collate | batch bytes |", "|---|---:|---:|---:|"]
            for row in ROWS:
                size = pk_b if row.startswith("packed") else dec_b
                lines.append(f"| {row} | {res[row]:,.0f} | {res[row] / anchor:.2f}× | {size / 1e6:.2f} MB |")
            lines += ["", f"Load average after this table: {load_average()}.", ""]
            expansion[name] = expansion_rows(path, args.batch)
        lines += ["**Main process only, µs per image (batch of 256, 1 thread each, median of 5 rounds)**", "",
                  "| file | Numba decode_batch (zstd decompression included where the file is zstd) | DCQDataset.pack (the worker's work: a memcpy, or the zstd decompression) | torch expand on CPU (from the packed batch) | expand / Numba |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in expansion.items():
            lines.append(f"| {name} | {r['numba']:.2f} | {r['pack']:.2f} | {r['expand']:.2f} | "
                         f"{r['expand'] / r['numba']:.1f}× |")
        lines += ["", f"{torch.get_num_threads()} torch thread(s), {len(__import__('os').sched_getaffinity(0))} CPUs, "
                  f"Python {platform.python_version()}, torch {torch.__version__}, start method "
                  f"{torch.multiprocessing.get_start_method()}. Load average at the end: {load_average()}."]
        emit_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
