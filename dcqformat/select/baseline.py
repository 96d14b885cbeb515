"""The random baseline: stratified uniform sampling per class."""

from __future__ import annotations

from typing import Any

import numpy as np

from dcqformat.errors import InvalidArgumentError
from dcqformat.select._validate import check_labels, check_ratio, check_seed, class_budgets
from dcqformat.select.result import Selection, interleave

__all__ = ["random_select"]


def random_select(labels: Any, ratio: float, *, seed: int = 0) -> Selection:
    """Keep ``round_half_up(ratio * M_c)`` (at least 1) uniformly random samples of every class.

    Each class draws a permutation from ``default_rng(SeedSequence([seed, class_id]))``; its
    prefix is the class's order, so smaller ratios give nested subsets for the same seed.
    """
    rho = check_ratio(ratio)
    seed = check_seed(seed)
    lab = check_labels(labels)
    if lab.size == 0:
        raise InvalidArgumentError("labels must hold at least one sample, got 0")
    orders: dict[int, np.ndarray] = {}
    for c, budget in class_budgets(lab, rho).items():
        idx = np.flatnonzero(lab == c)
        rng = np.random.default_rng(np.random.SeedSequence([seed, c]))
        orders[c] = idx[rng.permutation(idx.shape[0])[:budget]]
    return Selection.from_ranking(
        method="random",
        params={"ratio": rho, "budget_rule": "per class min(M_c, max(1, floor(ratio*M_c+0.5)))"},
        seed=seed,
        ranking=interleave(orders),
        labels=lab,
    )
