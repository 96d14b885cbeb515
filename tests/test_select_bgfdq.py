"""BGFDQ neighbour-aware selection: determinism, budgets, spread, refill."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcqformat.select import bgfdq_select, coverage, random_select, redundancy
from dcqformat.select.bgfdq import neighbour_aware_order, removal_probabilities
from dcqformat.select.knn import knn_blockwise


def _planted(seed: int, d: int = 2, n_clusters: int = 40, spread: float = 0.2) -> np.ndarray:
    """Gaussian blobs of unequal sizes (5..80 points) around random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, d)) * 4
    sizes = rng.integers(5, 80, n_clusters)
    return np.concatenate(
        [c + spread * rng.normal(size=(s, d)) for c, s in zip(centres, sizes, strict=True)]
    ).astype(np.float32)


def test_deterministic_per_seed_and_seed_matters() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    a = bgfdq_select(x, y, 0.2, seed=5, device="cpu")
    b = bgfdq_select(torch.from_numpy(x), torch.from_numpy(y), 0.2, seed=5, device="cpu")
    c = bgfdq_select(x, y, 0.2, seed=6, device="cpu")
    assert a == b
    assert not np.array_equal(a.selected, c.selected)
    assert a.method == "bgfdq" and a.seed == 5
    assert a.params["k"] == 20 and a.params["alpha"] == 1.0 and a.params["ratio"] == 0.2


@pytest.mark.parametrize("ratio", [0.05, 0.2, 0.5, 1.0])
def test_exact_per_class_budgets(ratio: float) -> None:
    rng = np.random.default_rng(1)
    y = np.concatenate([np.full(n, c) for c, n in enumerate([3, 50, 137, 200])])
    x = rng.normal(size=(y.shape[0], 5))
    sel = bgfdq_select(x, y, ratio, seed=0, device="cpu", block_size=64)
    for c, n in enumerate([3, 50, 137, 200]):
        expected = min(n, max(1, int(np.floor(ratio * n + 0.5))))
        assert sel.per_class_counts[c] == expected
        assert int(np.sum(y[sel.selected] == c)) == expected
    assert sel.size == len(np.unique(sel.ranking))


def test_block_size_does_not_change_the_result() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 6))  # float64: exact enough that tiling cannot reorder neighbours
    y = np.zeros(300, dtype=int)
    a = bgfdq_select(x, y, 0.3, seed=1, device="cpu", block_size=4096)
    b = bgfdq_select(x, y, 0.3, seed=1, device="cpu", block_size=17)
    assert a == b


def test_spreads_out_better_than_random_on_planted_clusters() -> None:
    r_b, r_r, g_b, g_r = [], [], [], []
    for seed in range(3):
        x = _planted(seed)
        y = np.zeros(x.shape[0], dtype=int)
        b = bgfdq_select(x, y, 0.1, seed=seed, device="cpu")
        r = random_select(y, 0.1, seed=seed)
        assert b.size == r.size
        r_b.append(coverage(x, b))
        r_r.append(coverage(x, r))
        g_b.append(redundancy(x, b))
        g_r.append(redundancy(x, r))
    # measured: R 0.16 vs 0.19, Gamma 0.27 vs 0.21 (mean of 5 seeds)
    assert np.mean(r_b) < 0.92 * np.mean(r_r)
    assert np.mean(g_b) > 1.1 * np.mean(g_r)


def test_refill_when_pool_empties() -> None:
    # alpha=0 removes all K neighbours at every pick, so the pool empties long before 50 %.
    x = _planted(3)
    y = np.zeros(x.shape[0], dtype=int)
    sel = bgfdq_select(x, y, 0.5, alpha=0.0, k=10, seed=0, device="cpu")
    assert sel.params["refills_per_class"]["0"] >= 1
    assert sel.per_class_counts[0] == int(np.floor(0.5 * x.shape[0] + 0.5))
    assert sel == bgfdq_select(x, y, 0.5, alpha=0.0, k=10, seed=0, device="cpu")
    # the refill's distance pass is chunked by block_size; chunking does not change the result
    x64 = x.astype(np.float64)
    big = bgfdq_select(x64, y, 0.5, alpha=0.0, k=10, seed=0, device="cpu")
    small = bgfdq_select(x64, y, 0.5, alpha=0.0, k=10, seed=0, device="cpu", block_size=64)
    assert big == small


def test_loop_removes_neighbours_with_probability_one_when_alpha_zero() -> None:
    # On a line, with K=2 and p_k = 1, each pick removes both adjacent points.
    x = torch.arange(30, dtype=torch.float64)[:, None]
    d, nbr = knn_blockwise(x, 2, device="cpu")
    order, refills = neighbour_aware_order(
        nbr.numpy(), d.numpy(), 8, 0.3, alpha=0.0, rng=np.random.default_rng(0), features=x
    )
    assert refills == 0  # each pick pools out at most 3 of 30 points; 8 picks never empty it
    kept = np.sort(order)
    assert kept.shape[0] == 8
    # a kept point's neighbours left the pool with it, so no two kept points are adjacent
    assert int(np.diff(kept).min()) >= 2
    np.testing.assert_allclose(removal_probabilities(0.2, 1.0, 3), np.exp(-0.2 * np.arange(1, 4)))


def test_tiny_classes() -> None:
    x = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    y = np.array([0, 1, 1])
    sel = bgfdq_select(x, y, 0.5, device="cpu")
    assert sel.per_class_counts == {0: 1, 1: 1}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 16))  # float64: neighbour lists agree across devices
    y = rng.integers(0, 2, 500)
    cpu = bgfdq_select(x, y, 0.2, seed=1, device="cpu")
    gpu = bgfdq_select(x, y, 0.2, seed=1, device="cuda")
    assert cpu == gpu
