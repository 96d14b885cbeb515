"""Batched weighted k-means: determinism, weights, degenerate inputs."""

from __future__ import annotations

import pytest
import torch

from dcqformat.encode.kmeans import kmeans, kmeans_batched, sq_distances


def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    x = torch.cat([c + 0.3 * torch.randn(50, 3, generator=g) for c in centres])
    return x, centres


def test_recovers_separated_blobs() -> None:
    x, centres = _blobs()
    r = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(centres, r.centers).min(1)
    assert float(nearest.values.max()) < 0.2
    assert sorted(nearest.indices.tolist()) == [0, 1, 2, 3]
    assert sorted(r.counts.tolist()) == [50.0] * 4


def test_same_seed_same_result_different_seed_may_differ() -> None:
    x = torch.rand(300, 3)
    a = kmeans(x, 5, generator=torch.Generator().manual_seed(7))
    b = kmeans(x, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.centers, b.centers) and torch.equal(a.labels, b.labels)


def test_weights_equal_duplication() -> None:
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(40, 2, generator=g)
    w = torch.randint(1, 4, (40,), generator=g)
    dup = pts.repeat_interleave(w, dim=0)
    rw = kmeans(pts, 3, weights=w.float(), n_init=8, generator=torch.Generator().manual_seed(0))
    rd = kmeans(dup, 3, n_init=8, generator=torch.Generator().manual_seed(0))
    assert float(rw.inertia) == pytest.approx(float(rd.inertia), rel=1e-4)
    assert sorted(rw.counts.tolist()) == sorted(rd.counts.tolist())


def test_weighted_mean_is_the_centre() -> None:
    x = torch.tensor([[0.0], [1.0], [10.0]])
    r = kmeans(x, 1, weights=torch.tensor([3.0, 1.0, 0.0]))
    assert float(r.centers[0, 0]) == pytest.approx(0.25)
    assert float(r.counts[0]) == pytest.approx(4.0)


def test_zero_weight_points_never_become_centres() -> None:
    x = torch.tensor([[0.0], [0.1], [100.0], [200.0]])
    r = kmeans(x, 2, weights=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert float(r.centers.max()) < 1.0


def test_fewer_distinct_points_than_k() -> None:
    x = torch.tensor([[1.0, 2.0]] * 5 + [[3.0, 4.0]] * 5)
    r = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
    assert sorted(r.counts.tolist()) == [0.0, 0.0, 5.0, 5.0]
    assert float(r.inertia) == 0.0


def test_batched_padding_is_ignored() -> None:
    x, _ = _blobs(1)
    padded = torch.cat([x, torch.full((30, 3), 1e6)])[None]
    w = torch.cat([torch.ones(len(x)), torch.zeros(30)])[None]
    r = kmeans_batched(padded, 4, weights=w, generator=torch.Generator().manual_seed(0))
    assert float(r.centers.abs().max()) < 20
    assert float(r.counts.sum()) == len(x)


def test_batch_is_split_into_chunks_consistently(monkeypatch: pytest.MonkeyPatch) -> None:
    import dcqformat.encode.kmeans as km

    x = torch.rand(6, 50, 3)
    full = kmeans_batched(x, 3, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(km, "_MAX_TEMP_ELEMENTS", 50 * 3 * 2)  # two problems per chunk
    chunked = kmeans_batched(x, 3, generator=torch.Generator().manual_seed(0))
    assert chunked.centers.shape == full.centers.shape
    assert torch.allclose(chunked.counts.sum(1), torch.full((6,), 50.0))


def test_sq_distances_both_paths() -> None:
    for d in (3, 9):
        x = torch.rand(2, 20, d, dtype=torch.float64)
        c = torch.rand(2, 4, d, dtype=torch.float64)
        ref = ((x[:, :, None] - c[:, None]) ** 2).sum(-1)
        assert torch.allclose(sq_distances(x, c), ref, atol=1e-10)


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="shape"):
        kmeans(torch.rand(2, 3, 4), 2)
    with pytest.raises(ValueError, match="k must be"):
        kmeans(torch.rand(5, 2), 0)
    with pytest.raises(ValueError, match="non-negative"):
        kmeans(torch.rand(5, 2), 2, weights=-torch.ones(5))
    with pytest.raises(ValueError, match="positive total weight"):
        kmeans(torch.rand(5, 2), 2, weights=torch.zeros(5))
