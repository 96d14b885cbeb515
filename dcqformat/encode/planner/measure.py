"""Exact bytes of a plan, measured on a sample and extrapolated with its error.

The planner converts a class-stratified sample of the source once per encoding (everything
that changes bytes per image: palettes, q, scale, patch dropping) and reads the file back:

- *payload*: the stored bytes of every sample (``/samples/length``); their mean and standard
  deviation give the per-image payload and the error of its mean;
- *per-sample metadata*: every per-sample section (``/samples/*``, ``/sources/*``, per-sample
  ``/masks/*``, and the palettes when there is one per image) divided by the sample size;
- *fixed*: everything else (palettes, classes, provenance, models, HDF5 structure).

The prediction for ``n`` stored images is ``fixed + n * (payload + metadata)``, plus the
selection arrays of a coreset (16 bytes per stored image, measured as int64 ranking + selected
upper bound); its 95 % error is ``1.96 * n * std(payload) / sqrt(sample)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcqformat.encode.planner.plans import Plan
from dcqformat.format.reader import DCQFile

__all__ = ["Measured", "measure_file", "stratified_split", "SELECTION_BYTES_PER_IMAGE"]

#: Upper bound of what a coreset's stored selection costs per kept image (int64 ranking and
#: selected arrays).
SELECTION_BYTES_PER_IMAGE = 16

_PER_SAMPLE = ("/samples/", "/sources/", "/masks/")


@dataclass
class Measured:
    """The bytes of one encoding of the sample (see the module docstring)."""

    plan: Plan
    images: int
    file_bytes: int
    payload_mean: float
    payload_std: float
    per_sample: float
    fixed: float
    seconds: float
    path: Path | None = None

    def predict(self, n: int, fraction: float) -> tuple[float, float]:
        """``(bytes, 95 % error)`` of a file holding ``round(fraction * n)`` of ``n`` images."""
        kept = max(1, round(fraction * n))
        extra = SELECTION_BYTES_PER_IMAGE * kept if fraction < 1.0 else 0.0
        total = self.fixed + kept * (self.payload_mean + self.per_sample) + extra
        err = 1.96 * kept * self.payload_std / math.sqrt(max(1, self.images))
        return total, err

    def record(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"encoding": self.plan.name(), "sample_images": self.images,
                "sample_file_bytes": self.file_bytes, "payload_mean": self.payload_mean,
                "payload_std": self.payload_std, "per_sample_metadata": self.per_sample,
                "fixed": self.fixed, "seconds": round(self.seconds, 2)}


def measure_file(path: Path, plan: Plan, seconds: float) -> Measured:
    """The byte model of a converted sample file."""
    with DCQFile(path) as f:
        info = f.info()
        lengths = np.asarray(f.metadata.length, dtype=np.float64)
        n = len(f)
    sections: dict[str, int] = info["sections"]
    per_sample = sum(v for k, v in sections.items() if k.startswith(_PER_SAMPLE))
    if plan.palette == "image":
        per_sample += sections.get("/palettes", 0)
    payload = float(lengths.sum())
    fixed = info["file_bytes"] - payload - per_sample
    return Measured(plan, n, int(info["file_bytes"]), float(lengths.mean()),
                    float(lengths.std(ddof=1)) if n > 1 else 0.0, per_sample / max(1, n),
                    float(fixed), seconds, path)


def stratified_split(labels: np.ndarray, n_train: int, n_test: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint class-stratified random positions: ``(train, test)``, each sorted; every class
    keeps its share (at least one image in train when it has any)."""
    rng = np.random.default_rng(seed)
    n = labels.shape[0]
    n_train, n_test = min(n_train, n), min(n_test, max(0, n - min(n_train, n)))
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k_train = max(1, round(n_train * idx.size / n))
        k_test = min(idx.size - k_train, round(n_test * idx.size / n))
        train.append(idx[:k_train])
        test.append(idx[k_train:k_train + max(0, k_test)])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``(fn(*args, **kwargs), seconds)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
