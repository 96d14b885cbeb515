"""DataLoader throughput: .dcq (single-sample and batched paths) against PNG and JPEG folders.

    python benchmarks/loader.py [--fmnist 20000] [--workers 0 1 2] [--batch 256] [--seconds 1.5]

Datasets (from ``../shared/data``, never downloaded):

- emoji64: the ImageFolder of 1,906 64×64 RGBA PNGs (9 classes), flattened on white to RGB;
- Fashion-MNIST: the first ``--fmnist`` training images (28×28 grey), read from the IDX files.

Each is written, in a temporary folder, three ways: an ImageFolder of PNG files, an ImageFolder
of JPEG q90 files, and a ``.dcq`` file at q = 2 (4 colours). By default the ``.dcq`` file is made
by a simple stand-in quantizer, not by ``dcqformat convert``: one global palette from k-means in
NumPy over a pixel sample, each pixel mapped to its nearest palette colour, raw payload; decode
speed does not depend on the palette's colours. ``--dcq NAME=FILE`` uses FILE instead (e.g. the
file ``dcqformat convert`` writes by default, whose payload encoding ``auto`` picks), and adds
the rows ``.dcq batched, cache`` (``DCQDataset(cache_decoded=True)``: entropy decoding only in
the first epoch; the warm-up epoch fills each persistent worker's cache) and ``.dcq packed ->
expand, cache`` (the same cache under ``output="packed"``).

Every row is a ``torch.utils.data.DataLoader`` (batch 256, shuffled, the platform's default
start method, persistent workers when ``num_workers > 0``) yielding uint8 C×H×W batches:

- ``PNG folder`` / ``JPEG folder``: a minimal ImageFolder: ``Image.open(path).convert(mode)``,
  then a C×H×W uint8 tensor (torchvision's PILToTensor), default collate;
- ``.dcq single``: ``DCQDataset`` with only its per-sample ``__getitem__`` visible;
- ``.dcq batched``: ``DCQDataset`` as is: DataLoader calls ``__getitems__`` (one
  ``decode_batch`` per batch), default collate stacks the per-sample views;
- ``.dcq batched + collate``: the same with ``collate_fn=DCQDataset.collate`` (the decode buffer
  is the batch, no per-sample work);
- ``.dcq packed -> expand``: ``DCQDataset(output="packed")``: the workers decode only the packed
  q-bit index maps (a ctx or zstd file is entropy-decoded there) and ship those (q/8 bytes per
  pixel instead of C), and the main process turns each batch into the same uint8 C×H×W pixel
  batch with ``expand(batch, "cpu")`` (the Numba palette kernel, on the automatic thread
  count); the expansion is part of the timed loop, so its cost is counted like any other.

Figures are images per second through the loader in the main process, after one warm-up
epoch, the median of ``--rounds`` rounds of at least ``--seconds`` each; within a round all
loaders of one (dataset, workers) cell run back to back so they see the same machine load.
The ratio column divides by the JPEG folder at the same number of workers.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, loader_rate  # noqa: E402

from dcqformat import DCQWriter  # noqa: E402
from dcqformat.torch import DCQDataset, expand  # noqa: E402

QUANTIZER = "numpy k-means, one global palette of 4 colours (q=2), nearest-colour mapping"


# -- source images ---------------------------------------------------------------------------------
def load_emoji64(root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All emoji64 images flattened on white: (uint8 [N, 64, 64, 3], labels [N], classes)."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    images, labels = [], []
    for y, name in enumerate(classes):
        for path in sorted((root / name).glob("*.png")):
            with Image.open(path) as im:
                rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            images.append(np.asarray(Image.alpha_composite(white, rgba).convert("RGB")))
            labels.append(y)
    return np.stack(images), np.array(labels, np.int64), classes


def load_fashion_mnist(root: Path, count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``count`` training images of Fashion-MNIST: (uint8 [N, 28, 28], labels, classes)."""
    with gzip.open(root / "train-images-idx3-ubyte.gz", "rb") as fh:
        magic, n, rows, cols = np.frombuffer(fh.read(16), ">i4")
        if magic != 2051:
            raise ValueError(f"bad IDX image magic {magic}")
        images = np.frombuffer(fh.read(), np.uint8).reshape(int(n), int(rows), int(cols))
    with gzip.open(root / "train-labels-idx1-ubyte.gz", "rb") as fh:
        magic, _ = np.frombuffer(fh.read(8), ">i4")
        if magic != 2049:
            raise ValueError(f"bad IDX label magic {magic}")
        labels = np.frombuffer(fh.read(), np.uint8).astype(np.int64)
    classes = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot"]
    return images[:count], labels[:count], classes


