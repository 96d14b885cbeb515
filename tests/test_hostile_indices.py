"""Sample indices that are not plain ints, found by a probe of ``decode_batch`` and the
dataset: unsigned indices of 2**63 and more were cast to negative ones (2**64 - 1 read the
last sample), booleans read samples 0 and 1 (a mask is no list of sample numbers), and
``fill_cache(batch=0)`` was a ValueError from range()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError
from dcqformat.torch import DCQDataset


@pytest.fixture()
def small(tmp_path: Path) -> Path:
    path = tmp_path / "s.dcq"
    with DCQWriter(path, bits=2, channels=1, classes=["a"], payload_encoding="ctx") as w:
        w.set_palettes(np.array([[[0], [85], [170], [255]]], np.uint8))
        for i in range(5):
            w.add_sample(np.full((3, 3), i % 4, np.uint8), 0, 0)
    return path


@pytest.mark.parametrize("big", [2**64 - 1, 2**63, 2**63 + 2])
def test_unsigned_indices_beyond_int64_are_out_of_range(small: Path, big: int) -> None:
    f, ds = DCQFile(small), DCQDataset(small)
    idx = np.array([0, big], np.uint64)
    with pytest.raises(IndexError, match=f"sample index {big} out of range"):
        f.decode_batch(idx)
    with pytest.raises(IndexError, match=f"sample index {big} out of range"):
        f.packed_batch([0, big])
    with pytest.raises(IndexError, match=f"sample index {big} out of range"):
        ds.__getitems__(idx)
    assert np.array_equal(f.decode_batch(np.array([4, 1], np.uint64)), f.decode_batch([4, -4]))


def test_booleans_are_not_sample_indices(small: Path) -> None:
    f, ds = DCQFile(small), DCQDataset(small)
    mask = np.array([True, False, True, False, False])
    for bad in (mask, [True, False], [1, True]):
        with pytest.raises(InvalidArgumentError, match="bool"):
            f.decode_batch(bad)
        with pytest.raises(InvalidArgumentError, match="bool"):
            ds.__getitems__(bad)
    with pytest.raises(InvalidArgumentError, match="bool"):
        f[True]
    with pytest.raises(InvalidArgumentError, match="bool"):
        ds[False]
    assert np.array_equal(f.decode_batch(np.flatnonzero(mask)), f.decode_batch([0, 2]))
    assert len(ds.__getitems__([4, 0, -1])) == 3  # plain ints still go the vectorised way


@pytest.mark.parametrize("batch", [0, -1, 1.5, None])
def test_fill_cache_batch_is_checked(small: Path, batch: object) -> None:
    with pytest.raises(InvalidArgumentError, match="batch must be"):
        DCQFile(small).fill_cache(batch=batch)  # type: ignore[arg-type]
    assert DCQFile(small).fill_cache(batch=2)[4][0].shape == (3, 3, 1)
