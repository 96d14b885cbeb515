"""SemRed: near-duplicates go first; exact budgets; medoids; the partitioned path."""

from __future__ import annotations

import numpy as np

from dcqformat.select import semred_select
from dcqformat.select.semred import agglomerative_order


def _with_planted_duplicates(seed: int, n: int = 120, n_dup: int = 30, d: int = 16):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, d))
    src = rng.choice(n, n_dup, replace=False)
    dups = base[src] * rng.uniform(0.5, 2.0, size=(n_dup, 1)) + 1e-4 * rng.normal(size=(n_dup, d))
    x = np.concatenate([base, dups])
    perm = rng.permutation(x.shape[0])
    x = x[perm]
    # pair id of every planted duplicate pair, in the shuffled order
    inv = np.argsort(perm)
    pairs = [(int(inv[s]), int(inv[n + j])) for j, s in enumerate(src.tolist())]
    return x, pairs


def test_removes_planted_near_duplicates_first() -> None:
    x, pairs = _with_planted_duplicates(0)
    m = x.shape[0]
    ratio = (m - len(pairs)) / m  # exactly the number of distinct points
    sel = semred_select(x, np.zeros(m, dtype=int), ratio)
    kept = set(sel.selected.tolist())
    assert sel.size == m - len(pairs)
    for a, b in pairs:
        assert (a in kept) != (b in kept), (a, b)  # exactly one of every pair survives
    dup_members = {i for p in pairs for i in p}
    assert set(range(m)) - dup_members <= kept  # every non-duplicate survives


def test_exact_budgets_and_determinism() -> None:
    rng = np.random.default_rng(1)
    sizes = [1, 7, 64, 129]
    y = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)])
    x = rng.normal(size=(y.shape[0], 10))
    for ratio in (0.1, 0.33, 1.0):
        sel = semred_select(x, y, ratio)
        for c, s in enumerate(sizes):
            assert sel.per_class_counts[c] == min(s, max(1, int(np.floor(ratio * s + 0.5))))
        assert sel == semred_select(x, y, ratio)
        assert sel.method == "semred" and sel.params["linkage"] == "complete"


def test_keeps_member_closest_to_centroid() -> None:
    # three tight, well separated groups; the member nearest each group's mean direction is kept
    rng = np.random.default_rng(2)
    centres = np.eye(3) * 10
    x = np.concatenate([c + rng.normal(scale=0.3, size=(9, 3)) for c in centres])
    order = agglomerative_order(x / np.linalg.norm(x, axis=1, keepdims=True), 3)
    assert sorted(order.tolist()) == sorted(set(order.tolist()))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    for g in range(3):
        members = np.arange(9 * g, 9 * g + 9)
        centroid = u[members].mean(0)
        best = int(members[np.argmax(u[members] @ centroid)])
        assert best in order.tolist()


def test_ranking_prefix_is_a_coarser_cut() -> None:
    # two far groups of 5 near-identical directions: a 2-prefix holds one of each
    rng = np.random.default_rng(3)
    a = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(5, 3))
    b = np.array([0.0, 0.0, 1.0]) + 0.01 * rng.normal(size=(5, 3))
    x = np.concatenate([a, b])
    sel = semred_select(x, np.zeros(10, dtype=int), 0.6)
    first_two = set(sel.ranking[:2].tolist())
    assert len(first_two & set(range(5))) == 1 and len(first_two & set(range(5, 10))) == 1


def test_partitioned_path_for_large_classes() -> None:
    x, pairs = _with_planted_duplicates(4, n=400, n_dup=40)
    m = x.shape[0]
    sel = semred_select(x, np.zeros(m, dtype=int), 0.5, max_exact=100, seed=0)
    assert sel.params["partitioned_classes"]["0"] >= 5
    assert sel.size == int(np.floor(0.5 * m + 0.5))
    assert sel == semred_select(x, np.zeros(m, dtype=int), 0.5, max_exact=100, seed=0)
    kept = set(sel.selected.tolist())
    both = sum((a in kept) and (b in kept) for a, b in pairs)
    assert both <= 2  # k-means rarely separates a near-duplicate pair
