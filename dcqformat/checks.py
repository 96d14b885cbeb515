"""Argument checks shared by the whole library.

Every check returns the value in its canonical type or raises
:class:`~dcqformat.errors.InvalidArgumentError` with a message that names the argument, states the
allowed range and shows the value received. Booleans are never accepted as numbers.
"""

from __future__ import annotations

import math
import numbers
import operator
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dcqformat.errors import InvalidArgumentError

__all__ = ["describe", "check_int", "check_float", "check_ratio", "check_nonnegative_float",
           "check_choice", "check_path", "check_sample_index", "check_sample_indices"]


def describe(value: Any) -> str:
    """``repr(value)``, shortened to at most 60 characters for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """Return ``value`` as an int in [minimum, maximum] (either bound may be None), or raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(
            f"{name} must be an integer, got {name}={describe(value)} of type {type(value).__name__}"
        )
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        if minimum is not None and maximum is not None:
            allowed = f"in [{minimum}, {maximum}]"
        elif minimum is not None:
            allowed = f">= {minimum}"
        else:
            allowed = f"<= {maximum}"
        raise InvalidArgumentError(f"{name} must be {allowed}, got {name}={out}")
    return out


def check_float(value: Any, name: str, *, minimum: float | None = None,
                maximum: float | None = None, min_open: bool = False,
                max_open: bool = False) -> float:
    """Return ``value`` as a finite float within the bounds, or raise. ``min_open`` /
    ``max_open`` exclude the bound itself (``(0, 1]`` is ``minimum=0, min_open=True,
    maximum=1``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentError(
            f"{name} must be a real number, got {name}={describe(value)} of type "
            f"{type(value).__name__}"
        )
    out = float(value)
    low_bad = minimum is not None and (out <= minimum if min_open else out < minimum)
    high_bad = maximum is not None and (out >= maximum if max_open else out > maximum)
    if not math.isfinite(out) or low_bad or high_bad:
        lo = "(-inf" if minimum is None else ("(" if min_open else "[") + f"{minimum:g}"
        hi = "inf)" if maximum is None else f"{maximum:g}" + (")" if max_open else "]")
        raise InvalidArgumentError(f"{name} must be in {lo}, {hi}, got {name}={describe(value)}")
    return out


def check_ratio(ratio: Any, name: str = "ratio") -> float:
    """Return ``ratio`` as a float in (0, 1], or raise."""
    return check_float(ratio, name, minimum=0.0, min_open=True, maximum=1.0)


def check_nonnegative_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite float >= 0, or raise."""
    return check_float(value, name, minimum=0.0)


def check_choice(value: Any, name: str, allowed: Iterable[Any]) -> Any:
    """Return ``value`` when it is one of ``allowed``, or raise naming the choices."""
    options = list(allowed)
    try:  # an array compares elementwise, an unhashable value may refuse to compare
        found = any(value is o or bool(value == o) for o in options)
    except (TypeError, ValueError):
        found = False
    if not found:
        raise InvalidArgumentError(f"{name} must be one of {options}, got {name}={describe(value)}")
    return value


def check_path(value: Any, name: str) -> Path:
    """Return ``value`` (a ``str`` or ``os.PathLike`` naming a text path without NUL bytes) as a
    Path, or raise."""
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidArgumentError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or "\0" in text or not text:
        raise InvalidArgumentError(f"{name} must be a non-empty text path without NUL bytes, got {describe(text)}")
    return Path(text)


def check_sample_index(i: Any, n: int, where: str) -> int:
    """Sample index ``i`` of the file ``where`` of ``n`` samples as an int in [0, n) (negative
    ones counted from the end): InvalidArgumentError for a non-integer or a bool (True is no
    sample number), IndexError out of range."""
    if isinstance(i, bool):
        raise InvalidArgumentError(f"sample index must be an integer, got the bool {i!r}")
    try:
        j = operator.index(i)
    except TypeError:
        raise InvalidArgumentError(f"sample index must be an integer, got {type(i).__name__}") from None
    if j < 0:
        j += n
    if not 0 <= j < n:
        raise IndexError(f"sample index {j} out of range for {n} samples in {where}")
    return j


def check_sample_indices(indices: Any, n: int, where: str) -> np.ndarray:
    """Many :func:`check_sample_index` at once, as int64 [B]: a 1-D integer array (checked before it
    is cast: an unsigned index of 2**63 or more is out of range, not wrapped to a negative one)
    or any iterable of integers. A boolean array is an InvalidArgumentError (a mask, not
    sample numbers: ``np.flatnonzero(mask)`` gives those)."""
    if isinstance(indices, list) and indices and not any(isinstance(i, bool) for i in indices):
        try:  # a list of ints (a sampler's batch): one vectorised check
            as_array = np.asarray(indices)
        except (ValueError, TypeError):  # ragged: the element loop below names what it found
            as_array = np.empty((0, 0))
        if as_array.ndim == 1 and as_array.dtype.kind in "iu":
            indices = as_array
    if isinstance(indices, np.ndarray) and indices.dtype.kind == "b":
        raise InvalidArgumentError(f"indices must be sample indices, got a boolean array of shape "
                                   f"{indices.shape} (for a mask pass np.flatnonzero(mask))")
    if isinstance(indices, np.ndarray) and indices.dtype.kind in "iu" and indices.ndim == 1:
        if indices.size and indices.dtype.kind == "u" and int(indices.max()) >= n:
            bad = int(indices[indices >= n][0])
            raise IndexError(f"sample index {bad} out of range for {n} samples in {where}")
        idx = indices.astype(np.int64)
        if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
            bad = int(idx[(idx < -n) | (idx >= n)][0])
            raise IndexError(f"sample index {bad} out of range for {n} samples in {where}")
        return np.where(idx < 0, idx + n, idx)
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise InvalidArgumentError(f"indices must be a sequence of sample indices, got "
                                   f"{type(indices).__name__}")
    if isinstance(indices, np.ndarray):
        indices = indices.reshape(-1).tolist()
    return np.array([check_sample_index(i, n, where) for i in indices], dtype=np.int64)
