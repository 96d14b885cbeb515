"""DCQDataset over files with patch masks: stored fill (default), fill="none" with the mask,
a callable reconstructor, the batched path and palette transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError
from dcqformat.format import masks as M
from dcqformat.torch.dataset import DCQDataset

SIZES = [(8, 8)] * 5 + [(5, 6), (9, 4)]


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mds") / "m.dcq"
    rng = np.random.default_rng(3)
    with DCQWriter(path, 2, 3, ["a", "b"], patch_size=4, payload_encoding="zstd") as w:
        w.set_palettes(rng.integers(0, 256, (2, 4, 3), dtype=np.uint8))
        for j, (h, ww) in enumerate(SIZES):
            keep = rng.random(M.grid_shape(h, ww, 4)) < 0.5
            keep.flat[0], keep.flat[-1] = True, False  # some of each in every sample
            w.add_sample(rng.integers(0, 4, (h, ww)).astype(np.uint8), j % 2, j % 2, keep_mask=keep)
    return path


def test_default_fill_is_the_stored_colour(masked: Path) -> None:
    f = DCQFile(masked)
    ds = DCQDataset(masked)
    assert ds.fill_mode == "stored"
    for i in range(len(ds)):
        img, label = ds[i]
        assert np.array_equal(img.numpy(), f.decode(i, "chw")) and label == i % 2
    batch = ds.__getitems__(list(range(5)))  # same-size samples: one stacked buffer
    assert batch.stacked is not None
    assert np.array_equal(batch.stacked[0].numpy(), np.stack([f.decode(i, "chw") for i in range(5)]))


def test_fill_none_returns_zeros_and_the_mask(masked: Path) -> None:
    f = DCQFile(masked)
    ds = DCQDataset(masked, fill="none")
    for i in range(len(ds)):
        img, mask, label = ds[i]
        pm = f.pixel_mask(i)
        assert mask.dtype == torch.bool and np.array_equal(mask.numpy(), pm)
        full = f.decode(i, "chw")
        assert (img.numpy()[:, ~pm] == 0).all() and np.array_equal(img.numpy()[:, pm], full[:, pm])
        assert (~pm).any()
    loader = DataLoader(ds, batch_size=5, shuffle=False)
    images, masks, labels = next(iter(loader))
    assert images.shape == (5, 3, 8, 8) and masks.shape == (5, 8, 8) and labels.tolist() == [0, 1, 0, 1, 0]
    hwc = DCQDataset(masked, fill="none", output="numpy")
    img, mask, _ = hwc[5]
    assert isinstance(mask, np.ndarray) and img.shape == (5, 6, 3) and (img[~mask] == 0).all()


def test_callable_fill_gets_the_stored_image_and_mask(masked: Path) -> None:
    seen: list[Any] = []

    def reconstruct(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        seen.append((image.clone(), mask))
        out = image.clone()
        out[:, ~mask] = 255
        return out

    f = DCQFile(masked)
    ds = DCQDataset(masked, fill=reconstruct)
    assert ds.fill_mode == "callable"
    items = ds.__getitems__([0, 6])
    for (img, label), i, (given, mask) in zip(items, [0, 6], seen, strict=True):
        assert np.array_equal(given.numpy(), f.decode(i, "chw"))
        assert (img.numpy()[:, ~mask.numpy()] == 255).all() and label == i % 2
    with pytest.raises(InvalidArgumentError, match="fill"):
        DCQDataset(masked, fill="mae")


def test_palette_transform_on_a_masked_file(masked: Path) -> None:
    f = DCQFile(masked)

    def invert(palette: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        assert int(counts.sum()) == int(f.pixel_mask(6).sum())  # histogram of the stored pixels
        return 255 - palette

    invert.needs_counts = True  # type: ignore[attr-defined]
    ds = DCQDataset(masked, palette_transform=invert)
    img, _ = ds[6]
    assert np.array_equal(img.numpy(), 255 - f.decode(6, "chw"))


def test_unmasked_file_gives_an_all_true_mask(tmp_path: Path) -> None:
    with DCQWriter(tmp_path / "p.dcq", 1, 1, ["a"]) as w:
        w.set_palettes(np.array([[[0], [255]]], np.uint8))
        w.add_sample(np.eye(3, dtype=np.uint8), 0, 0)
    img, mask, _ = DCQDataset(tmp_path / "p.dcq", fill="none")[0]
    assert bool(mask.all()) and mask.shape == (3, 3) and img[0].numpy().tolist() == (np.eye(3) * 255).tolist()
