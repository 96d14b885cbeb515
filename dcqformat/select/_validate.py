"""Argument checks shared by the selection functions.

Every check raises :class:`~dcqformat.errors.InvalidArgumentError` with a message that names the
argument, states the allowed range and shows the value received.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dcqformat.checks import (  # noqa: F401  (the selection modules import them from here)
    check_int,
    check_nonnegative_float,
    check_ratio,
)
from dcqformat.errors import InvalidArgumentError


def check_seed(seed: Any) -> int:
    """A seed is a non-negative integer (numpy's SeedSequence refuses negative entropy)."""
    return check_int(seed, "seed", minimum=0)


def to_numpy(array: Any) -> np.ndarray:
    """Turn a numpy array, torch tensor or sequence into a numpy array (no copy when possible)."""
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch.Tensor without importing torch
        return np.asarray(array.detach().cpu().numpy())
    return np.asarray(array)


def check_labels(labels: Any, n: int | None = None, *, n_name: str = "features") -> np.ndarray:
    """Return labels as a 1-D int64 array of non-negative class ids.

    ``n``, when given, is the number of samples the labels must match; ``n_name`` names the
    argument that fixed it, for the error message.
    """
    arr = to_numpy(labels)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"labels must be 1-D, got labels with shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if (
            arr.dtype.kind == "b"
            or not np.all(np.isfinite(arr))
            or not np.all(arr == np.round(arr))
        ):
            raise InvalidArgumentError(
                f"labels must hold integer class ids, got labels of dtype {arr.dtype}"
            )
    out = arr.astype(np.int64, copy=False)
    if out.size and int(out.min()) < 0:
        bad = int(np.flatnonzero(out < 0)[0])
        raise InvalidArgumentError(
            f"labels must be non-negative class ids, got labels[{bad}]={int(out[bad])}"
        )
    if n is not None and out.shape[0] != n:
        raise InvalidArgumentError(
            f"labels has {out.shape[0]} entries but {n_name} has {n} rows; "
            f"len(labels) must equal {n_name}.shape[0]"
        )
    return out


def check_features_shape(shape: tuple[int, ...], name: str = "features") -> None:
    """Raise InvalidArgumentError unless ``shape`` is 2-D with at least one row and one column."""
    if len(shape) != 2:
        raise InvalidArgumentError(
            f"{name} must be 2-D (samples x dimensions), got {name} with shape {tuple(shape)}"
        )
    if shape[0] < 1 or shape[1] < 1:
        raise InvalidArgumentError(
            f"{name} must have at least one row and one column, got shape {tuple(shape)}"
        )


def check_features_numpy(features: Any, name: str = "features") -> np.ndarray:
    """Return features as a finite 2-D float array (float32 stays float32, others become float64)."""
    arr = to_numpy(features)
    check_features_shape(arr.shape, name)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise InvalidArgumentError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.dtype != np.float32:
        arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InvalidArgumentError(
            f"{name} must be finite, got {name}[{bad[0]}, {bad[1]}]={arr[bad[0], bad[1]]}"
        )
    return arr


def class_budgets(labels: np.ndarray, ratio: float) -> dict[int, int]:
    """Per-class budget ``n_c = min(M_c, max(1, floor(ratio * M_c + 0.5)))``.

    Round half up (not Python's round-half-even), and never zero for a class that is present,
    so a selection never silently drops a class.
    """
    classes, sizes = np.unique(labels, return_counts=True)
    out: dict[int, int] = {}
    for c, m in zip(classes.tolist(), sizes.tolist(), strict=True):
        out[int(c)] = int(min(m, max(1, math.floor(ratio * m + 0.5))))
    return out
