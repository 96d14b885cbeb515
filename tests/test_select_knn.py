"""Blockwise top-k against a dense torch.cdist reference; coverage / redundancy metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dcqformat.device import resolve_device
from dcqformat.errors import InvalidArgumentError
from dcqformat.select import coverage, knn_blockwise, nearest_blockwise, redundancy


def _dense_knn(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(x, x).pow(2)
    d.fill_diagonal_(float("inf"))
    return torch.topk(d, k, dim=1, largest=False)


@settings(max_examples=40, deadline=None)
@given(
    data=st.integers(min_value=2, max_value=40).flatmap(
        lambda m: st.tuples(
            arrays(np.float64, (m, 3), elements=st.floats(-10, 10, width=32)),
            st.integers(min_value=1, max_value=8),
            st.integers(min_value=1, max_value=9),
        )
    )
)
def test_blockwise_topk_matches_dense_cdist(data: tuple[np.ndarray, int, int]) -> None:
    x, k, block = data
    m = x.shape[0]
    d, i = knn_blockwise(x, k, block_size=block, device="cpu")
    k_eff = min(k, m - 1)
    assert d.shape == (m, k_eff) and i.shape == (m, k_eff)
    ref_d, _ = _dense_knn(torch.from_numpy(x), k_eff)
    # same distances (ties may pick different, equally near, indices)
    torch.testing.assert_close(d, ref_d, rtol=1e-9, atol=1e-7)
    # the returned indices really are at the returned distances, never self, never repeated
    xt = torch.from_numpy(x)
    at = ((xt[:, None, :] - xt[i]) ** 2).sum(-1)
    torch.testing.assert_close(at, d, rtol=1e-9, atol=1e-7)
    assert not bool((i == torch.arange(m)[:, None]).any())
    assert all(len(set(row)) == k_eff for row in i.tolist())
    # ascending
    assert bool((d[:, 1:] >= d[:, :-1]).all())


def test_blockwise_float32_many_blocks_matches_dense() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(700, 32)).astype(np.float32)
    d, i = knn_blockwise(x, 20, block_size=64, device="cpu")
    ref_d, ref_i = _dense_knn(torch.from_numpy(x), 20)
    torch.testing.assert_close(d, ref_d, rtol=1e-4, atol=1e-3)
    assert (i == ref_i).float().mean() > 0.99  # continuous data: ties essentially absent


def test_nearest_blockwise_and_exclusion() -> None:
    rng = np.random.default_rng(2)
    q = rng.normal(size=(50, 4))
    keys = rng.normal(size=(30, 4))
    d, i = nearest_blockwise(q, keys, block_size=7, device="cpu")
    full = ((q[:, None] - keys[None]) ** 2).sum(-1)
    np.testing.assert_allclose(d.numpy(), full.min(1), rtol=1e-9)
    np.testing.assert_array_equal(i.numpy(), full.argmin(1))
    d1, i1 = nearest_blockwise(keys[:1], keys[:1], exclude_same_index=True)
    assert np.isinf(d1.item()) and i1.item() == -1


def test_coverage_and_redundancy_by_hand() -> None:
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    # nearest selected of 0,1,3,7 with S={0,3}: 0,1,0,4 -> mean 1.25
    assert coverage(x, [0, 2]) == pytest.approx(1.25)
    # S={0,1,3}: 1, 1, 6 -> mean 8/3
    assert redundancy(x, [0, 1, 3]) == pytest.approx(8 / 3)
    mask = np.array([True, False, True, False])
    assert coverage(x, mask) == pytest.approx(1.25)
    with pytest.raises(InvalidArgumentError, match="at least 2"):
        redundancy(x, [1])
    with pytest.raises(InvalidArgumentError, match=r"\[0, 4\)"):
        coverage(x, [0, 9])


def test_device_resolution() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InvalidArgumentError, match="device"):
        resolve_device("tpu:7")
