"""Helpers shared by the benchmark scripts: timing and real test images."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def loader_rate(loader: Any, seconds: float) -> float:
    """Images per second a DataLoader-like iterable of ``(images, labels)`` (or of batches
    with a length, e.g. packed ones) delivers, over whole epochs lasting at least ``seconds``."""
    count = 0
    start = time.perf_counter()
    while True:
        for batch in loader:
            count += len(batch[0] if isinstance(batch, (list, tuple)) else batch)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def best_of(fn: Callable[[], object], reps: int = 5) -> float:
    """The fastest of ``reps`` calls of ``fn`` after one warm-up call, in seconds."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def time_per_call(fn: Callable[[int], object], n_items: int, *, min_seconds: float = 0.3,
                  repeats: int = 5) -> float:
    """Median over ``repeats`` rounds of the mean seconds per ``fn(i)`` call, cycling
    through ``n_items`` items; each round lasts at least ``min_seconds``."""
    for i in range(min(n_items, 50)):  # warm-up (JIT, caches)
        fn(i)
    rounds = []
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            for i in range(n_items):
                fn(i)
            calls += n_items
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        rounds.append(elapsed / calls)
    return float(np.median(rounds))


def photo_tiles(size: int, count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` real RGB photo crops of ``size``×``size`` (scikit-image's sample photos,
    random crops resized with Pillow's Lanczos filter)."""
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    for _ in range(count):
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.Resampling.LANCZOS)
        yield np.asarray(crop.convert("RGB"))


def emit_report(lines: list[str], out: str | Path) -> str:
    """Join a markdown report's ``lines``, print it and write it to ``out``; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    Path(out).write_text(text)
    return text
