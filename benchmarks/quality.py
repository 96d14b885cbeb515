"""Reconstruction quality and bytes of the encoder (issue #3) against per-image anchors.

    python benchmarks/quality.py              # emoji64 (all 1,906), Fashion-MNIST (3,000), digits
    python benchmarks/quality.py --quick      # smaller subsets, q = 2 only (a few minutes)
    python benchmarks/quality.py --datasets emoji64 --bits 1,2

For every dataset and q it prints (and writes to ``benchmarks/results/quality_<dataset>.md`` and
``.json``) one row per encoding:

- ``dcq``: ``dcqformat.convert`` with the method's defaults (C = 20 cluster palettes, top-50 %
  Grad-CAM++ attention, edge refinement), raw bit-packed payload; bytes = the whole file.
- ``dcq+zstd``: the same with ``payload_encoding="auto"`` (zstd where smaller).
- ablations at q = 2: ``image`` (one palette per image), ``global`` (one palette), ``noattn``
  (palettes from all pixels), ``norefine`` (no edge refinement).
- ``png8``: Pillow MEDIANCUT per image with 2**q colours, saved as optimised PNG-8 files (the
  per-image palette format users have today); bytes = sum of the files.
- ``jpeg@dcq``: JPEG (optimised Huffman tables, 4:2:0) at the highest quality whose files add up
  to no more than the ``dcq`` file (quality 1 if even that is larger -- then its bytes exceed).

Quality is measured against the originals as the encoder sees them (alpha flattened on white):
PSNR (mean of per-image PSNR, dB) and, for colour data, the mean CIE76 ΔE in LAB. ``encode s``
is wall time on this machine with one torch thread (the encoder's default). None of these is a
training result; see ``benchmarks/train_probe.py`` for accuracy.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA  # type: ignore[import-not-found]  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- datasets


def _subset(root: Path, out: Path, per_class: int | None) -> Path:
    """Copy up to ``per_class`` images per class (canonical order) of an ImageFolder."""
    from dcqformat.encode.scan import scan_image_folder

    listing = scan_image_folder(root)
    seen: dict[int, int] = {}
    for e in listing.entries:
        if per_class is not None and seen.get(e.label, 0) >= per_class:
            continue
        seen[e.label] = seen.get(e.label, 0) + 1
        dst = out / e.relpath
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(e.path, dst)
    return out


def prepare(name: str, work: Path, quick: bool) -> Path:
    if name == "emoji64":
        root = SHARED_DATA / "emoji64"
        if not root.is_dir():
            raise FileNotFoundError(root)
        return _subset(root, work / "emoji64", 40) if quick else root
    if name == "fashion-mnist":
        from _data import fashion_mnist, write_imagefolder  # type: ignore[import-not-found]

        images, labels = fashion_mnist("train")
        n = 1000 if quick else 3000
        return write_imagefolder(images[:n], labels[:n], work / "fashion-mnist")
    if name == "digits":
        from dcqformat.encode.demo import write_digits_folder

        write_digits_folder(work / "digits", size=32)
        return work / "digits"
    raise ValueError(f"unknown dataset {name!r}")


# ----------------------------------------------------------------------------- metrics


def originals(root: Path) -> tuple[list[np.ndarray], list[int], int]:
    from dcqformat.encode.images import is_grey, load_image
    from dcqformat.encode.scan import scan_image_folder

    listing = scan_image_folder(root)
    imgs = [load_image(e.path) for e in listing.entries]
    channels = 1 if all(is_grey(a) for a in imgs) else 3
    imgs = [a[..., :1] if channels == 1 else (np.repeat(a, 3, 2) if a.shape[2] == 1 else a)
            for a in imgs]
    return imgs, [e.size for e in listing.entries], channels


def quality(orig: list[np.ndarray], dec: list[np.ndarray]) -> dict[str, float]:
    import torch

    from dcqformat.encode.color import rgb_to_lab

    psnrs, des = [], []
    for a, b in zip(orig, dec, strict=True):
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        psnrs.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
        if a.shape[2] == 3:
            la = rgb_to_lab(torch.from_numpy(a.reshape(-1, 3) / 255.0))
            lb = rgb_to_lab(torch.from_numpy(b.reshape(-1, 3) / 255.0))
            des.append(float((la - lb).norm(dim=1).mean()))
    out = {"psnr_db": float(np.mean(psnrs))}
    if des:
        out["delta_e76"] = float(np.mean(des))
    return out


# ----------------------------------------------------------------------------- encodings


def run_dcq(src: Path, work: Path, tag: str, **kwargs: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    from dcqformat.encode.pipeline import convert
    from dcqformat.format.reader import DCQFile

    out = work / f"{tag}.dcq"
    t0 = time.perf_counter()
    s = convert(src, out, progress=False, overwrite=True, device="cpu", **kwargs)
    seconds = time.perf_counter() - t0
    f = DCQFile(out)
    dec = [f[i][0] for i in range(len(f))]
    row = {"bytes": out.stat().st_size, "encode_s": seconds, "palettes": s.palettes,
           "stages_s": s.stage_seconds}
    out.unlink()
    return row, dec


def run_png8(orig: list[np.ndarray], k: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    t0 = time.perf_counter()
    total, dec = 0, []
    for a in orig:
        rgb = Image.fromarray(np.repeat(a, 3, 2) if a.shape[2] == 1 else a)
        q = rgb.quantize(k, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        q.save(buf, format="PNG", optimize=True)
        total += buf.tell()
        back = np.asarray(q.convert("RGB"))
        dec.append(back[..., :1] if a.shape[2] == 1 else back)
    return {"bytes": total, "encode_s": time.perf_counter() - t0}, dec


def _jpeg_all(orig: list[np.ndarray], quality_: int) -> tuple[int, list[np.ndarray]]:
    total, dec = 0, []
    for a in orig:
        im = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality_, optimize=True)
        total += buf.tell()
        buf.seek(0)
        back = np.asarray(Image.open(buf))
        dec.append(back[..., None] if back.ndim == 2 else back)
    return total, dec


def run_jpeg_at(orig: list[np.ndarray], budget: int) -> tuple[dict[str, Any], list[np.ndarray]]:
    t0 = time.perf_counter()
    lo, hi, best = 1, 95, None
    while lo <= hi:  # bytes grow with quality: the highest quality within the budget
        mid = (lo + hi) // 2
        size, dec = _jpeg_all(orig, mid)
        if size <= budget:
            best = (mid, size, dec)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is None:
        size, dec = _jpeg_all(orig, 1)
        best = (1, size, dec)
    q, size, dec = best
    return {"bytes": size, "encode_s": time.perf_counter() - t0, "jpeg_quality": q}, dec


# ----------------------------------------------------------------------------- driver


def bench(name: str, bits_list: list[int], quick: bool, work: Path) -> list[dict[str, Any]]:
    src = prepare(name, work / "data", quick)
    orig, src_sizes, channels = originals(src)
    pixels = sum(a.shape[0] * a.shape[1] for a in orig)
    n = len(orig)
    rows: list[dict[str, Any]] = []

    def add(config: str, what: str, q: int, row: dict[str, Any], dec: list[np.ndarray]) -> None:
        row.update(quality(orig, dec))
        row.update(config=config, what=what, bits=q, images=n,
                   bits_per_pixel=8 * row["bytes"] / pixels,
                   ratio_vs_raw=pixels * channels / row["bytes"],
                   ratio_vs_source=sum(src_sizes) / row["bytes"])
        rows.append(row)
        de = f", dE {row['delta_e76']:.2f}" if "delta_e76" in row else ""
        print(f"  {name} q{q} {config:<10} {row['bytes']:>10,} B  {row['psnr_db']:6.2f} dB{de}  "
              f"{row['encode_s']:7.1f} s", flush=True)

    for q in bits_list:
        k = 1 << q
        r, dec = run_dcq(src, work, f"{name}_q{q}", bits=q)
        dcq_bytes = r["bytes"]
        add("dcq", "C=20 cluster palettes, attention, refinement (raw payload)", q, r, dec)
        r, dec = run_dcq(src, work, f"{name}_q{q}_z", bits=q, payload_encoding="auto")
        add("dcq+zstd", "as dcq, payload_encoding=auto", q, r, dec)
        if q == 2:
            for cfg, what, kw in [
                ("image", "ablation: one palette per image (C=N)", {"palette": "image"}),
                ("global", "ablation: one palette (C=1)", {"palette": "global"}),
                ("noattn", "ablation: palettes from all pixels", {"attention": False}),
                ("norefine", "ablation: no edge refinement", {"refine": False}),
            ]:
                r, dec = run_dcq(src, work, f"{name}_q{q}_{cfg}", bits=q, **kw)
                add(cfg, what, q, r, dec)
        r, dec = run_png8(orig, k)
        add("png8", f"Pillow MEDIANCUT per image, {k} colours, optimised PNG-8", q, r, dec)
        r, dec = run_jpeg_at(orig, dcq_bytes)
        add("jpeg@dcq", f"JPEG at the bytes of dcq (quality {r['jpeg_quality']})", q, r, dec)
    return rows


def table(name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Encoder quality: {name}", "",
             f"- command: `{meta['command']}`",
             f"- date: {meta['date']}; machine: {meta['machine']}",
             f"- images: {rows[0]['images']:,}; originals as the encoder sees them (alpha on white)",
             "- PSNR: mean of per-image PSNR; dE: mean CIE76 in LAB (colour only); encode s: wall "
             "time, one torch thread, shared 2-core machine (includes proxy training for dcq rows)",
             "",
             "| q | config | what | bytes | bits/px | × vs raw px | × vs source | PSNR dB | ΔE76 | encode s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        de = f"{r['delta_e76']:.2f}" if "delta_e76" in r else "–"
        lines.append(f"| {r['bits']} | {r['config']} | {r['what']} | {r['bytes']:,} | "
                     f"{r['bits_per_pixel']:.3f} | {r['ratio_vs_raw']:.2f} | "
                     f"{r['ratio_vs_source']:.2f} | {r['psnr_db']:.2f} | {de} | "
                     f"{r['encode_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="emoji64,fashion-mnist,digits")
    ap.add_argument("--bits", default=None, help="comma-separated q values (default 1,2; quick: 2)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="print only; write no result files")
    args = ap.parse_args(argv)
    bits = [int(b) for b in (args.bits or ("2" if args.quick else "1,2")).split(",")]
    meta = {
        "command": "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="dcq-quality-") as tmp:
        for name in args.datasets.split(","):
            try:
                rows = bench(name, bits, args.quick, Path(tmp) / name)
            except FileNotFoundError as e:
                print(f"skipping {name}: data not found ({e})")
                continue
            md = table(name, rows, meta)
            print(md)
            if not args.no_write:
                RESULTS.mkdir(exist_ok=True)
                suffix = "_quick" if args.quick else ""
                (RESULTS / f"quality_{name}{suffix}.md").write_text(md)
                (RESULTS / f"quality_{name}{suffix}.json").write_text(
                    json.dumps({"meta": meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
