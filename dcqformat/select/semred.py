"""Semantic-redundancy pruning (SemRed, Birodkar et al. 2019).

Per class, with budget ``n_c = round_half_up(ratio * M_c)`` (at least 1): agglomerative
clustering of the class's features under cosine distance with complete linkage
(``scipy.cluster.hierarchy.linkage``), cut to exactly ``n_c`` clusters by applying the first
``M_c - n_c`` merges of the dendrogram; from each cluster keep the member closest to the cluster
centroid (largest cosine similarity to the mean of the members' unit vectors; ties to the lower
index). Near-duplicates merge first, so they are the first to go.

Ranking (ours): the remaining merges of the dendrogram are replayed; each merge of two kept
clusters drops the representative of the smaller one (ties: the higher index). Reversing the
drop order gives a best-first order whose prefix of length ``L`` holds one representative per
cluster of the ``L``-cluster cut (the representatives are the ``n_c``-cut medoids, not recomputed).

Limits. Complete linkage needs the condensed distance matrix, ``8 * M(M-1)/2`` bytes, and scipy
copies it once more (about 0.54 GB at ``M = 8192``), and ``O(M^2)`` time. Classes larger than
``max_exact`` (default 8192) are first partitioned (ours): k-means on the unit vectors (cosine
~ Euclidean on the sphere), recursively, until every part has at most ``max_exact`` members; the
class budget is shared between parts in proportion to their sizes (largest remainder), and the
exact procedure runs in each part. Duplicates that k-means separates into different parts are
not merged; with near-duplicates at cosine distance far below the k-means cell size this is rare.
Rows with zero norm stay zero vectors; their "cosine distance" is taken as
``|u - v|^2 / 2`` of the normalised rows (0.5 to any unit vector).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import pdist

from dcqformat.select._validate import (
    check_features_numpy,
    check_int,
    check_labels,
    check_ratio,
    check_seed,
    class_budgets,
)
from dcqformat.select.result import Selection, interleave

__all__ = ["semred_select", "agglomerative_order"]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


def agglomerative_order(unit: np.ndarray, n_keep: int) -> np.ndarray:
    """Cut a complete-linkage cosine dendrogram of ``unit`` rows to ``n_keep`` clusters.

    Returns the kept local indices (one medoid per cluster), best first (see the module doc).
    """
    s = unit.shape[0]
    n_keep = max(1, min(int(n_keep), s))
    if s == 1:
        return np.zeros(1, dtype=np.int64)
    cond = pdist(unit, "sqeuclidean")
    cond *= 0.5  # = 1 - cos for unit rows
    np.clip(cond, 0.0, 2.0, out=cond)
    z = linkage(cond, method="complete")
    del cond
    left = z[:, 0].astype(np.int64)
    right = z[:, 1].astype(np.int64)
    n_cut = s - n_keep

    # Apply the first n_cut merges with union-find over leaves.
    parent = np.arange(s, dtype=np.int64)
    leaf_of = np.arange(2 * s - 1, dtype=np.int64)  # a leaf inside each cluster id
    for r in range(n_cut):
        a = _find(parent, int(leaf_of[left[r]]))
        b = _find(parent, int(leaf_of[right[r]]))
        parent[b] = a
        leaf_of[s + r] = a
    roots = np.array([_find(parent, i) for i in range(s)], dtype=np.int64)

    # Medoid per cluster: member with the largest dot product with the sum of members.
    uniq, lab = np.unique(roots, return_inverse=True)
    sums = np.zeros((uniq.shape[0], unit.shape[1]))
    np.add.at(sums, lab, unit)
    score = np.einsum("ij,ij->i", unit, sums[lab])
    idx = np.arange(s)
    best = np.lexsort((idx, -score, lab))  # by cluster, best score, lowest index
    first = np.ones(s, dtype=bool)
    first[1:] = lab[best][1:] != lab[best][:-1]
    medoid_of_root = dict(zip(uniq[lab[best][first]].tolist(), best[first].tolist(), strict=True))

    # Replay the remaining merges to rank the medoids.
    rep = np.full(2 * s - 1, -1, dtype=np.int64)
    size = np.ones(2 * s - 1, dtype=np.int64)
    size[s:] = z[:, 3].astype(np.int64)
    # The active cluster id of each root after n_cut merges.
    active = {int(r): int(r) for r in uniq.tolist()}
    for r in range(n_cut):
        active[_find(parent, int(leaf_of[s + r]))] = s + r
    for root, cid in active.items():
        rep[cid] = medoid_of_root[root]
    dropped: list[int] = []
    for r in range(n_cut, s - 1):
        a, b = int(left[r]), int(right[r])
        ra, rb = int(rep[a]), int(rep[b])
        if (size[a], -ra) >= (size[b], -rb):
            keep, drop = ra, rb
        else:
            keep, drop = rb, ra
        dropped.append(drop)
        rep[s + r] = keep
    final = int(rep[2 * s - 2]) if n_cut < s - 1 else int(next(iter(medoid_of_root.values())))
    order = np.array([final, *reversed(dropped)], dtype=np.int64)
    return order


def _largest_remainder(sizes: list[int], total: int) -> list[int]:
    total = min(total, sum(sizes))
    whole = sum(sizes)
    quotas = [total * s / whole for s in sizes]
    alloc = [min(s, math.floor(q)) for s, q in zip(sizes, quotas, strict=True)]
    rest = total - sum(alloc)
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - math.floor(quotas[i])), i))
    while rest > 0:
        for i in order:
            if rest == 0:
                break
            if alloc[i] < sizes[i]:
                alloc[i] += 1
                rest -= 1
    return alloc


def _partition(unit: np.ndarray, idx: np.ndarray, max_size: int, seed: int) -> list[np.ndarray]:
    """Split ``idx`` recursively with k-means until every part has at most ``max_size`` rows."""
    if idx.shape[0] <= max_size:
        return [idx]
    from sklearn.cluster import KMeans

    n_parts = max(2, math.ceil(2 * idx.shape[0] / max_size))
    km = KMeans(n_clusters=n_parts, n_init=1, max_iter=25, random_state=seed)
    assign = km.fit_predict(unit[idx])
    parts: list[np.ndarray] = []
    groups = [idx[assign == g] for g in range(n_parts)]
    groups = [g for g in groups if g.shape[0]]
    if len(groups) == 1:  # k-means could not split (identical rows): split by position
        return [idx[i : i + max_size] for i in range(0, idx.shape[0], max_size)]
    for g in groups:
        parts.extend(_partition(unit, g, max_size, seed + 1))
    return parts


def semred_select(
    features: Any,
    labels: Any,
    ratio: float,
    *,
    seed: int = 0,
    max_exact: int = 8192,
    model_identity: str | None = None,
) -> Selection:
    """SemRed: per class, complete-linkage cosine clustering to the budget, keep medoids.

    ``seed`` only matters for classes larger than ``max_exact`` (the k-means partition); the
    exact path is deterministic. Returns a :class:`Selection` with ``method="semred"``.
    """
    rho = check_ratio(ratio)
    seed = check_seed(seed)
    max_exact = check_int(max_exact, "max_exact", minimum=2)
    x = check_features_numpy(features)
    lab = check_labels(labels, x.shape[0])
    unit = _unit_rows(x)
    orders: dict[int, np.ndarray] = {}
    partitioned: dict[str, int] = {}
    for c, budget in class_budgets(lab, rho).items():
        idx = np.flatnonzero(lab == c)
        parts = _partition(unit, np.arange(idx.shape[0]), max_exact, seed)
        if len(parts) > 1:
            partitioned[str(c)] = len(parts)
        alloc = _largest_remainder([p.shape[0] for p in parts], budget)
        part_orders: dict[int, np.ndarray] = {}
        for j, (part, n_j) in enumerate(zip(parts, alloc, strict=True)):
            if n_j == 0:
                continue
            local = agglomerative_order(unit[idx[part]], n_j)
            part_orders[j] = part[local]
        orders[c] = idx[interleave(part_orders)]
    params = {
        "ratio": rho,
        "distance": "cosine",
        "linkage": "complete",
        "representative": "closest to centroid",
        "max_exact": max_exact,
        "budget_rule": "per class min(M_c, max(1, floor(ratio*M_c+0.5)))",
        "partitioned_classes": partitioned,
    }
    return Selection.from_ranking(
        method="semred",
        params=params,
        seed=seed,
        ranking=interleave(orders),
        labels=lab,
        model_identity=model_identity,
    )
