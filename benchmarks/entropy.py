"""Entropy-coded payloads (#12): bytes of raw / zstd / ctx files, and decode speed of each.

    python benchmarks/entropy.py [--work DIR] [--datasets emoji64 fm60k digits photo224]
                                 [--bits 1 2 4] [--speed-bits 2] [--anchor-samples 0]

Every ``.dcq`` file is made by ``dcqformat convert`` (default settings, ``--bits q``) from a
real ImageFolder (emoji64; Fashion-MNIST's 60,000 training images; scikit-learn's digits as the
demo writes them, 32 px; 224 px crops of scikit-image's photos, and 32 px ones for speed),
then re-written with the same index maps, palettes and metadata (sources, provenance) in each
encoding: ``raw``, ``zstd`` (level 3, per sample) and ``ctx`` (spec §14). Sizes count every
byte of the file; "payload" is ``/payload`` (plus ``/ctx``'s models for ctx). Anchors, from the
same index maps and palettes: each image as a PNG-8 (Pillow, optimize) and as lossless WebP
(Pillow, method 6), and zstd level 19 over the whole raw payload at once (no random access).
Every decoded pixel of every file is compared with the zstd file's.

Speed (µs per image, median of 5 rounds, this process, the anchors measured in the same
rounds; ``--clock thread`` times by this thread's CPU time, less disturbed by a busy machine): ``DCQFile[i]``; ``decode_batch`` of 256 shuffled indices per image; the same epoch
with ``enable_cache()`` after one epoch (epoch 2); PIL JPEG q90 decode of the source images
(``Image.open(...).convert("RGB")``, the common loader path); ``np.copyto`` of an H×W×3 array.
``f[i]`` keeps every image of a round alive (as a loader does until it collates a batch), and
so does the JPEG anchor "kept", which the ratio uses; "dropped" lets each JPEG image go at once
(its buffers are then reused, no fresh pages: ~25 % faster at 224 px, the figure earlier
reports divided by). ``decode_batch`` is timed with one thread and with its automatic thread
count (the process's CPUs; wall clock only: ``--clock thread`` sees one thread's work, so
those cells are blank then).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _common import SHARED_DATA, emit_report, photo_tiles  # noqa: E402

from dcqformat import DCQFile, DCQWriter  # noqa: E402

ENCODINGS = ("raw", "zstd", "ctx")


# -- inputs ----------------------------------------------------------------------------------
def source_folder(name: str, work: Path) -> Path:
    """The ImageFolder of one dataset (written under ``work/src`` when it is not shipped)."""
    if name == "emoji64":
        return SHARED_DATA / "emoji64"
    out = work / "src" / name
    if out.exists():
        return out
    if name == "fm60k":
        from _data import fashion_mnist, write_imagefolder
        images, labels = fashion_mnist("train")
        write_imagefolder(images, labels, out)
    elif name == "digits":
        from dcqformat.encode.demo import write_digits_folder
        write_digits_folder(out, 32)
    elif name.startswith("photo"):
        size = int(name[5:])
        (out / "photo").mkdir(parents=True)
        for i, img in enumerate(photo_tiles(size, 400 if size >= 224 else 2000, seed=size)):
            Image.fromarray(img).save(out / "photo" / f"{i:05d}.png")
    return out


def converted(name: str, bits: int, work: Path) -> Path:
    """``dcqformat convert SRC OUT --bits q`` (default settings), reused when present."""
    out = work / "conv" / f"{name}_q{bits}.dcq"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "dcqformat", "convert", str(source_folder(name, work)),
                        str(out), "--bits", str(bits), "--quiet"], check=True,
                       env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    return out


def reencode(src: DCQFile, dst: Path, encoding: str) -> Path:
    """The same samples, palettes and metadata written with ``encoding``."""
    with DCQWriter(dst, src.bits, src.channels, src.classes, palette_size=src.palette_size,
                   payload_encoding=encoding) as w:
        w.set_palettes(np.asarray(src.palettes))
        paths, sizes = src.source_paths, src.source_sizes
        for i in range(len(src)):
            w.add_sample(src.index_map(i), int(src.clusters[i]), int(src.labels[i]),
                         source_path=None if paths is None else paths[i],
                         source_size=None if sizes is None else int(sizes[i]))
        for name, sel in src.selections.items():
            w.add_selection(name, sel["ranking"], sel["selected"], sel["attrs"])
        w.set_provenance(src.provenance)
    return dst


# -- sizes -----------------------------------------------------------------------------------
def anchors(f: DCQFile, limit: int) -> dict[str, float]:
    """Bytes per image of PNG-8 and lossless WebP of each image, and of zstd-19 over the whole
    raw payload (measured on the first ``limit`` samples when ``limit`` > 0)."""
    n = len(f) if limit <= 0 else min(limit, len(f))
    png = webp = 0
    for i in range(n):
        idx = f.index_map(i)
        pal = np.asarray(f.palettes[int(f.clusters[i])])
        rgb_pal = np.repeat(pal, 3, axis=1) if pal.shape[1] == 1 else pal
        im = Image.fromarray(idx, mode="P")
        im.putpalette(rgb_pal.reshape(-1).tolist())
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        png += buf.tell()
        buf = io.BytesIO()
        Image.fromarray(f[i][0].squeeze()).save(buf, format="WEBP", lossless=True, method=6)
        webp += buf.tell()
    whole = b"".join(f.packed(i).tobytes() for i in range(len(f)))
    z19 = len(zstandard.ZstdCompressor(level=19).compress(whole))
    return {"png8": png / n, "webp": webp / n, "zstd19_whole": z19 / len(f), "anchor_n": n}


def size_row(name: str, bits: int, work: Path, limit: int) -> dict[str, Any]:
    """Whole-file and payload bytes per image of raw/zstd/ctx beside the anchors; checks that
    every file decodes to the zstd file's pixels."""
    conv = DCQFile(converted(name, bits, work))
    files = {e: DCQFile(reencode(conv, work / "enc" / f"{name}_q{bits}_{e}.dcq", e)) for e in ENCODINGS}
    n = len(conv)
    row: dict[str, Any] = {"dataset": name, "bits": bits, "n": n, "convert_default": conv.payload_encoding,
                           "convert_file": conv.metadata.file_size / n, "shape": conv.shape(0)}
    for e, f in files.items():
        m = f.metadata
        model = m.ctx.stored_bytes if m.ctx is not None else 0
        row[f"{e}_file"] = m.file_size / n
        row[f"{e}_payload"] = (m.payload_size + model) / n
        if e == "ctx":
            row["ctx_models"] = m.ctx.kind
            row["ctx_model_bytes"] = model
    ref = files["zstd"]
    equal = all(np.array_equal(ref[i][0], files[e][i][0]) and np.array_equal(ref[i][0], conv[i][0])
                for e in ("raw", "ctx") for i in range(n))
    row["pixels_equal"] = equal
    row.update(anchors(files["raw"], limit))
    return row


