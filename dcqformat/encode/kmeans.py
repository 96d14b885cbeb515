"""Seeded, weighted, batched k-means in torch (k-means++ initialisation, ``n_init`` restarts).

One routine serves the three k-means of the method: image clustering on shallow features
(one problem, N points), per-image palettes (a batch of B problems, one per image, padded to a
common point count with zero weights) and count-weighted cluster palettes.

Conventions:

- ``x`` is ``[B, P, D]`` float, ``weights`` ``[B, P]`` non-negative (zero = padding / ignore).
  :func:`kmeans` is the unbatched convenience wrapper (``[P, D]``).
- Initialisation is greedy k-means++ (as scikit-learn: ``2 + floor(ln k)`` candidates per step,
  keeping the one that lowers the weighted potential most), sampled with the caller's
  ``torch.Generator`` so results are reproducible for a given seed.
- Lloyd iterations use one-hot matrix products (deterministic on CPU and CUDA; no atomics).
  An empty cluster keeps its previous centre. Ties go to the lowest centre index.
- If a problem has fewer distinct weighted points than ``k`` the surplus centres duplicate
  existing ones and end with count 0.
- Of the ``n_init`` runs, each problem keeps the one with the lowest weighted inertia.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dcqformat.errors import InvalidArgumentError

__all__ = ["KMeansResult", "kmeans", "kmeans_batched", "sq_distances"]

# One-hot and distance temporaries are [B, P, k]; chunk the batch to keep them this small.
_MAX_TEMP_ELEMENTS = 1 << 24


@dataclass
class KMeansResult:
    """``centers`` ``[B, k, D]``, ``counts`` ``[B, k]`` (summed weights), ``labels`` ``[B, P]``,
    ``inertia`` ``[B]`` (weighted sum of squared distances). Unbatched results drop the B axis."""

    centers: torch.Tensor
    counts: torch.Tensor
    labels: torch.Tensor
    inertia: torch.Tensor


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``[B, P, k]`` between ``x [B, P, D]`` and ``c [B, k, D]``."""
    if x.shape[-1] <= 4:  # colours: exact differences, no cancellation
        d = torch.zeros(x.shape[0], x.shape[1], c.shape[1], dtype=x.dtype, device=x.device)
        for j in range(x.shape[-1]):
            t = x[..., j, None] - c[:, None, :, j]
            d.addcmul_(t, t)
        return d
    d = (x * x).sum(-1, keepdim=True) - 2.0 * (x @ c.transpose(1, 2)) + (c * c).sum(-1)[:, None, :]
    return d.clamp_(min=0.0)


def _weighted_choice(probs: torch.Tensor, generator: torch.Generator | None, n: int) -> torch.Tensor:
    """``n`` draws (with replacement) per row of ``probs [B, P]``; rows summing to 0 fall back
    to uniform over all points."""
    p = probs.clone()
    dead = p.sum(1) <= 0
    if bool(dead.any()):
        p[dead] = 1.0
    return torch.multinomial(p, n, replacement=True, generator=generator)


def _kmeanspp(
    x: torch.Tensor, w: torch.Tensor, k: int, generator: torch.Generator | None
) -> torch.Tensor:
    B, P, D = x.shape
    n_trials = 2 + int(math.log(k))
    ar = torch.arange(B, device=x.device)
    first = _weighted_choice(w, generator, 1)[:, 0]
    centers = torch.empty(B, k, D, dtype=x.dtype, device=x.device)
    centers[:, 0] = x[ar, first]
    closest = sq_distances(x, centers[:, :1])[..., 0]  # [B, P]
    for j in range(1, k):
        probs = w * closest
        # Rows whose weighted points are all already centres: draw by weight (duplicates).
        flat = probs.sum(1) <= 0
        if bool(flat.any()):
            probs = torch.where(flat[:, None], w, probs)
        cand = _weighted_choice(probs, generator, n_trials)  # [B, T]
        cand_pts = x[ar[:, None], cand]  # [B, T, D]
        d_cand = sq_distances(x, cand_pts)  # [B, P, T]
        new_closest = torch.minimum(closest[..., None], d_cand)  # [B, P, T]
        potential = (w[..., None] * new_closest).sum(1)  # [B, T]
        best = potential.argmin(1)  # first minimum on ties
        centers[:, j] = cand_pts[ar, best]
        closest = new_closest[ar, :, best]
    return centers


