"""Device check of packed batches (issue #13): bytes moved, expansion speed, loader → device
throughput, and ``dcqformat convert --device`` against the CPU run.

    python benchmarks/device_decode.py [--device auto|cpu|cuda] [--emoji64 DIR] [--workers N]
        [--convert auto|all|digits|none] [--out FILE]

One command on a CUDA machine (from the repository root; a few minutes on an H200)::

    PYTHONPATH=$PWD python3 benchmarks/device_decode.py --device cuda --emoji64 .data/emoji64 \\
        --out $OUT/device_decode_cuda.md

(That machine's image lacks ``zstandard``: carry its wheel, see docs/gpu-loading.md, "Running
the device check"; ``--emoji64`` defaults to ``../shared/data/emoji64``.) Without CUDA it runs
the same code with ``device=cpu`` and writes ``benchmarks/results/device_decode_cpu.md``.

Sections (every figure measured in this run, the anchor beside it):

1. **Bytes per image moved to the device** at 32, 64, 224 px and q = 1, 2, 4: real photo crops
   (scikit-image's samples), each quantized by Pillow's median cut with its own palette. Packed:
   ``PackedBatch.nbytes()["device"]`` / B (indices + palette table + palette ids + labels: what
   ``expand`` copies); decoded: the uint8 C×H×W image + its int64 label; JPEG q90 file bytes of
   the same crops. Plus the emoji64 ``convert`` output (20 shared palettes) when present.
2. **Expansion speed**, batch 256: Numba ``DCQFile.decode_batch`` on the CPU (1 thread) against
   ``expand`` on the device (batch already there; and, on CUDA, from pinned host memory,
   copy included), uint8 and float32-normalised; "exact" = equal to ``decode_batch``.
3. **DataLoader → device**, batch 256: decoded batches (``DCQDataset.collate``, pinned,
   ``.to(device, non_blocking=True)``) against packed batches (pinned, ``expand(batch, device)``,
   uint8 and normalised float32); 64 px emoji64 and 224 px photo crops.
4. **convert on the device**: ``dcqformat demo --device D`` (the digits demo) and ``dcqformat
   convert emoji64 --bits 2 --device D`` for D = cpu and the device, compared class by class
   (identical images, mean and max |Δ| of the decoded pixels, cluster agreement, PSNR to the
   source as each run reports it). On the CPU alone: the digits demo twice on the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, emit_report, time_per_call  # noqa: E402
from _packed import (  # noqa: E402
    bytes_per_image,
    consume_decoded,
    consume_packed,
    convert,
    decoded_loader,
    jpeg_bytes,
    load_average,
    packed_loader,
    photo_dcq,
    photo_images,
    time_loaders,
)

from dcqformat import DCQFile  # noqa: E402
from dcqformat.device import resolve_device  # noqa: E402
from dcqformat.torch import DCQDataset, expand  # noqa: E402

SIZES, BITS, PHOTOS, BATCH = (32, 64, 224), (1, 2, 4), 64, 256
NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def section_bytes(files: dict[tuple[int, int], Path], jpegs: dict[int, float], emoji: Path | None) -> list[str]:
    """Section 1: bytes per image, packed vs decoded vs JPEG."""
    lines = ["## 1. Bytes per image moved to the device", "",
             "| px | q | packed indices | packed, all expand copies | decoded uint8 + label | JPEG q90 file | "
             "decoded / packed |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for (size, bits), path in files.items():
        b = bytes_per_image(path, PHOTOS)
        lines.append(f"| {size} | {bits} | {b['packed_data']:,.0f} | {b['packed_device']:,.0f} | {b['decoded']:,.0f} "
                     f"| {jpegs[size]:,.0f} | {b['decoded'] / b['packed_device']:.1f}× |")
    if emoji is not None:
        b = bytes_per_image(emoji, BATCH)
        lines.append(f"| 64 (emoji64 convert, 20 shared palettes, batch {BATCH}) | 2 | {b['packed_data']:,.0f} | "
                     f"{b['packed_device']:,.0f} | {b['decoded']:,.0f} | – | {b['decoded'] / b['packed_device']:.1f}× |")
    return lines + ["", "Photo crops: one palette per image, so the table costs K·3 B per image (2**q colours); "
                    "files from `dcqformat convert` share C palettes per batch instead.", ""]


def _timed(fn: Callable[[], Any], dev: torch.device) -> float:
    """Seconds per call of ``fn`` (median of 3 rounds of >= 0.2 s), synchronising CUDA."""
    def call(_i: int) -> None:
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return time_per_call(call, 1, min_seconds=0.2, repeats=3)


def _speed_row(path: Path, size: int, bits: int, dev: torch.device) -> str:
    f = DCQFile(path)
    idx = np.arange(BATCH) % len(f)
    host = DCQDataset(path, output="packed").pack(idx.tolist())
    on_dev = host.to(dev)
    want = f.decode_batch(idx, "chw")
    got, _ = expand(on_dev, dev)
    exact = np.array_equal(got.cpu().numpy(), want)
    t_numba = _timed(lambda: f.decode_batch(idx, "chw"), torch.device("cpu")) / BATCH
    t_u8 = _timed(lambda: expand(on_dev, dev), dev) / BATCH
    t_f32 = _timed(lambda: expand(on_dev, dev, dtype=torch.float32, normalize=NORM), dev) / BATCH
    row = (f"| {size} | {bits} | {t_numba * 1e6:.2f} | {t_u8 * 1e6:.3f} | {1 / t_u8:,.0f} | "
           f"{want[0].nbytes / t_u8 / 1e9:.1f} | {t_f32 * 1e6:.3f} | ")
    if dev.type == "cuda":
        pinned = host.pin_memory()
        row += f"{_timed(lambda: expand(pinned, dev), dev) / BATCH * 1e6:.3f} | "
    return row + ("yes |" if exact else "**NO** |")


def section_speed(files: dict[tuple[int, int], Path], dev: torch.device) -> list[str]:
    """Section 2: Numba decode on the CPU vs torch expansion on the device."""
    cuda = dev.type == "cuda"
    lines = [f"## 2. Expansion speed, batch {BATCH} (µs per image; device {dev})", "",
             "| px | q | Numba decode_batch (CPU, 1 thread) | expand uint8 | img/s | output GB/s | "
             "expand float32 normalised | " + ("expand from pinned host batch | " if cuda else "")
             + "exact |", "|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if cuda else "") + "---|"]
    for (size, bits), path in files.items():
        lines.append(_speed_row(path, size, bits, dev))
    return lines + ["", "GB/s: decoded uint8 bytes produced per second.", ""]


def section_loader(files: dict[str, Path], dev: torch.device, workers: int, seconds: float) -> list[str]:
    """Section 3: DataLoader → device images/s, decoded vs packed."""
    pin = dev.type == "cuda"
    lines = [f"## 3. DataLoader → {dev}: {workers} workers, batch {BATCH}, pin_memory={pin}", "",
             "| data | decoded batches → device | packed + expand uint8 | × | packed + expand float32 normalised "
             "| × | H→D bytes/img decoded | packed |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    target = dev
    loads = []
    for name, path in files.items():
        loaders = {
            "decoded": (decoded_loader(path, BATCH, workers, pin), consume_decoded(target)),
            "packed": (packed_loader(path, BATCH, workers, pin), consume_packed(target)),
            "packed_f32": (packed_loader(path, BATCH, workers, pin),
                           consume_packed(target, dtype=torch.float32, normalize=NORM)),
        }
        r = time_loaders(loaders, seconds, 3, dev)
        b = bytes_per_image(path, BATCH)
        lines.append(f"| {name} | {r['decoded']:,.0f} | {r['packed']:,.0f} | {r['packed'] / r['decoded']:.2f}× | "
                     f"{r['packed_f32']:,.0f} | {r['packed_f32'] / r['decoded']:.2f}× | {b['decoded']:,.0f} | "
                     f"{b['packed_device']:,.0f} |")
        loads.append(f"{name}: {load_average()}")
    return lines + ["", "Median of 3 rounds of whole epochs >= "
                    f"{seconds} s, the three loaders interleaved; CUDA synchronised at each epoch's end. "
                    f"Load average after each row: {'; '.join(loads)}.", ""]


def compare(a: Path, b: Path) -> list[str]:
    """Rows comparing two conversions of one source, class by class."""
    fa, fb = DCQFile(a), DCQFile(b)
    if fa.classes != fb.classes or len(fa) != len(fb):
        return [f"| – | different files: {len(fa)} vs {len(fb)} samples, classes equal: {fa.classes == fb.classes} |"]
    order = np.arange(len(fb))
    if fa.source_paths and fb.source_paths:
        pos = {p: i for i, p in enumerate(fb.source_paths)}
        order = np.array([pos.get(p, -1) for p in fa.source_paths])
    rows, total_sq, total_px = [], 0.0, 0
    for c, name in enumerate(fa.classes):
        members = np.flatnonzero(fa.labels == c)
        same, diffs, maxd, agree = 0, 0.0, 0, 0
        for i in members.tolist():
            j = int(order[i])
            da, db = fa.decode(i).astype(np.int16), fb.decode(j).astype(np.int16)
            d = np.abs(da - db) if da.shape == db.shape else np.full(1, 255)
            same += int(not d.any())
            diffs += float(d.mean())
            maxd = max(maxd, int(d.max()))
            agree += int(fa.clusters[i] == fb.clusters[j] and fa.labels[i] == fb.labels[j])
            total_sq += float((d.astype(np.float64) ** 2).sum())
            total_px += d.size
        n = max(members.size, 1)
        rows.append(f"| {name} | {members.size} | {same / n:.1%} | {diffs / n:.2f} | {maxd} | {agree / n:.1%} |")
    mse = total_sq / max(total_px, 1)
    psnr = "∞ (identical)" if mse == 0 else f"{10 * np.log10(255 ** 2 / mse):.1f} dB"
    qa, qb = (f.provenance.get("quality", {}).get("psnr_mean_db", float("nan")) for f in (fa, fb))
    rows.append(f"| **all** | {len(fa)} | PSNR between the runs {psnr}; PSNR to source {qa:.2f} vs {qb:.2f} dB "
                "| | | |")
    return rows


def section_convert(devices: list[str], which: list[str], emoji_src: Path | None, work: Path) -> tuple[list[str], Path | None]:
    """Section 4: conversions on the CPU and on the device, compared class by class."""
    lines = [f"## 4. `dcqformat convert` on {' vs '.join(devices)}", ""]
    emoji_cpu = None
    for what in which:
        if what == "emoji64" and emoji_src is None:
            lines += ["emoji64: source folder not found, skipped.", ""]
            continue
        outs, times = [], []
        for k, d in enumerate(devices):
            dst = work / f"{what}-{d}-{k}" if what == "digits" else work / f"{what}-{d}-{k}.dcq"
            out, secs = convert(emoji_src or Path(), dst, d, demo=what == "digits")
            outs.append(out)
            times.append(secs)
        if what == "emoji64":
            emoji_cpu = outs[0]
        lines += [f"**{what}** ({', '.join(f'{d}: {t:.1f} s' for d, t in zip(devices, times, strict=True))})", "",
                  "| class | images | identical images | mean abs Δ per pixel (0-255) | max abs Δ | same cluster |",
                  "|---|---:|---:|---:|---:|---:|", *compare(outs[0], outs[1]), ""]
    return lines, emoji_cpu


def guarded(name: str, fn: Callable[[], list[str]]) -> list[str]:
    """Run one section; on failure report the traceback instead of losing the other sections."""
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a device run must bring back every section it can
        return [f"## {name}: FAILED", "", "```", traceback.format_exc(), "```", ""]


def main(argv: list[str] | None = None) -> int:
    """Run every section; print the report and write it to ``--out``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--emoji64", type=Path, default=SHARED_DATA / "emoji64")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default 2 on CPU, min(8, CPUs) on CUDA)")
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--convert", choices=("auto", "all", "digits", "none"), default="auto")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    dev = resolve_device(args.device)
    torch.set_num_threads(1)
    cuda = dev.type == "cuda"
    workers = args.workers if args.workers is not None else (min(8, os.cpu_count() or 2) if cuda else 2)
    emoji_src = args.emoji64 if args.emoji64.is_dir() else None
    out = args.out or Path(__file__).resolve().parent / "results" / f"device_decode_{dev.type}.md"
    which = {"auto": ["digits", "emoji64"] if cuda else ["digits"], "all": ["digits", "emoji64"],
             "digits": ["digits"], "none": []}[args.convert]
    devices = ["cpu", str(dev)] if cuda else ["cpu", "cpu"]
    start = time.perf_counter()
    name = torch.cuda.get_device_name(dev) if cuda else platform.processor() or "CPU"
    lines = [f"# benchmarks/device_decode.py — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"Device {dev} ({name}); {os.cpu_count()} CPUs; torch {torch.__version__}; Python "
             f"{platform.python_version()}; load average at the start {load_average()}.",
             f"Command: `python benchmarks/device_decode.py {' '.join(sys.argv[1:] if argv is None else argv)}`.", ""]
    with tempfile.TemporaryDirectory(prefix="dcq-device-") as tmp:
        work = Path(tmp)
        files: dict[tuple[int, int], Path] = {}
        jpegs: dict[int, float] = {}
        for size in SIZES:
            images = photo_images(size, PHOTOS, seed=size)
            jpegs[size] = float(np.mean(jpeg_bytes(images)))
            for bits in BITS:
                files[(size, bits)] = photo_dcq(work / f"p{size}q{bits}.dcq", images, bits)
        convert_lines: list[str] = []
        emoji = None
        try:
            if which:
                convert_lines, emoji = section_convert(devices, which, emoji_src, work)
        except Exception:  # noqa: BLE001 - report it and run the other sections
            convert_lines = ["## 4: FAILED", "", "```", traceback.format_exc(), "```", ""]
        if emoji is None and emoji_src is not None:
            emoji, _ = convert(emoji_src, work / "emoji64-cpu.dcq", "cpu")
        lines += guarded("1", lambda: section_bytes(files, jpegs, emoji))
        lines += guarded("2", lambda: section_speed(files, dev))
        loader_files = {"photo224 (1024 crops, q=2)": photo_dcq(work / "p224x.dcq", photo_images(224, 1024, 7), 2)}
        if emoji is not None:
            loader_files = {"emoji64 (64 px, convert q=2)": emoji, **loader_files}
        lines += guarded("3", lambda: section_loader(loader_files, dev, workers, args.seconds))
        lines += convert_lines
    lines.append(f"Total {time.perf_counter() - start:.0f} s; load average at the end {load_average()}.")
    emit_report(lines, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