# -- speed -----------------------------------------------------------------------------------
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


def _rounds(fns: dict[str, Any], clock: str, reps: int = 5) -> dict[str, float]:
    """Median seconds per call of every ``fn()`` (each timing >= 0.2 s on ``clock``: wall
    time, or this thread's CPU time, which a busy shared machine disturbs less), interleaved
    round by round so that ours and the anchors see the same machine load."""
    now = CLOCKS[clock]
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            calls, t0 = 0, now()
            while True:
                fn()
                calls += 1
                if now() - t0 >= 0.2:
                    break
            times[k].append((now() - t0) / calls)
    return {k: float(np.median(v)) for k, v in times.items()}


def speed_row(name: str, bits: int, work: Path, clock: str = "wall") -> dict[str, Any]:
    """µs per image of each encoding's f[i], decode_batch and cached epoch 2, beside JPEG."""
    conv = DCQFile(converted(name, bits, work))
    files = {e: DCQFile(work / "enc" / f"{name}_q{bits}_{e}.dcq") if (work / "enc" / f"{name}_q{bits}_{e}.dcq").exists()
             else DCQFile(reencode(conv, work / "enc" / f"{name}_q{bits}_{e}.dcq", e)) for e in ENCODINGS}
    n = min(len(conv), 256)
    src = source_folder(name, work)
    paths = sorted(p for p in src.rglob("*") if p.suffix == ".png")[:n]
    jpegs = []
    for p in paths:
        with Image.open(p) as im:
            rgb = im.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgb.size, (255, 255, 255, 255)), rgb).convert("RGB")
        buf = io.BytesIO()
        flat.save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    h, w, _ = conv.shape(0)
    a, b = np.zeros((h, w, 3), np.uint8), np.empty((h, w, 3), np.uint8)
    rng = np.random.default_rng(0)
    batch = rng.permutation(len(conv))[:256] if len(conv) >= 256 else rng.integers(0, len(conv), 256)

    def jpeg() -> None:
        for blob in jpegs:
            with Image.open(io.BytesIO(blob)) as im:
                np.asarray(im.convert("RGB"))

    def jpeg_kept() -> list[np.ndarray]:  # as f[i] is timed: every image kept until the round ends
        out = []
        for blob in jpegs:
            with Image.open(io.BytesIO(blob)) as im:
                out.append(np.asarray(im.convert("RGB")))
        return out

    fns: dict[str, Any] = {"jpeg": jpeg, "jpeg_kept": jpeg_kept,
                           "memcpy": lambda: [np.copyto(b, a) for _ in range(n)]}
    for e, f in files.items():
        cached = DCQFile(f.path).enable_cache()
        cached.decode_batch(batch, "chw")  # epoch 1 fills the cache
        fns[f"{e}_item"] = lambda f=f: [f[i] for i in range(n)]
        if clock == "wall":  # other threads' work is invisible to the thread clock
            fns[f"{e}_batch"] = lambda f=f: f.decode_batch(batch, "chw")
        fns[f"{e}_batch1"] = lambda f=f: f.decode_batch(batch, "chw", threads=1)
        fns[f"{e}_cached"] = lambda c=cached: c.decode_batch(batch, "chw", threads=1)
    t = _rounds(fns, clock)
    per = {k: v * 1e6 / (256 if k.endswith(("_batch", "_batch1", "_cached")) else n) for k, v in t.items()}
    for e in files:
        per.setdefault(f"{e}_batch", float("nan"))
    return {"dataset": name, "bits": bits, "px": f"{h}x{w}", **per}


