"""Reconstruction quality and bytes of the encoder (issue #3) against per-image anchors.

    python benchmarks/quality.py              # emoji64 (all 1,906), Fashion-MNIST (3,000), digits; q 1,2,4
    python benchmarks/quality.py --quick      # smaller subsets, q = 2 only (a few minutes)
    python benchmarks/quality.py --datasets emoji64 --bits 1,2 --fm-images 10000

For every dataset and q it prints (and writes to ``benchmarks/results/quality_<dataset>.md`` and
``.json``) one row per encoding:

- ``dcq``: ``dcqformat.convert`` with its defaults (C = 20 cluster palettes, top-50 %
  Grad-CAM++ attention, edge refinement, ``payload_encoding="auto"``: the smaller of raw and
  zstd); bytes = the whole file.
- ``dcq-raw`` (q = 2): the same with the raw bit-packed payload.

Every ``.dcq`` of a dataset uses one proxy task model, trained once as ``convert`` would train it
(``train_probe.task_proxy``) and passed as ``model=``; its training time is added to every dcq
row's ``encode s``.
- ablations at q = 2: ``image`` (one palette per image), ``global`` (one palette), ``noattn``
  (palettes from all pixels), ``norefine`` (no edge refinement), ``paper`` (attention-only
  palettes, no reserved background colour: ``context_weight=0, reserve_share=None``).
- per-image Pillow quantizers with 2**q colours -- ``mediancut``, ``octree`` (FASTOCTREE) and
  ``kmeans`` (MEDIANCUT refined by Pillow's k-means) -- each stored two ways: ``<name>-png8``
  (optimised PNG-8 files, the per-image palette format users have today; bytes = sum of the
  files) and ``<name>-packed`` (q-bit packed indices + the 2**q-colour palette per image, no
  header: ``ceil(H·W·q/8) + 2**q·channels`` bytes each, the floor for any per-image-palette
  container without entropy coding).
- ``jpeg@dcq``: JPEG (optimised Huffman tables, 4:2:0) at the highest quality whose files add up
  to no more than the ``dcq`` file (quality 1 if even that is larger -- then its bytes exceed).

Quality is measured against the originals as the encoder sees them (alpha flattened on white):
PSNR (mean of per-image PSNR, dB) and, for colour data, the mean CIE76 ΔE in LAB. ``encode s``
is wall time on this machine with one torch thread (the encoder's default), ``img/s`` images per
second of it. The bar of issue #3 (``.dcq`` bytes per image below PNG-8 at the same q) is checked
against the smallest of the three PNG-8 rows and printed under each table. None of these is a
training result; see ``benchmarks/train_probe.py`` for accuracy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
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


def prepare(name: str, work: Path, quick: bool, fm_images: int | None = None) -> Path:
    if name == "emoji64":
        root = SHARED_DATA / "emoji64"
        if not root.is_dir():
            raise FileNotFoundError(root)
        return _subset(root, work / "emoji64", 40) if quick else root
    if name == "fashion-mnist":
        from _data import fashion_mnist, write_imagefolder  # type: ignore[import-not-found]

        images, labels = fashion_mnist("train")
        n = fm_images or (1000 if quick else 3000)
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


def train_proxy_once(src: Path, work: Path) -> tuple[str, float]:
    """The proxy task model ``convert(model="proxy")`` would train (same sample, seed and
    defaults), trained once per dataset and saved; returns (path, seconds)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_probe import task_proxy  # type: ignore[import-not-found]

    from dcqformat.encode.images import is_grey, load_image
    from dcqformat.encode.scan import scan_image_folder

    entries = scan_image_folder(src).entries
    channels = 1 if all(is_grey(load_image(e.path)) for e in entries) else 3
    out = str(work / "proxy.pt")
    info = task_proxy({"folder": str(src), "channels": channels}, out, 4)
    return out, float(info["seconds"])


