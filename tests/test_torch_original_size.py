"""DCQDataset(size="original") (issue #14): images back at their original size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError, PixelLimitError
from dcqformat.torch import DCQDataset


@pytest.fixture()
def scaled(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "s.dcq"
    with DCQWriter(path, bits=2, channels=3, classes=["a", "b"]) as w:
        w.set_palettes(rng.integers(0, 256, (2, 4, 3), dtype=np.uint8))
        for i, (hw, orig) in enumerate([((4, 5), (8, 10)), ((3, 3), None), ((2, 6), (5, 13))]):
            w.add_sample(rng.integers(0, 4, hw, dtype=np.uint8), i % 2, i % 2,
                         original_size=orig)
    return path


def test_original_size_bilinear_and_nearest(scaled: Path) -> None:
    f = DCQFile(scaled)
    stored = DCQDataset(scaled)
    bil = DCQDataset(scaled, size="original")
    near = DCQDataset(scaled, size="original", resize="nearest", output="numpy")
    assert [tuple(bil[i][0].shape) for i in range(3)] == [(3, 8, 10), (3, 3, 3), (3, 5, 13)]
    for i in range(3):
        x = torch.from_numpy(f.decode(i, "chw"))[None].float()
        h0, w0, _ = f.original_shape(i)
        want = F.interpolate(x, size=(h0, w0), mode="bilinear", align_corners=False)[0]
        assert torch.equal(bil[i][0], want.round().clamp(0, 255).to(torch.uint8))
        colours = {tuple(c) for c in f.palettes[f.clusters[i]]}
        assert {tuple(px) for px in near[i][0].reshape(-1, 3)} <= colours  # palette colours only
    assert torch.equal(stored[1][0], bil[1][0])  # stored at its original size: as decoded
    batch = bil.__getitems__([0, 2])  # the batched path gives the same images
    assert torch.equal(batch[0][0], bil[0][0]) and torch.equal(batch[1][0], bil[2][0])


def test_size_arguments_are_checked(scaled: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="size must be"):
        DCQDataset(scaled, size="big")
    with pytest.raises(InvalidArgumentError, match="resize must be"):
        DCQDataset(scaled, size="original", resize="cubic")
    with pytest.raises(InvalidArgumentError, match="packed"):
        DCQDataset(scaled, size="original", output="packed")


def test_convert_scale_records_the_original_size(tmp_path: Path) -> None:
    from test_encode_support import QUICK, make_folder

    from dcqformat.encode.pipeline import convert

    src = make_folder(tmp_path / "src", per_class=3)
    convert(src, tmp_path / "h.dcq", scale=0.5, threads=1, **QUICK)
    f = DCQFile(tmp_path / "h.dcq")
    assert f.version == (1, 3)
    for i in range(len(f)):
        h, w, _ = f.shape(i)
        h0, w0, _ = f.original_shape(i)
        assert (h, w) == (round(h0 / 2), round(w0 / 2)) and h0 == 32
    ds = DCQDataset(tmp_path / "h.dcq", size="original")
    assert tuple(ds[0][0].shape[1:]) == f.original_shape(0)[:2]


def test_original_size_bomb_is_refused_at_construction(tmp_path: Path) -> None:
    """A valid file whose 1x1 sample records an original size of 2**24 x 2**24 (spec §15
    allows it): size="original" would resize it to 2**48 pixels. It is a PixelLimitError at
    construction, naming the sample, under the file's max_pixels (the format's 2**28 without
    one); before, the item read failed inside torch's allocator (a RuntimeError), and a
    smaller bomb would have allocated tens of GB."""
    path = tmp_path / "bomb.dcq"
    with DCQWriter(path, bits=1, channels=1, classes=["a"]) as w:
        w.set_palettes(np.array([[[0], [255]]], np.uint8))
        w.add_sample(np.zeros((2, 2), np.uint8), 0, 0, original_size=(4, 4))
        w.add_sample(np.zeros((1, 1), np.uint8), 0, 0, original_size=(1 << 24, 1 << 24))
    DCQFile(path).verify()  # a valid file
    with pytest.raises(PixelLimitError, match="sample 1 has the original size 16777216x16777216"):
        DCQDataset(path, size="original")
    with pytest.raises(PixelLimitError, match="limit of 268435456"):
        DCQDataset(DCQFile(path, max_pixels=None), size="original")
    with pytest.raises(PixelLimitError, match="limit of 15"):
        DCQDataset(DCQFile(path, max_pixels=15), size="original")
    assert DCQDataset(path)[1][0].shape == (1, 1, 1)  # stored size: nothing to guard
