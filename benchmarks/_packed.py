"""Helpers of the packed-batch benchmarks (``loader_packed.py``, ``device_decode.py``): test
files, the two loader paths and their timing."""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import photo_tiles
from PIL import Image
from torch.utils.data import DataLoader

from dcqformat import DCQFile, DCQWriter
from dcqformat.torch import DCQDataset, PackedBatch, expand

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The 1/5/15-minute load average, as ``uptime`` shows it."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def quantize(img: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow median cut to 2**bits colours: (indices [H, W], palette [2**bits, 3])."""
    colours = 1 << bits
    q = Image.fromarray(img).quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    pal = np.zeros((colours, 3), np.uint8)
    raw = np.array(q.getpalette()[: 3 * colours], np.uint8).reshape(-1, 3)
    pal[: len(raw)] = raw
    return np.asarray(q), pal


def jpeg_bytes(images: Iterable[np.ndarray], quality: int = 90) -> list[int]:
    """Size of every image as a JPEG file (Pillow, quality ``quality``)."""
    sizes = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        sizes.append(len(buf.getvalue()))
    return sizes


def photo_dcq(path: Path, images: list[np.ndarray], bits: int, encoding: str = "raw") -> Path:
    """The images quantized one by one (each its own palette) into a ``.dcq`` file."""
    quantized = [quantize(img, bits) for img in images]
    with DCQWriter(path, bits=bits, channels=3, classes=["a", "b"], payload_encoding=encoding) as w:
        w.set_palettes(np.stack([q[1] for q in quantized]))
        for i, (idx, _) in enumerate(quantized):
            w.add_sample(idx, cluster=i, label=i % 2)
    return path


def photo_images(size: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` real photo crops of ``size`` px (scikit-image's sample photos)."""
    return list(photo_tiles(size, count, seed=seed))


def convert(src: Path, dst: Path, device: str, *, bits: int = 2, demo: bool = False) -> tuple[Path, float]:
    """Run ``dcqformat convert`` (or ``dcqformat demo`` for the digits) with ``--device``; returns
    the written file and the seconds it took."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if demo:
        cmd = [sys.executable, "-m", "dcqformat", "demo", "--out", str(dst), "--device", device, "--quiet"]
        out = dst / "digits_q2.dcq"
    else:
        cmd = [sys.executable, "-m", "dcqformat", "convert", str(src), str(dst), "--bits", str(bits),
               "--device", device, "--quiet", "--force"]
        out = dst
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return out, time.perf_counter() - start


def decoded_loader(path: Path, batch: int, workers: int, pin: bool) -> DataLoader:
    """Today's decoded batches: ``DCQDataset`` + ``DCQDataset.collate`` (uint8 [B, C, H, W])."""
    return DataLoader(DCQDataset(path), batch_size=batch, shuffle=True, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=pin, collate_fn=DCQDataset.collate)


def packed_loader(path: Path, batch: int, workers: int, pin: bool) -> DataLoader:
    """Packed batches: ``DCQDataset(output="packed")``, default collate."""
    return DataLoader(DCQDataset(path, output="packed"), batch_size=batch, shuffle=True,
                      num_workers=workers, persistent_workers=workers > 0, pin_memory=pin)


def consume_decoded(device: torch.device | None) -> Callable[[Any], int]:
    """Per batch of the decoded path: nothing, or the copy to ``device``; returns the images."""
    def step(batch: Any) -> int:
        images, labels = batch
        if device is not None:
            images.to(device, non_blocking=True)
            labels.to(device, non_blocking=True)
        return len(labels)
    return step


def consume_packed(device: torch.device | None, **kw: Any) -> Callable[[Any], int]:
    """Per batch of the packed path: nothing, or :func:`expand` on ``device``."""
    def step(batch: PackedBatch) -> int:
        if device is not None:
            expand(batch, device, **kw)
        return len(batch)
    return step


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_loaders(loaders: dict[str, tuple[DataLoader, Callable[[Any], int]]], seconds: float,
                 rounds: int, device: torch.device | None = None) -> dict[str, float]:
    """Median images/s of every (loader, per-batch step), whole epochs of at least ``seconds``
    per round, the loaders interleaved round by round; one warm-up epoch each first."""
    for loader, step in loaders.values():
        for b in loader:
            step(b)
    _sync(device)
    results: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(rounds):
        for name, (loader, step) in loaders.items():
            count, start = 0, time.perf_counter()
            while True:
                for b in loader:
                    count += step(b)
                _sync(device)
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            results[name].append(count / elapsed)
    return {name: statistics.median(v) for name, v in results.items()}


def bytes_per_image(path: Path, count: int = 256) -> dict[str, float]:
    """Mean bytes per image of the first ``count`` samples: moved to a device by the packed
    path (``PackedBatch.nbytes()["device"]``, palette table and labels included), the packed
    indices alone, and a decoded uint8 batch with its int64 labels."""
    f = DCQFile(path)
    n = min(count, len(f))
    batch = DCQDataset(path, output="packed").pack(list(range(n)))
    sizes = batch.nbytes()
    pixels = float((f.heights[:n] * f.widths[:n]).sum()) * f.channels
    return {"packed_device": sizes["device"] / n, "packed_data": sizes["data"] / n,
            "decoded": (pixels + 8 * n) / n}
