"""Tests of nearest-colour assignment against the pure-NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import nearest_palette_index
from dcqformat.codecs.reference import nearest_ref
from dcqformat.errors import InvalidArgumentError

SETTINGS = settings(max_examples=80, deadline=None)


@SETTINGS
@given(
    n=st.integers(0, 300),
    n_colors=st.one_of(st.integers(1, 20), st.sampled_from([255, 256])),
    ch=st.integers(1, 4),
    coarse=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(n: int, n_colors: int, ch: int, coarse: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    if coarse:
        # a tiny integer grid: many exact ties and duplicate palette colours
        pixels = rng.integers(0, 4, size=(n, ch)).astype(np.float32)
        palette = rng.integers(0, 4, size=(n_colors, ch)).astype(np.float32)
    else:
        pixels = rng.normal(0, 50, size=(n, ch)).astype(np.float32)
        palette = rng.normal(0, 50, size=(n_colors, ch)).astype(np.float32)
    got = nearest_palette_index(pixels, palette)
    assert got.dtype == np.uint8 and got.shape == (n,)
    np.testing.assert_array_equal(got, nearest_ref(pixels, palette))
    if n:
        # it really is a nearest colour, and no lower index is equally near
        d = ((pixels[:, None, :].astype(np.float64) - palette[None].astype(np.float64)) ** 2).sum(
            -1
        )
        best = d[np.arange(n), got.astype(np.int64)]
        assert np.all(best <= d.min(axis=1) + 1e-9 * (1 + d.min(axis=1)))


def test_ties_go_to_lowest_index() -> None:
    palette = np.array([[5, 5, 5], [0, 0, 0], [10, 0, 0], [0, 0, 0], [5, 5, 5]], dtype=np.float32)
    pixels = np.array(
        [
            [0, 0, 0],  # exact duplicates at 1 and 3 -> 1
            [5, 5, 5],  # duplicates at 0 and 4 -> 0
            [5, 0, 0],  # equidistant (25) from 1, 2, 3 (and 50 from 0) -> 1
            [7.5, 2.5, 2.5],  # equidistant from 0 and 2 (18.75) -> 0
        ],
        dtype=np.float32,
    )
    assert nearest_palette_index(pixels, palette).tolist() == [1, 0, 1, 0]
    assert nearest_ref(pixels, palette).tolist() == [1, 0, 1, 0]


def test_exact_palette_colours_map_to_themselves() -> None:
    rng = np.random.default_rng(7)
    palette = rng.permutation(256 * 3).reshape(256, 3).astype(np.float32)  # distinct colours
    idx = rng.integers(0, 256, size=1000)
    assert (nearest_palette_index(palette[idx], palette) == idx).all()


def test_single_colour_palette_and_other_dtypes() -> None:
    pixels = np.arange(12, dtype=np.float64).reshape(4, 3)
    assert nearest_palette_index(pixels, np.zeros((1, 3))).tolist() == [0, 0, 0, 0]
    rgb = np.array([[0, 0, 0], [250, 250, 250]], dtype=np.uint8)
    pal = np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8)
    assert nearest_palette_index(rgb, pal).tolist() == [1, 0]


@pytest.mark.parametrize(
    ("pixels", "palette"),
    [
        (np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)),  # channel mismatch
        (np.zeros((4, 3), np.float32), np.zeros((0, 3), np.float32)),  # no colours
        (np.zeros((4, 3), np.float32), np.zeros((257, 3), np.float32)),  # too many colours
        (np.zeros(12, np.float32), np.zeros((4, 3), np.float32)),  # 1-D pixels
        (np.zeros((4, 3), np.float32), np.zeros(3, np.float32)),  # 1-D palette
        (np.array([[np.nan, 0, 0]], np.float32), np.zeros((4, 3), np.float32)),
        (np.zeros((1, 3), np.float32), np.array([[np.inf, 0, 0]], np.float32)),
        (np.array([[1e300, 0, 0]]), np.zeros((4, 3), np.float32)),  # overflows float32
        (np.zeros((4, 3), dtype=complex), np.zeros((4, 3), np.float32)),
        (np.array([["a", "b", "c"]]), np.zeros((4, 3), np.float32)),
        (np.zeros((4, 0), np.float32), np.zeros((4, 0), np.float32)),  # no channels
    ],
)
def test_errors(pixels: np.ndarray, palette: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError):
        nearest_palette_index(pixels, palette)