# -- the stand-in quantizer ------------------------------------------------------------------------
def _nearest(pixels: np.ndarray, centres: np.ndarray) -> np.ndarray:
    out = np.empty(len(pixels), np.uint8)
    for s in range(0, len(pixels), 1 << 20):
        chunk = pixels[s:s + (1 << 20)]
        d = ((chunk[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        out[s:s + len(chunk)] = d.argmin(1)
    return out


def quantize(images: np.ndarray, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means palette over a pixel sample, then nearest colour: (indices [N, H, W], palette [k, ch])."""
    pixels = images.reshape(-1, 1 if images.ndim == 3 else images.shape[-1]).astype(np.float32)
    rng = np.random.default_rng(seed)
    sample = pixels[rng.choice(len(pixels), min(len(pixels), 200_000), replace=False)]
    order = np.argsort(sample.sum(1))
    centres = sample[order[((np.arange(k) + 0.5) / k * len(order)).astype(int)]].copy()
    for _ in range(15):
        assign = _nearest(sample, centres)
        for c in range(k):
            members = sample[assign == c]
            if len(members):
                centres[c] = members.mean(0)
    palette = np.clip(np.rint(centres), 0, 255).astype(np.uint8)
    indices = _nearest(pixels, palette.astype(np.float32)).reshape(images.shape[:3])
    return indices, palette


def write_dcq(path: Path, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> Path:
    """The images as a q = 2 ``.dcq`` file with one global palette (raw payload)."""
    indices, palette = quantize(images)
    with DCQWriter(path, bits=2, channels=palette.shape[1], classes=classes) as w:
        w.set_palettes(palette[None])
        w.set_provenance({"quantizer": QUANTIZER})
        for idx, y in zip(indices, labels, strict=True):
            w.add_sample(idx, cluster=0, label=int(y))
    return path


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, classes: list[str], fmt: str) -> Path:
    """An ImageFolder ``root/<class>/<i>.<ext>``: PNG or JPEG q90."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    ext, kw = ("png", {}) if fmt == "png" else ("jpg", {"quality": 90})
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(img).save(root / classes[int(y)] / f"{i:06d}.{ext}", **kw)
    return root


# -- the datasets under test -----------------------------------------------------------------------
class FolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """A minimal ImageFolder: PIL open + convert, then a uint8 C×H×W tensor (like PILToTensor)."""

    def __init__(self, root: Path, mode: str) -> None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [(str(p), y) for y, c in enumerate(classes) for p in sorted((root / c).iterdir())]
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, y = self.samples[i]
        with Image.open(path) as im:
            arr = np.array(im.convert(self.mode))
        t = torch.from_numpy(arr)
        return (t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)), y


class SingleSample(Dataset[Any]):
    """Hides ``__getitems__`` so DataLoader fetches sample by sample."""

    def __init__(self, ds: DCQDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        return self.ds[i]


def run_cell(variants: dict[str, Callable[[], Any]], seconds: float, rounds: int) -> dict[str, float]:
    """Median images/s of every variant, interleaving the variants round by round. Each loader
    is built once and warmed up by one epoch (workers started, JIT caches loaded, page cache
    warm); its persistent workers then serve every round."""
    loaders = {}
    for name, make in variants.items():
        loaders[name] = make()
        for _ in loaders[name]:
            pass
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, loader in loaders.items():
            results[name].append(loader_rate(loader, seconds))
    loaders.clear()  # shuts persistent workers down
    return {name: statistics.median(v) for name, v in results.items()}


class Expanded:
    """A DataLoader of packed batches whose every batch the main process expands on the CPU
    (``expand(batch, "cpu")``: uint8 [B, C, H, W] and labels, like every other row)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Any:
        for batch in self.loader:
            yield expand(batch, "cpu")


ROWS = ["PNG folder", "JPEG folder", ".dcq single", ".dcq batched", ".dcq batched + collate",
        ".dcq batched, cache", ".dcq packed -> expand", ".dcq packed -> expand, cache"]


def bench_dataset(name: str, images: np.ndarray, labels: np.ndarray, classes: list[str], work: Path,
                  workers: Sequence[int], batch: int, seconds: float, rounds: int,
                  given: Path | None = None) -> dict[int, dict[str, float]]:
    """Write the three stores of one dataset (or use the ``given`` .dcq file) and time every
    row at every worker count."""
    t0 = time.perf_counter()
    mode = "L" if images.ndim == 3 else "RGB"
    png = write_folder(work / f"{name}-png", images, labels, classes, "png")
    jpg = write_folder(work / f"{name}-jpg", images, labels, classes, "jpeg")
    dcq = given if given is not None else write_dcq(work / f"{name}.dcq", images, labels, classes)
    sizes = {"PNG folder": _du(png), "JPEG folder": _du(jpg), ".dcq": dcq.stat().st_size}
    print(f"[{name}] wrote {len(images)} images in {time.perf_counter() - t0:.1f} s; bytes: "
          + ", ".join(f"{k} {v:,}" for k, v in sizes.items()), file=sys.stderr)
    ds = DCQDataset(dcq)
    x0, _ = ds[0]
    assert x0.shape == ((1,) if mode == "L" else (3,)) + images.shape[1:3]
    out: dict[int, dict[str, float]] = {}
    for w in workers:
        def loader(dataset: Dataset[Any], collate: Any = None, w: int = w) -> Callable[[], DataLoader]:
            kw: dict[str, Any] = {"collate_fn": collate} if collate is not None else {}
            return lambda: DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=w,
                                      persistent_workers=w > 0, **kw)
        variants: dict[str, Callable[[], Any]] = {
            "PNG folder": loader(FolderDataset(png, mode)),
            "JPEG folder": loader(FolderDataset(jpg, mode)),
            ".dcq single": loader(SingleSample(ds)),
            ".dcq batched": loader(ds),
            ".dcq batched + collate": loader(ds, DCQDataset.collate),
        }
        variants[".dcq packed -> expand"] = expanded(loader(DCQDataset(dcq, output="packed")))
        if given is not None:
            variants[".dcq batched, cache"] = loader(DCQDataset(dcq, cache_decoded=True))
            variants[".dcq packed -> expand, cache"] = expanded(
                loader(DCQDataset(dcq, output="packed", cache_decoded=True)))
        out[w] = run_cell(variants, seconds, rounds)
        print(f"[{name}] workers={w}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in out[w].items()),
              file=sys.stderr)
    return out


def expanded(make: Callable[[], DataLoader]) -> Callable[[], Expanded]:
    """The loader ``make`` builds, its packed batches expanded in the main process."""
    return lambda: Expanded(make())


def _du(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def table(title: str, results: dict[int, dict[str, float]]) -> str:
    """Markdown: one row per loader, images/s and the ratio to the JPEG folder per worker count."""
    workers = sorted(results)
    head = "| loader | " + " | ".join(f"workers={w}: img/s | ×JPEG" for w in workers) + " |"
    lines = [f"**{title}**", "", head, "|---" + "|---:|---:" * len(workers) + "|"]
    for row in [r for r in ROWS if r in results[workers[0]]]:
        cells = []
        for w in workers:
            v, ref = results[w][row], results[w]["JPEG folder"]
            cells += [f"{v:,.0f}", f"{v / ref:.1f}×"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fmnist", type=int, default=20_000, help="Fashion-MNIST images to use")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=1.5, help="minimum seconds per timing round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--datasets", nargs="+", default=["emoji64", "fashion-mnist"])
    ap.add_argument("--dcq", action="append", default=[], metavar="NAME=FILE",
                    help="use this .dcq file for dataset NAME instead of the stand-in quantizer's")
    args = ap.parse_args(argv)
    given = {k: Path(v) for k, v in (item.split("=", 1) for item in args.dcq)}
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory(prefix="dcq-loader-") as tmp:
        work = Path(tmp)
        for name in args.datasets:
            if name == "emoji64":
                data = load_emoji64(SHARED_DATA / "emoji64")
            else:
                data = load_fashion_mnist(SHARED_DATA / "fashion-mnist", args.fmnist)
            results[name] = (len(data[0]), data[0].shape[1:],
                             bench_dataset(name, *data, work, args.workers, args.batch, args.seconds,
                                           args.rounds, given.get(name)))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"DataLoader throughput, batch {args.batch}, median of {args.rounds} rounds of >= "
          f"{args.seconds} s. {os.cpu_count()} CPUs, load average {load:.1f} at the end, "
          f"Python {platform.python_version()}, torch {torch.__version__}, start method "
          f"{torch.multiprocessing.get_start_method()}.")
    for name in results:
        if name in given:
            from dcqformat import DCQFile
            with DCQFile(given[name]) as f:
                print(f".dcq file for {name}: {given[name]} ({f.bits} bits, payload "
                      f"{f.payload_encoding}, {f.metadata.file_size / len(f):.1f} B/image)")
        else:
            print(f".dcq file for {name}: q=2, raw payload, made by the stand-in quantizer ({QUANTIZER}).")
    print()
    for name, (n, shape, res) in results.items():
        print(table(f"{name}: {n} images of {'×'.join(map(str, shape))}", res))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