# -- report ----------------------------------------------------------------------------------
def size_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: bytes per image of every encoding beside the anchors."""
    out = ["| data | q | N | raw file / payload | zstd file / payload | ctx file / payload (models) "
           "| ctx ÷ zstd file | PNG-8 per image | WebP lossless per image | zstd-19 whole payload "
           "| pixels = zstd's |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        note = "" if r["anchor_n"] == r["n"] else f" (first {r['anchor_n']})"
        out.append(
            f"| {r['dataset']} {r['shape'][0]}×{r['shape'][1]} | {r['bits']} | {r['n']} "
            f"| {r['raw_file']:.1f} / {r['raw_payload']:.1f} | {r['zstd_file']:.1f} / {r['zstd_payload']:.1f} "
            f"| {r['ctx_file']:.1f} / {r['ctx_payload']:.1f} ({r['ctx_models']}, {r['ctx_model_bytes']} B) "
            f"| {r['ctx_file'] / r['zstd_file']:.2f} | {r['png8']:.1f}{note} | {r['webp']:.1f}{note} "
            f"| {r['zstd19_whole']:.1f} | {'yes' if r['pixels_equal'] else 'NO'} |")
    return out


def speed_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: µs per image of every read path beside PIL JPEG and memcpy."""
    out = ["| px | q | raw f[i] | zstd f[i] | ctx f[i] | raw batch, 1 thread | zstd batch, 1 thread / auto "
           "| ctx batch, 1 thread / auto | zstd cached ep. 2, 1 thread | ctx cached ep. 2, 1 thread "
           "| PIL JPEG q90 kept / dropped | memcpy | JPEG kept ÷ ctx f[i] | ctx ep. 2 ÷ raw batch (1 thread) "
           "| batch ÷ f[i] zstd / ctx, 1 thread | the same, auto threads |",
           "|---|---|" + "---:|" * 14]
    for r in rows:
        out.append(
            f"| {r['px']} | {r['bits']} | {r['raw_item']:.1f} | {r['zstd_item']:.1f} | {r['ctx_item']:.1f} "
            f"| {r['raw_batch1']:.1f} | {r['zstd_batch1']:.1f} / {r['zstd_batch']:.1f} "
            f"| {r['ctx_batch1']:.1f} / {r['ctx_batch']:.1f} "
            f"| {r['zstd_cached']:.1f} | {r['ctx_cached']:.1f} | {r['jpeg_kept']:.1f} / {r['jpeg']:.1f} "
            f"| {r['memcpy']:.2f} | {r['jpeg_kept'] / r['ctx_item']:.1f}× | {r['ctx_cached'] / r['raw_batch1']:.2f} "
            f"| {r['zstd_batch1'] / r['zstd_item']:.2f} / {r['ctx_batch1'] / r['ctx_item']:.2f} "
            f"| {r['zstd_batch'] / r['zstd_item']:.2f} / {r['ctx_batch'] / r['ctx_item']:.2f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (and write) the markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/dcq-entropy"))
    ap.add_argument("--datasets", nargs="*", default=["emoji64", "fm60k", "digits", "photo224"])
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--speed", nargs="+", default=["photo32", "emoji64", "photo224"])
    ap.add_argument("--speed-bits", type=int, nargs="+", default=[2])
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="time the speed rows by wall time or by this thread's CPU time")
    ap.add_argument("--anchor-samples", type=int, default=0, help="PNG/WebP on the first n (0: all)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "entropy.md")
    args = ap.parse_args(argv)
    (args.work / "enc").mkdir(parents=True, exist_ok=True)
    started = time.time()
    sizes = []
    for name in args.datasets:
        for q in args.bits:
            sizes.append(size_row(name, q, args.work, args.anchor_samples))
            print(f"  sizes {name} q={q} done ({time.time() - started:.0f} s)", file=sys.stderr)
    load0 = os.getloadavg()[0]
    speeds = [speed_row(name, q, args.work, args.clock) for name in args.speed for q in args.speed_bits]
    load1 = os.getloadavg()[0]
    lines = [f"# Entropy-coded payloads: sizes and decode speed ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"`python benchmarks/entropy.py {' '.join(argv or sys.argv[1:])}`; {os.cpu_count()} CPUs; "
             f"load average {load0:.1f} before the speed rows, {load1:.1f} after; "
             f"{time.time() - started:.0f} s in all.", "",
             ] + (["## Bytes per image (whole file / payload)", ""] + size_table(sizes) + [""]
                  if sizes else []) + [
             f"## Decode µs per image ({args.clock} clock, median of 5 interleaved rounds)", ""
             ] + speed_table(speeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    emit_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