def run_dcq(src: Path, work: Path, tag: str, proxy: tuple[str, float] | None = None,
            **kwargs: Any) -> tuple[dict[str, Any], list[np.ndarray]]:
    from dcqformat.encode.pipeline import convert
    from dcqformat.format.reader import DCQFile

    out = work / f"{tag}.dcq"
    if proxy is not None:
        kwargs["model"] = proxy[0]
    t0 = time.perf_counter()
    s = convert(src, out, progress=False, overwrite=True, device="cpu", **kwargs)
    seconds = time.perf_counter() - t0 + (proxy[1] if proxy is not None else 0.0)
    f = DCQFile(out)
    dec = [f[i][0] for i in range(len(f))]
    row = {"bytes": out.stat().st_size, "encode_s": seconds, "palettes": s.palettes,
           "stages_s": s.stage_seconds}
    out.unlink()
    return row, dec


QUANTIZERS = {
    "mediancut": (Image.Quantize.MEDIANCUT, 0, "Pillow MEDIANCUT"),
    "octree": (Image.Quantize.FASTOCTREE, 0, "Pillow FASTOCTREE"),
    "kmeans": (Image.Quantize.MEDIANCUT, 1, "Pillow MEDIANCUT + k-means"),
}


def run_quantizer(orig: list[np.ndarray], k: int, name: str
                  ) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """Per-image Pillow quantization: (PNG-8 row, bit-packed row, decoded images)."""
    method, km, _ = QUANTIZERS[name]
    q_bits = max(1, (k - 1).bit_length())
    t0 = time.perf_counter()
    png, packed, dec = 0, 0, []
    for a in orig:
        rgb = Image.fromarray(np.repeat(a, 3, 2) if a.shape[2] == 1 else a)
        q = rgb.quantize(k, method=method, kmeans=km, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        q.save(buf, format="PNG", optimize=True)
        png += buf.tell()
        packed += -(-a.shape[0] * a.shape[1] * q_bits // 8) + k * a.shape[2]
        back = np.asarray(q.convert("RGB"))
        dec.append(back[..., :1] if a.shape[2] == 1 else back)
    seconds = time.perf_counter() - t0
    return {"bytes": png, "encode_s": seconds}, {"bytes": packed, "encode_s": seconds}, dec


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


def bench(name: str, bits_list: list[int], quick: bool, work: Path,
          fm_images: int | None = None, ablations: bool = True) -> list[dict[str, Any]]:
    work.mkdir(parents=True, exist_ok=True)
    src = prepare(name, work / "data", quick, fm_images)
    orig, src_sizes, channels = originals(src)
    pixels = sum(a.shape[0] * a.shape[1] for a in orig)
    n = len(orig)
    rows: list[dict[str, Any]] = []

    def add(config: str, what: str, q: int, row: dict[str, Any], dec: list[np.ndarray]) -> None:
        row.update(quality(orig, dec))
        row.update(config=config, what=what, bits=q, images=n,
                   bits_per_pixel=8 * row["bytes"] / pixels,
                   ratio_vs_raw=pixels * channels / row["bytes"],
                   ratio_vs_source=sum(src_sizes) / row["bytes"],
                   bytes_per_image=row["bytes"] / n, images_per_s=n / max(1e-9, row["encode_s"]))
        rows.append(row)
        de = f", dE {row['delta_e76']:.2f}" if "delta_e76" in row else ""
        print(f"  {name} q{q} {config:<10} {row['bytes']:>10,} B  {row['psnr_db']:6.2f} dB{de}  "
              f"{row['encode_s']:7.1f} s", flush=True)

    proxy = train_proxy_once(src, work)
    for q in bits_list:
        k = 1 << q
        r, dec = run_dcq(src, work, f"{name}_q{q}", proxy, bits=q)
        dcq_bytes = r["bytes"]
        add("dcq", "convert() defaults: C=20 cluster palettes, attention, refinement, auto payload",
            q, r, dec)
        if q == 2 and ablations:
            r, dec = run_dcq(src, work, f"{name}_q{q}_raw", proxy, bits=q, payload_encoding="raw")
            add("dcq-raw", "as dcq, raw bit-packed payload", q, r, dec)
            for cfg, what, kw in [
                ("image", "ablation: one palette per image (C=N)", {"palette": "image"}),
                ("global", "ablation: one palette (C=1)", {"palette": "global"}),
                ("noattn", "ablation: palettes from all pixels", {"attention": False}),
                ("norefine", "ablation: no edge refinement", {"refine": False}),
                ("paper", "ablation: attention-only palettes, no reserved colour",
                 {"context_weight": 0.0, "reserve_share": None}),
            ]:
                r, dec = run_dcq(src, work, f"{name}_q{q}_{cfg}", proxy, bits=q, **kw)
                add(cfg, what, q, r, dec)
        for qn, (_, _, label) in QUANTIZERS.items():
            png, packed, dec = run_quantizer(orig, k, qn)
            add(f"{qn}-png8", f"{label} per image, {k} colours, optimised PNG-8", q, png, dec)
            add(f"{qn}-packed", f"{label} per image, {k} colours, bit-packed indices + palette",
                q, packed, dec)
        r, dec = run_jpeg_at(orig, dcq_bytes)
        add("jpeg@dcq", f"JPEG at the bytes of dcq (quality {r['jpeg_quality']})", q, r, dec)
    return rows


def table(name: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Encoder quality: {name}", "",
             f"- command: `{meta['command']}`",
             f"- date: {meta['date']}; machine: {meta['machine']}, {os.cpu_count()} CPUs shared with "
             f"other jobs (load average at start {meta.get('load_at_start', '?')})",
             f"- images: {rows[0]['images']:,}; originals as the encoder sees them (alpha on white)",
             "- PSNR: mean of per-image PSNR; dE: mean CIE76 in LAB (colour only); encode s: wall "
             "time, one torch thread, shared 2-core machine (includes the proxy training time for dcq rows)",
             "",
             "| q | config | what | bytes | bytes/img | bits/px | × vs raw px | × vs source | PSNR dB | ΔE76 | encode s | img/s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        de = f"{r['delta_e76']:.2f}" if "delta_e76" in r else "–"
        lines.append(f"| {r['bits']} | {r['config']} | {r['what']} | {r['bytes']:,} | "
                     f"{r['bytes_per_image']:.1f} | "
                     f"{r['bits_per_pixel']:.3f} | {r['ratio_vs_raw']:.2f} | "
                     f"{r['ratio_vs_source']:.2f} | {r['psnr_db']:.2f} | {de} | "
                     f"{r['encode_s']:.1f} | {r['images_per_s']:.0f} |")
    lines += ["", "Bar (issue #3): .dcq bytes/image below PNG-8 at the same q (smallest PNG-8 of the "
              "three quantizers, measured in this run):", ""]
    for q in sorted({r["bits"] for r in rows}):
        at_q = {r["config"]: r for r in rows if r["bits"] == q}
        png = min((r for c, r in at_q.items() if c.endswith("-png8")), key=lambda r: r["bytes"])
        d = at_q["dcq"]
        verdict = "holds" if d["bytes"] < png["bytes"] else "FAILS"
        lines.append(f"- q={q}: dcq {d['bytes_per_image']:.1f} B/img vs {png['config']} "
                     f"{png['bytes_per_image']:.1f} B/img -> {d['bytes'] / png['bytes']:.2f}x: "
                     f"**{verdict}** (PSNR {d['psnr_db']:.2f} vs {png['psnr_db']:.2f} dB)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="emoji64,fashion-mnist,digits")
    ap.add_argument("--bits", default=None, help="comma-separated q values (default 1,2,4; quick: 2)")
    ap.add_argument("--fm-images", type=int, default=None,
                    help="Fashion-MNIST training images used (default 3000; quick: 1000)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-ablations", action="store_true",
                    help="only the dcq row per q (no dcq-raw / ablation converts)")
    ap.add_argument("--no-write", action="store_true", help="print only; write no result files")
    args = ap.parse_args(argv)
    bits = [int(b) for b in (args.bits or ("2" if args.quick else "1,2,4")).split(",")]
    meta = {
        "command": "python benchmarks/quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, python {platform.python_version()}",
        "load_at_start": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="dcq-quality-") as tmp:
        for name in args.datasets.split(","):
            try:
                rows = bench(name, bits, args.quick, Path(tmp) / name, args.fm_images,
                             not args.no_ablations)
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
