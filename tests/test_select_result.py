"""Selection: validation, JSON round trip, nested class-balanced prefixes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.errors import InvalidArgumentError
from dcqformat.select import Selection, interleave, random_select, take_fraction


def _selection(labels: np.ndarray, ranking: np.ndarray) -> Selection:
    return Selection.from_ranking(
        method="test", params={"a": 1}, seed=3, ranking=ranking, labels=labels, model_identity="m"
    )


def test_from_ranking_fills_selected_and_counts() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    sel = _selection(labels, np.array([4, 0, 2]))
    assert sel.selected.tolist() == [0, 2, 4]
    assert sel.per_class_counts == {0: 1, 1: 2, 2: 0}
    assert sel.size == 3
    assert sel.ranking.dtype == np.int64 and sel.selected.dtype == np.int64
    with pytest.raises(ValueError):
        sel.ranking[0] = 1  # read-only


def test_json_round_trip() -> None:
    labels = np.repeat(np.arange(4), 25)
    sel = random_select(labels, 0.3, seed=7).with_model_identity("resnet18@abc123")
    text = sel.to_json()
    back = Selection.from_json(text, sel.ranking)
    assert back == sel
    assert back.per_class_counts == sel.per_class_counts
    assert all(isinstance(k, int) for k in back.per_class_counts)
    with pytest.raises(InvalidArgumentError, match="size"):
        Selection.from_json(text, sel.ranking[:-1])


def test_selection_rejects_inconsistent_fields() -> None:
    with pytest.raises(InvalidArgumentError, match="selected"):
        Selection("m", {}, 0, np.array([1, 2]), np.array([1, 3]), {0: 2})
    with pytest.raises(InvalidArgumentError, match="repeat"):
        Selection("m", {}, 0, np.array([1, 1]), np.array([1, 1]), {0: 2})
    with pytest.raises(InvalidArgumentError, match="per_class_counts"):
        Selection("m", {}, 0, np.array([1, 2]), np.array([1, 2]), {0: 3})
    with pytest.raises(InvalidArgumentError, match="JSON"):
        Selection("m", {"x": object()}, 0, np.array([1]), np.array([1]), {0: 1})


def test_interleave_equal_classes_is_round_robin() -> None:
    orders = {0: np.array([10, 11, 12]), 1: np.array([20, 21, 22]), 2: np.array([30, 31, 32])}
    assert interleave(orders).tolist() == [10, 20, 30, 11, 21, 31, 12, 22, 32]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=6))
def test_interleave_prefixes_are_nested_and_proportional(sizes: list[int]) -> None:
    orders = {}
    start = 0
    for c, m in enumerate(sizes):
        orders[c] = np.arange(start, start + m)
        start += m
    ranking = interleave(orders)
    total = sum(sizes)
    assert sorted(ranking.tolist()) == list(range(total))
    owner = np.concatenate([np.full(m, c) for c, m in enumerate(sizes)])
    counts = np.zeros(len(sizes), dtype=int)
    for length, item in enumerate(ranking.tolist(), start=1):
        c = int(owner[item])
        # each class contributes a prefix of its own order
        assert item == orders[c][counts[c]]
        counts[c] += 1
        share = length * np.array(sizes) / total
        # Sainte-Lague bound: |count - share| <= 1/2 + (C/2) * m_c / m  (< 1 + C/2)
        assert np.all(
            np.abs(counts - share) <= 0.5 + 0.5 * len(sizes) * np.array(sizes) / total + 1e-9
        )


def test_take_fraction_nested_and_class_balanced() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=1000)
    sel = random_select(labels, 0.4, seed=1)
    previous: set[int] = set()
    for f in (0.1, 0.25, 0.5, 0.75, 1.0):
        part = take_fraction(sel, labels, f)
        assert part.shape[0] == int(np.floor(f * sel.size + 0.5))
        assert previous <= set(part.tolist())
        previous = set(part.tolist())
        for c, n_c in sel.per_class_counts.items():
            got = int(np.sum(labels[part] == c))
            assert abs(got - f * n_c) <= 1.5
    assert np.array_equal(take_fraction(sel, labels, 1.0), sel.selected)
    # for rankings made by interleave, take_fraction is a plain prefix
    assert np.array_equal(take_fraction(sel, labels, 0.5), np.sort(sel.ranking[: sel.size // 2]))


def test_take_fraction_rejects_bad_arguments() -> None:
    labels = np.repeat(np.arange(3), 10)
    sel = random_select(labels, 0.5)
    with pytest.raises(InvalidArgumentError, match=r"fraction.*1\.5"):
        take_fraction(sel, labels, 1.5)
    with pytest.raises(InvalidArgumentError, match="fraction=0"):
        take_fraction(sel, labels, 0)
    with pytest.raises(InvalidArgumentError, match="labels has 5 entries"):
        take_fraction(sel, labels[:5], 0.5)
