"""Invalid arguments raise InvalidArgumentError naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

from dcqformat.errors import DcqError, InvalidArgumentError
from dcqformat.select import (
    bgfdq_select,
    coverage,
    el2n_scores,
    el2n_select,
    knn_blockwise,
    random_select,
    semred_select,
)

X = np.random.default_rng(0).normal(size=(20, 4))
Y = np.repeat([0, 1], 10)


def _all_ratio_takers():
    return [
        lambda r: bgfdq_select(X, Y, r, device="cpu"),
        lambda r: semred_select(X, Y, r),
        lambda r: el2n_select(np.arange(20.0), Y, r),
        lambda r: random_select(Y, r),
    ]


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.0000001, 2, float("nan"), float("inf")])
@pytest.mark.parametrize("which", range(4))
def test_ratio_out_of_range(which: int, bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match=r"ratio must be in \(0, 1\], got ratio="):
        _all_ratio_takers()[which](bad)


@pytest.mark.parametrize("bad", [True, "0.5", None])
def test_ratio_wrong_type(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="ratio must be a real number"):
        random_select(Y, bad)  # type: ignore[arg-type]


def test_mismatched_lengths() -> None:
    with pytest.raises(
        InvalidArgumentError, match="labels has 19 entries but features has 20 rows"
    ):
        bgfdq_select(X, Y[:19], 0.5, device="cpu")
    with pytest.raises(
        InvalidArgumentError, match="labels has 19 entries but features has 20 rows"
    ):
        semred_select(X, Y[:19], 0.5)
    with pytest.raises(InvalidArgumentError, match="labels has 19 entries but scores has 20 rows"):
        el2n_select(np.arange(20.0), Y[:19], 0.5)
    with pytest.raises(InvalidArgumentError, match="labels has 3 entries but logits has 2 rows"):
        el2n_scores(np.zeros((2, 3)), [0, 1, 2])


def test_other_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="k must be >= 1, got k=0"):
        bgfdq_select(X, Y, 0.5, k=0, device="cpu")
    with pytest.raises(InvalidArgumentError, match="alpha"):
        bgfdq_select(X, Y, 0.5, alpha=-1.0, device="cpu")
    with pytest.raises(InvalidArgumentError, match="seed must be >= 0, got seed=-3"):
        random_select(Y, 0.5, seed=-3)
    with pytest.raises(InvalidArgumentError, match="block_size must be >= 1, got block_size=0"):
        knn_blockwise(X, 3, block_size=0)
    with pytest.raises(InvalidArgumentError, match=r"labels\[0\]=-1"):
        random_select(np.array([-1, 0, 1]), 0.5)
    with pytest.raises(InvalidArgumentError, match="integer class ids"):
        random_select(np.array([0.5, 1.0]), 0.5)
    with pytest.raises(InvalidArgumentError, match="2-D"):
        bgfdq_select(np.zeros(5), np.zeros(5, dtype=int), 0.5, device="cpu")
    with pytest.raises(InvalidArgumentError, match="finite"):
        semred_select(np.array([[0.0, np.nan], [1.0, 1.0]]), [0, 0], 0.5)
    with pytest.raises(InvalidArgumentError, match="finite"):
        bgfdq_select(np.array([[0.0, np.inf], [1.0, 1.0]]), [0, 0], 0.5, device="cpu")
    with pytest.raises(InvalidArgumentError, match=r"labels must be < the number of classes 3"):
        el2n_scores(np.zeros((2, 3)), [0, 3])
    with pytest.raises(InvalidArgumentError, match="selected"):
        coverage(X, [])
    # every error is also a DcqError and a ValueError
    with pytest.raises(DcqError):
        random_select(Y, 0)
    with pytest.raises(ValueError):
        random_select(Y, 0)
