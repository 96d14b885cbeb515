"""EL2N scores and easy-first selection; the stratified random baseline."""

from __future__ import annotations

import numpy as np
import torch

from dcqformat.select import el2n_scores, el2n_select, random_select
from dcqformat.select.el2n import equal_allocation


def test_el2n_scores_match_definition() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 7)) * 3
    y = rng.integers(0, 7, 50)
    p = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    expected = np.linalg.norm(p - np.eye(7)[y], axis=1)
    np.testing.assert_allclose(el2n_scores(logits, y), expected, rtol=1e-12)
    np.testing.assert_allclose(
        el2n_scores(torch.from_numpy(logits).float(), y), expected, rtol=1e-5
    )
    # huge logits do not overflow
    s = el2n_scores(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    np.testing.assert_allclose(s, [0.0, np.sqrt(2.0)], atol=1e-12)


def test_el2n_select_easy_first_equal_per_class() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    scores = rng.random(200)
    sel = el2n_select(scores, y, 0.2)
    assert sel.size == 40 and set(sel.per_class_counts.values()) == {10}
    for c in range(4):
        idx = np.flatnonzero(y == c)
        lowest = idx[np.argsort(scores[idx], kind="stable")[:10]]
        assert set(lowest.tolist()) == set(sel.selected[y[sel.selected] == c].tolist())
    # ranking: per class ascending score, classes round-robin
    for c in range(4):
        in_rank = sel.ranking[y[sel.ranking] == c]
        assert np.all(np.diff(scores[in_rank]) >= 0)
    assert y[sel.ranking[:4]].tolist() == [0, 1, 2, 3]
    assert sel.seed is None and sel.method == "el2n"


def test_el2n_small_classes_give_leftovers_to_others() -> None:
    y = np.concatenate([np.zeros(3, int), np.ones(100, int), np.full(100, 2)])
    sel = el2n_select(np.arange(203.0), y, 0.3)  # total 61, equal share 20.33 -> class 0 has 3
    assert sel.size == 61
    assert sel.per_class_counts == {0: 3, 1: 29, 2: 29}
    assert equal_allocation({0: 3, 1: 100, 2: 100}, 60) == {0: 3, 1: 29, 2: 28}
    assert equal_allocation({0: 5, 1: 5}, 100) == {0: 5, 1: 5}


def test_random_select_stratified_nested_deterministic() -> None:
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    a = random_select(y, 0.2, seed=3)
    assert a == random_select(y, 0.2, seed=3)
    assert a.per_class_counts == {0: 2, 1: 4, 2: 6, 3: 8, 4: 10}
    b = random_select(y, 0.5, seed=3)
    assert set(a.selected.tolist()) <= set(b.selected.tolist())  # same seed: nested
    assert not np.array_equal(a.selected, random_select(y, 0.2, seed=4).selected)
