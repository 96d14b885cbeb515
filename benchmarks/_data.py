"""Loading the real datasets in ``../shared/data`` for benchmarks (never downloads)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from _common import SHARED_DATA  # type: ignore[import-not-found]
from PIL import Image


def fashion_mnist(split: str = "train", root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from its IDX files: (uint8 [N, 28, 28], uint8 [N]). ``split``: train|t10k."""
    root = root or SHARED_DATA / "fashion-mnist"
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(root / f"{prefix}-images-idx3-ubyte.gz", "rb") as fh:
        head = np.frombuffer(fh.read(16), ">i4")
        if head[0] != 2051:
            raise ValueError(f"bad IDX image magic {head[0]}")
        images = np.frombuffer(fh.read(), np.uint8).reshape(int(head[1]), int(head[2]), int(head[3]))
    with gzip.open(root / f"{prefix}-labels-idx1-ubyte.gz", "rb") as fh:
        head = np.frombuffer(fh.read(8), ">i4")
        if head[0] != 2049:
            raise ValueError(f"bad IDX label magic {head[0]}")
        labels = np.frombuffer(fh.read(), np.uint8)
    return images, labels


def write_imagefolder(images: np.ndarray, labels: np.ndarray, out: Path, classes: list[str] | None = None,
                      fmt: str = "png", **save_kwargs: object) -> Path:
    """Write ``images`` as ``out/<class>/<index>.<fmt>`` (an ImageFolder); returns ``out``."""
    names = classes or [f"{int(c):02d}" for c in range(int(labels.max()) + 1)]
    for name in names:
        (out / name).mkdir(parents=True, exist_ok=True)
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(img).save(out / names[int(y)] / f"{i:06d}.{fmt}", **save_kwargs)
    return out


def emoji64_root() -> Path:
    """The emoji64 ImageFolder (1,906 64×64 RGBA PNGs, 9 classes)."""
    return SHARED_DATA / "emoji64"
