"""Decode speed of one sample: DCQFile[i] against Pillow (JPEG q90, PNG-8), h5py, memcpy.

    python benchmarks/decode.py [--count 200] [--sizes 32 64 224] [--bits 1 2 4 8]

Images are real photo crops (scikit-image's sample photos). For each size and q, the same
images are quantized with Pillow (median cut, 2**q colours) and stored three ways: as a .dcq
file (each image its own palette; raw and zstd payloads), as PNG-8 files and, from the
original colours, as JPEG q90 files, all held in memory as bytes. Figures are µs per image,
the median of 5 rounds, measured in this run; the anchor columns sit beside ours.

- ``DCQFile[i]``: full read path: index check, memory-map slice, CRC-32, unpack + palette
  gather into a new H×W×3 array.
- ``decode_batch/img``: ``DCQFile.decode_batch`` of 256 indices (one Numba call), per image.
- ``PIL JPEG`` / ``PIL PNG-8``: ``Image.open(BytesIO(b)).convert("RGB")`` then ``np.asarray``.
- ``h5py read``: reading the sample's payload bytes through h5py (what we avoid).
- ``memcpy``: ``np.copyto`` of an H×W×3 uint8 array (the floor for producing the output).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import photo_tiles, time_per_call  # noqa: E402

from dcqformat import DCQFile, DCQWriter  # noqa: E402


def _quantize(img: np.ndarray, colours: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """Median-cut quantize; return (indices, palette [colours, 3], PNG-8 bytes)."""
    q = Image.fromarray(img).quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    pal = np.zeros((colours, 3), np.uint8)
    raw = np.array(q.getpalette()[: 3 * colours], np.uint8).reshape(-1, 3)
    pal[: len(raw)] = raw
    buf = io.BytesIO()
    q.save(buf, format="PNG", optimize=True)
    return np.asarray(q), pal, buf.getvalue()


def _pil_decode(blobs: list[bytes]):
    def fn(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(blobs[i])) as im:
            return np.asarray(im.convert("RGB"))
    return fn


def run(sizes: list[int], bits_list: list[int], count: int, workdir: Path) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        images = list(photo_tiles(size, count, seed=size))
        jpegs = []
        for img in images:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=90)
            jpegs.append(buf.getvalue())
        src = np.zeros((size, size, 3), np.uint8)
        dst = np.empty_like(src)
        for bits in bits_list:
            colours = 1 << bits
            quantized = [_quantize(img, colours) for img in images]
            # The anchors are re-measured for every row, right beside our figures, so that a
            # row's ratio compares timings taken under the same machine load.
            t_jpeg = time_per_call(_pil_decode(jpegs), count)
            t_copy = time_per_call(lambda i, d=dst, s=src: np.copyto(d, s), count)
            t_png8 = time_per_call(_pil_decode([q[2] for q in quantized]), count)
            row = {"size": size, "bits": bits, "jpeg_us": t_jpeg * 1e6, "png8_us": t_png8 * 1e6,
                   "memcpy_us": t_copy * 1e6,
                   "jpeg_bytes": float(np.mean([len(j) for j in jpegs])),
                   "png8_bytes": float(np.mean([len(q[2]) for q in quantized]))}
            for enc in ("raw", "zstd"):
                path = workdir / f"bench_{size}_{bits}_{enc}.dcq"
                with DCQWriter(path, bits=bits, channels=3, classes=["photo"], payload_encoding=enc) as w:
                    w.set_palettes(np.stack([q[1] for q in quantized]))
                    for i, q in enumerate(quantized):
                        w.add_sample(q[0], cluster=i, label=0)
                f = DCQFile(path)
                assert np.array_equal(f[0][0], quantized[0][1][quantized[0][0]])
                row[f"dcq_{enc}_us"] = time_per_call(lambda i, f=f: f[i], count) * 1e6
                row[f"dcq_{enc}_bytes"] = path.stat().st_size / count
                if enc == "raw":
                    batch = np.arange(256) % count
                    row["batch_us"] = time_per_call(lambda i, f=f, b=batch: f.decode_batch(b, "hwc"), 1) * 1e6 / 256
                    with h5py.File(path, "r") as h5:
                        ds = h5["payload"]
                        offs, lens = f._offsets, f._lengths
                        row["h5py_us"] = time_per_call(
                            lambda i, ds=ds, offs=offs, lens=lens: ds[offs[i]:offs[i] + lens[i]], count) * 1e6
            rows.append(row)
            print(f"  measured {size}px q={bits}", file=sys.stderr)
    return rows


def main() -> None:
    """Run the benchmark and print the markdown table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 4, 8])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.sizes, args.bits, args.count, Path(tmp))
    print("\nµs per image (median of 5 rounds; lower is better). Speed-up = PIL JPEG / DCQFile[i].\n")
    print("| px | q | DCQFile[i] raw | DCQFile[i] zstd | decode_batch/img | PIL JPEG q90 | PIL PNG-8 | h5py read | memcpy | speed-up vs JPEG | vs PNG-8 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['bits']} | {r['dcq_raw_us']:.1f} | {r['dcq_zstd_us']:.1f} | {r['batch_us']:.2f} "
              f"| {r['jpeg_us']:.1f} | {r['png8_us']:.1f} | {r['h5py_us']:.1f} | {r['memcpy_us']:.2f} "
              f"| {r['jpeg_us'] / r['dcq_raw_us']:.1f}× | {r['png8_us'] / r['dcq_raw_us']:.1f}× |")
    print("\nBytes per image (whole .dcq file / count, each image with its own palette here):\n")
    print("| px | q | .dcq raw | .dcq zstd | PNG-8 (optimize) | JPEG q90 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['bits']} | {r['dcq_raw_bytes']:.0f} | {r['dcq_zstd_bytes']:.0f} "
              f"| {r['png8_bytes']:.0f} | {r['jpeg_bytes']:.0f} |")


if __name__ == "__main__":
    main()
