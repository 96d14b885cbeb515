"""Perceptual-hash de-duplication: the index is exact, grouping is order-independent,
conflicts are reported, arguments are checked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.errors import InvalidArgumentError
from dcqformat.select import dedup_groups, hamming_pairs, perceptual_hashes
from dcqformat.select.dedup import popcount64

U64 = st.integers(min_value=0, max_value=2**64 - 1)


def _brute_pairs(h: np.ndarray, t: int) -> set[tuple[int, int]]:
    d = popcount64(h[:, None] ^ h[None, :])
    a, b = np.nonzero(np.triu(d <= t, 1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


@settings(max_examples=80, deadline=None)
@given(
    base=st.lists(U64, min_size=1, max_size=30),
    flips=st.lists(
        st.tuples(st.integers(0, 29), st.sets(st.integers(0, 63), max_size=14)), max_size=30
    ),
    t=st.integers(min_value=0, max_value=20),
)
def test_multi_index_hashing_finds_exactly_the_brute_force_pairs(
    base: list[int], flips: list[tuple[int, set[int]]], t: int
) -> None:
    values = list(base)
    for src, bits in flips:  # planted near-duplicates with 0..14 flipped bits
        v = base[src % len(base)]
        for bit in bits:
            v ^= 1 << bit
        values.append(v)
    h = np.array(values, dtype=np.uint64)
    a, b = hamming_pairs(h, t)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == _brute_pairs(h, t)


def test_large_buckets_use_blocked_verification() -> None:
    rng = np.random.default_rng(0)
    # low 32 bits constant: with t=1 one chunk is one 200-member bucket
    h = (rng.integers(0, 2**32, 200, dtype=np.uint64) << np.uint64(32)) | np.uint64(12345)
    h[:50] = h[0] ^ (np.uint64(1) << rng.integers(32, 64, 50).astype(np.uint64))
    a, b = hamming_pairs(h, 3)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == _brute_pairs(h, 3)


def _random_dataset(seed: int):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 60, dtype=np.uint64) * np.uint64(2)
    src = rng.integers(0, 60, 90)
    noise = np.zeros(90, dtype=np.uint64)
    for j in range(90):
        for bit in rng.choice(64, rng.integers(0, 5), replace=False).tolist():
            noise[j] |= np.uint64(1) << np.uint64(bit)
    h = np.concatenate([base, base[src] ^ noise])
    labels = np.concatenate([np.arange(60) % 3, (src % 3)])
    return h, labels


def test_groups_are_order_independent() -> None:
    h, labels = _random_dataset(1)
    ref = dedup_groups(h, labels, 6)
    ref_groups = {tuple(g.tolist()) for g in ref.groups}
    rng = np.random.default_rng(2)
    for _ in range(5):
        perm = rng.permutation(h.shape[0])
        got = dedup_groups(h[perm], labels[perm], 6)
        mapped = {tuple(sorted(perm[g].tolist())) for g in got.groups}
        assert mapped == ref_groups
        assert got.keep.shape[0] == ref.keep.shape[0]
        assert len(got.conflicts) == len(ref.conflicts)
        # the kept medoids minimise the summed Hamming distance in their group either way
        for g in got.groups:
            if np.unique(labels[perm][g]).shape[0] > 1:
                continue
            kept = np.intersect1d(g, got.keep)
            assert kept.shape[0] == 1
            sums = popcount64(h[perm][g][:, None] ^ h[perm][g][None, :]).sum(1)
            assert sums[np.searchsorted(g, kept[0])] == sums.min()


def test_grouping_rule_connected_components_and_medoid() -> None:
    # chain 0-1-2 (each step 4 bits; ends 8 apart), threshold 5: one group, medoid is the middle
    a = 0
    b = 0b1111
    c = 0b11111111
    far = (2**64 - 1) ^ 0xFF
    h = np.array([a, b, c, far, far], dtype=np.uint64)
    r = dedup_groups(h, None, 5)
    assert [g.tolist() for g in r.groups] == [[0, 1, 2], [3, 4]]
    assert r.keep.tolist() == [1, 3]  # middle of the chain; tie between 3 and 4 -> lowest index
    assert r.removed.tolist() == [0, 2, 4]
    assert r.conflicts == []


def test_label_conflicts_are_reported_and_keep_one_per_label() -> None:
    h = np.array([7, 7, 7 ^ 1, 7, 1 << 40, 123456789], dtype=np.uint64)
    labels = np.array([0, 0, 1, 1, 2, 2])
    r = dedup_groups(h, labels, 2)
    assert [g.tolist() for g in r.conflicts] == [[0, 1, 2, 3]]
    # label 0 keeps 0 (ties with 1); label 1's members 2 and 3 are 1 bit apart -> tie -> 2
    assert r.keep.tolist() == [0, 2, 4, 5]
    sel = r.to_selection()
    assert sel.method == "dedup-phash" and sel.seed is None
    assert sel.per_class_counts == {0: 1, 1: 1, 2: 2}
    assert sel.params["n_conflicts"] == 1 and sel.params["threshold"] == 2


def test_threshold_zero_groups_exact_duplicates_only() -> None:
    h = np.array([1, 1, 3, 1], dtype=np.uint64)
    r = dedup_groups(h, np.zeros(4, dtype=int), 0)
    assert [g.tolist() for g in r.groups] == [[0, 1, 3]]
    assert r.keep.tolist() == [0, 2]


def test_dedup_argument_errors() -> None:
    h = np.array([1, 2, 3], dtype=np.uint64)
    with pytest.raises(InvalidArgumentError, match="threshold must be .*got threshold=64"):
        dedup_groups(h, None, 64)
    with pytest.raises(InvalidArgumentError, match="threshold=-1"):
        dedup_groups(h, None, -1)
    with pytest.raises(InvalidArgumentError, match="threshold must be an integer"):
        dedup_groups(h, None, 2.5)
    with pytest.raises(InvalidArgumentError, match="labels has 2 entries but hashes has 3"):
        dedup_groups(h, [0, 1], 3)
    with pytest.raises(InvalidArgumentError, match="method"):
        perceptual_hashes([], "md5")
    with pytest.raises(InvalidArgumentError, match="hash_size"):
        perceptual_hashes([], "phash", hash_size=9)
    with pytest.raises(InvalidArgumentError, match="PIL"):
        perceptual_hashes([np.zeros((4, 4))], "phash")
    with pytest.raises(InvalidArgumentError, match="non-negative"):
        dedup_groups(np.array([-1, 2]), None, 3)
