"""Easy-first pruning by EL2N score (as used by PCA, Xiao et al. 2025).

``el2n_scores``: ``|| softmax(logits) - onehot(y) ||_2`` per sample (computed from logits taken
early in training; averaging over several seeds/epochs is the caller's choice).
``el2n_select``: keep, per class, the samples with the *lowest* scores (easiest first), an equal
number per class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dcqformat.errors import InvalidArgumentError
from dcqformat.select._validate import check_labels, check_ratio, to_numpy
from dcqformat.select.result import Selection, interleave

__all__ = ["el2n_scores", "el2n_select", "equal_allocation"]


def el2n_scores(logits: Any, labels: Any) -> np.ndarray:
    """EL2N scores ``||softmax(logits) - onehot(labels)||_2``, float64, one per row.

    ``logits``: ``(N, C)`` array or tensor; ``labels``: ``N`` class ids in ``[0, C)``.
    The softmax is computed in float64 with the row maximum subtracted.
    """
    z = to_numpy(logits)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 1:
        raise InvalidArgumentError(f"logits must be 2-D (samples x classes), got shape {z.shape}")
    if z.dtype.kind not in "fiu" or z.dtype.kind == "b":
        raise InvalidArgumentError(f"logits must be numeric, got dtype {z.dtype}")
    z = z.astype(np.float64)
    if not np.all(np.isfinite(z)):
        raise InvalidArgumentError("logits must be finite, got NaN or infinity")
    y = check_labels(labels, z.shape[0], n_name="logits")
    if y.size and int(y.max()) >= z.shape[1]:
        bad = int(np.flatnonzero(y >= z.shape[1])[0])
        raise InvalidArgumentError(
            f"labels must be < the number of classes {z.shape[1]}, got labels[{bad}]={int(y[bad])}"
        )
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(z.shape[0]), y] -= 1.0
    return np.sqrt(np.einsum("ij,ij->i", p, p))


def equal_allocation(class_sizes: dict[int, int], total: int) -> dict[int, int]:
    """Share ``total`` equally between classes, capped by class size, leftovers redistributed.

    Water-filling: the largest level ``L`` with ``sum_c min(M_c, L) <= total``; each class gets
    ``min(M_c, L)``; the remainder (fewer than the number of classes above the level) goes one
    each to the classes with ``M_c > L`` in increasing class id.
    """
    total = min(total, sum(class_sizes.values()))
    lo, hi = 0, max(class_sizes.values(), default=0)
    while lo < hi:  # largest L with sum(min(M, L)) <= total
        mid = (lo + hi + 1) // 2
        if sum(min(m, mid) for m in class_sizes.values()) <= total:
            lo = mid
        else:
            hi = mid - 1
    alloc = {c: min(m, lo) for c, m in class_sizes.items()}
    rest = total - sum(alloc.values())
    for c in sorted(class_sizes):
        if rest == 0:
            break
        if class_sizes[c] > alloc[c]:
            alloc[c] += 1
            rest -= 1
    return alloc


def el2n_select(
    scores: Any,
    labels: Any,
    ratio: float,
    *,
    model_identity: str | None = None,
) -> Selection:
    """Keep ``round_half_up(ratio * N)`` samples, an equal count per class, lowest EL2N first.

    Per class the order is ascending score (ties to the lower index); classes smaller than their
    equal share give all their samples and the leftover goes to the others
    (:func:`equal_allocation`). Deterministic (``seed=None``).
    """
    rho = check_ratio(ratio)
    s = to_numpy(scores)
    if s.ndim != 1:
        raise InvalidArgumentError(f"scores must be 1-D, got scores with shape {s.shape}")
    if s.dtype.kind not in "fiu" or s.dtype.kind == "b":
        raise InvalidArgumentError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise InvalidArgumentError("scores must be finite, got NaN or infinity")
    lab = check_labels(labels, s.shape[0], n_name="scores")
    if lab.size == 0:
        raise InvalidArgumentError("scores must hold at least one sample")
    classes, sizes = np.unique(lab, return_counts=True)
    total = max(1, math.floor(rho * lab.shape[0] + 0.5))
    alloc = equal_allocation(dict(zip(classes.tolist(), sizes.tolist(), strict=True)), total)
    orders: dict[int, np.ndarray] = {}
    for c, n_c in alloc.items():
        idx = np.flatnonzero(lab == c)
        local = np.argsort(s[idx], kind="stable")[:n_c]
        orders[int(c)] = idx[local]
    return Selection.from_ranking(
        method="el2n",
        params={
            "ratio": rho,
            "order": "easy-first (lowest EL2N)",
            "allocation": "equal per class, capped, leftovers to larger classes by class id",
            "total": int(sum(alloc.values())),
        },
        seed=None,
        ranking=interleave(orders),
        labels=lab,
        model_identity=model_identity,
    )