def _assign(
    x: torch.Tensor, w: torch.Tensor, centers: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    d = sq_distances(x, centers)
    mind, labels = d.min(-1)
    inertia = (w * mind).sum(1)
    return labels, mind, inertia


def _lloyd(
    x: torch.Tensor, w: torch.Tensor, centers: torch.Tensor, max_iter: int, tol: torch.Tensor
) -> torch.Tensor:
    k = centers.shape[1]
    wx = w[..., None] * x
    for _ in range(max_iter):
        labels, _, _ = _assign(x, w, centers)
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)  # [B, P, k]
        sums = onehot.transpose(1, 2) @ wx  # [B, k, D]
        counts = onehot.transpose(1, 2) @ w[..., None]  # [B, k, 1]
        new = torch.where(counts > 0, sums / counts.clamp(min=1e-30), centers)
        shift = ((new - centers) ** 2).sum(-1).max(-1).values  # [B]
        centers = new
        if bool((shift <= tol).all()):
            break
    return centers


def _kmeans_chunk(
    x: torch.Tensor,
    w: torch.Tensor,
    k: int,
    n_init: int,
    max_iter: int,
    tol: float,
    generator: torch.Generator | None,
) -> KMeansResult:
    wsum = w.sum(1, keepdim=True).clamp(min=1e-30)
    mean = (w[..., None] * x).sum(1, keepdim=True) / wsum[..., None]
    var = (w[..., None] * (x - mean) ** 2).sum((1, 2)) / wsum[:, 0]
    tol_abs = tol * var
    best: KMeansResult | None = None
    for _ in range(n_init):
        centers = _kmeanspp(x, w, k, generator)
        centers = _lloyd(x, w, centers, max_iter, tol_abs)
        labels, _, inertia = _assign(x, w, centers)
        onehot = torch.nn.functional.one_hot(labels, k).to(x.dtype)
        counts = (onehot.transpose(1, 2) @ w[..., None])[..., 0]
        run = KMeansResult(centers, counts, labels, inertia)
        if best is None:
            best = run
        else:
            better = run.inertia < best.inertia
            best = KMeansResult(
                torch.where(better[:, None, None], run.centers, best.centers),
                torch.where(better[:, None], run.counts, best.counts),
                torch.where(better[:, None], run.labels, best.labels),
                torch.where(better, run.inertia, best.inertia),
            )
    assert best is not None
    return best


def kmeans_batched(
    x: torch.Tensor,
    k: int,
    *,
    weights: torch.Tensor | None = None,
    n_init: int = 3,
    max_iter: int = 50,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> KMeansResult:
    """Solve B independent weighted k-means problems ``x [B, P, D]`` (see module docstring).

    ``tol`` is relative: a run stops when no centre moves more than ``tol`` times the data's
    (weighted) variance, squared units. Every problem must have positive total weight.
    """
    if x.ndim != 3:
        raise InvalidArgumentError(f"kmeans_batched expects x of shape [B, P, D], got {tuple(x.shape)}")
    if k < 1:
        raise InvalidArgumentError(f"k must be >= 1, got {k}")
    if n_init < 1:
        raise InvalidArgumentError(f"n_init must be >= 1, got {n_init}")
    B, P, _ = x.shape
    if weights is None:
        weights = torch.ones(B, P, dtype=x.dtype, device=x.device)
    else:
        if weights.shape != (B, P):
            raise InvalidArgumentError(f"weights must have shape {(B, P)}, got {tuple(weights.shape)}")
        weights = weights.to(x.dtype)
        if bool((weights < 0).any()):
            raise InvalidArgumentError("weights must be non-negative")
    if bool((weights.sum(1) <= 0).any()):
        raise InvalidArgumentError("every k-means problem needs a positive total weight")
    per_row = max(1, P * max(k, 2 + int(math.log(k))))
    step = max(1, _MAX_TEMP_ELEMENTS // per_row)
    parts = [
        _kmeans_chunk(x[i : i + step], weights[i : i + step], k, n_init, max_iter, tol, generator)
        for i in range(0, B, step)
    ]
    if len(parts) == 1:
        return parts[0]
    return KMeansResult(
        torch.cat([p.centers for p in parts]),
        torch.cat([p.counts for p in parts]),
        torch.cat([p.labels for p in parts]),
        torch.cat([p.inertia for p in parts]),
    )


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    weights: torch.Tensor | None = None,
    n_init: int = 3,
    max_iter: int = 100,
    tol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> KMeansResult:
    """Weighted k-means of ``x [P, D]``; result tensors without the batch axis."""
    if x.ndim != 2:
        raise InvalidArgumentError(f"kmeans expects x of shape [P, D], got {tuple(x.shape)}")
    r = kmeans_batched(
        x[None],
        k,
        weights=None if weights is None else weights[None],
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        generator=generator,
    )
    return KMeansResult(r.centers[0], r.counts[0], r.labels[0], r.inertia[0])
