"""DCQDataset(combine=n) and CellCrop: canvases of one class, each image once per epoch where
the counts allow, deterministic per (seed, epoch), the right pixels (a cell equals
DCQFile.decode of its sample), DataLoader workers (fork, spawn, persistent), DCQSampler's
epoch, selections, shards, errors; crops that never leave their cell."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dcqformat import DcqError, DCQFile, DCQWriter
from dcqformat.torch import CellCrop, DCQDataset, DCQSampler
from dcqformat.torch.combine import CanvasPlan, most_common_size

CLASSES = ["ant", "bee", "cat"]


def write_labelled(path: Path, labels: list[int], *, sizes=((8, 8),), channels: int = 3,
                   seed: int = 0, selection: bool = False, encoding: str = "raw") -> Path:
    """Random 2-bit images with the given labels; sample i has size sizes[i % len(sizes)]."""
    rng = np.random.default_rng(seed)
    with DCQWriter(path, bits=2, channels=channels, classes=CLASSES, payload_encoding=encoding) as w:
        w.set_palettes(rng.integers(0, 256, (3, 4, channels), dtype=np.uint8))
        for i, y in enumerate(labels):
            h, wd = sizes[i % len(sizes)]
            w.add_sample(rng.integers(0, 4, (h, wd), dtype=np.uint8), cluster=i % 3, label=y)
        if selection:
            ranking = rng.permutation(len(labels))
            w.add_selection("core", ranking, np.sort(ranking[: len(labels) // 2]), {"method": "random"})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("combine")
    return {
        "even": write_labelled(d / "even.dcq", [0] * 8 + [1] * 12 + [2] * 4, seed=1),
        "uneven": write_labelled(d / "uneven.dcq", [0] * 9 + [1] * 2 + [2] * 6, seed=2,
                                 selection=True),
        "mixed": write_labelled(d / "mixed.dcq", [0, 1, 2] * 6, sizes=((8, 8), (8, 8), (5, 7)),
                                seed=3),
        "grey": write_labelled(d / "grey.dcq", [0, 1] * 8, channels=1, seed=4),
        "part0": write_labelled(d / "part-0.dcq", [0] * 5 + [1] * 3, seed=5),
        "part1": write_labelled(d / "part-1.dcq", [1] * 5 + [2] * 7, seed=6),
        "zstd": write_labelled(d / "zstd.dcq", [0, 1, 2, 2] * 5, seed=7, encoding="zstd"),
    }


def decodes(paths: list[Path], layout: str = "chw") -> tuple[list[np.ndarray], list[int]]:
    imgs, labels = [], []
    for p in paths:
        f = DCQFile(p)
        imgs += [f.decode(i, layout) for i in range(len(f))]
        labels += f.labels.tolist()
    return imgs, labels


def cells_of(canvas: np.ndarray, n: int) -> list[np.ndarray]:
    """The n² cells of a CHW canvas, row-major."""
    h, w = canvas.shape[1] // n, canvas.shape[2] // n
    return [canvas[:, r * h:(r + 1) * h, c * w:(c + 1) * w] for r in range(n) for c in range(n)]


# -- the plan --------------------------------------------------------------------------------
def test_divisible_counts_use_every_image_exactly_once(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["even"], combine=2)
    assert len(ds) == 2 + 3 + 1 and ds.num_samples == 24
    assert ds.targets == [0, 0, 1, 1, 1, 2]
    imgs, labels = decodes([files["even"]])
    for epoch in (0, 1, 7):
        ds.set_epoch(epoch)
        seen: list[int] = []
        for j in range(len(ds)):
            members = ds.canvas_members(j)
            assert {labels[m] for m in members} == {ds.targets[j]}  # one class per canvas
            seen += members
        assert sorted(seen) == list(range(24))  # every image exactly once


def test_uneven_counts_reuse_only_to_fill_the_last_canvas(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["uneven"], combine=2)
    labels = DCQFile(files["uneven"]).labels.tolist()
    assert len(ds) == 3 + 1 + 2  # ceil(9/4) + ceil(2/4) + ceil(6/4)
    for epoch in range(5):
        ds.set_epoch(epoch)
        counts = Counter(m for j in range(len(ds)) for m in ds.canvas_members(j))
        assert set(counts) == set(range(17))  # every image at least once
        for c, m_c in ((0, 9), (1, 2), (2, 6)):
            members = [m for m in counts if labels[m] == c]
            assert sum(counts[m] for m in members) == 4 * -(-m_c // 4)
        # classes 0 and 2 have enough images for a last canvas without repeats inside it
        for j in range(len(ds)):
            if ds.targets[j] != 1:
                assert len(set(ds.canvas_members(j))) == 4
        assert max(counts[m] for m in range(17) if labels[m] != 1) <= 2


def test_deterministic_per_seed_and_epoch(files: dict[str, Path]) -> None:
    a = DCQDataset(files["uneven"], combine=2, seed=5)
    b = DCQDataset(files["uneven"], combine=2, seed=5)
    other = DCQDataset(files["uneven"], combine=2, seed=6)

    def plan(ds: DCQDataset, epoch: int) -> list[list[int]]:
        ds.set_epoch(epoch)
        return [ds.canvas_members(j) for j in range(len(ds))]

    assert plan(a, 3) == plan(b, 3)
    assert plan(a, 0) != plan(a, 1)  # re-drawn every epoch
    assert plan(a, 2) != plan(other, 2)
    assert plan(a, 3) == plan(b, 3)  # going back to an epoch gives it again
    assert a.epoch == 3 and torch.equal(a[0][0], b[0][0])


def test_most_common_size_and_ties() -> None:
    assert most_common_size(np.array([5, 8, 8]), np.array([7, 8, 8])) == (8, 8)
    assert most_common_size(np.array([4, 6]), np.array([9, 6])) == (6, 6)  # tie: larger area
    assert most_common_size(np.array([2, 3]), np.array([3, 2])) == (3, 2)  # then larger height
    plan = CanvasPlan(np.array([1, 1, 1]), np.array([4, 4, 4]), np.array([6, 6, 6]), 3, 0)
    assert len(plan) == 1 and plan.canvas_shape == (12, 18) and plan.labels.tolist() == [1]
    assert plan.members(0).shape == (1, 9) and set(plan.members(0)[0].tolist()) == {0, 1, 2}


# -- pixels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3])
def test_cells_equal_dcqfile_decode(files: dict[str, Path], n: int) -> None:
    ds = DCQDataset(files["uneven"], combine=n, seed=1)
    imgs, _ = decodes([files["uneven"]])
    ds.set_epoch(2)
    batch = ds.__getitems__(list(range(len(ds))))
    assert batch.stacked is not None and batch.stacked[0].shape == (len(ds), 3, 8 * n, 8 * n)
    assert batch.stacked[1].tolist() == ds.targets
    for j in range(len(ds)):
        x, y = ds[j]
        assert torch.equal(x, batch.stacked[0][j]) and y == ds.targets[j]
        for cell, m in zip(cells_of(x.numpy(), n), ds.canvas_members(j), strict=True):
            assert np.array_equal(cell, imgs[m])


def test_numpy_pil_and_grey_outputs(files: dict[str, Path]) -> None:
    chw = DCQDataset(files["grey"], combine=2)
    arr = DCQDataset(files["grey"], combine=2, output="numpy")
    pil = DCQDataset(files["grey"], combine=2, output="pil")
    for j in range(len(chw)):
        x, y = chw[j]
        a, ya = arr[j]
        im, yp = pil[j]
        assert x.shape == (1, 16, 16) and a.shape == (16, 16, 1) and im.mode == "L"
        assert np.array_equal(a, x.numpy().transpose(1, 2, 0))
        assert np.array_equal(np.asarray(im), a[..., 0]) and y == ya == yp


def test_other_sizes_are_resized_to_the_most_common(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["mixed"], combine=2)
    f = DCQFile(files["mixed"])
    resized_seen = 0
    for j in range(len(ds)):
        x, _ = ds[j]
        assert x.shape == (3, 16, 16)
        for cell, m in zip(cells_of(x.numpy(), 2), ds.canvas_members(j), strict=True):
            img = f.decode(m, "chw")
            if img.shape[1:] == (8, 8):
                assert np.array_equal(cell, img)
            else:
                resized_seen += 1
                want = F.interpolate(torch.from_numpy(img)[None].float(), size=(8, 8), mode="bilinear",
                                     align_corners=False, antialias=True)[0].round().clamp(0, 255)
                assert np.array_equal(cell, want.to(torch.uint8).numpy())
    assert resized_seen >= 6


def test_transforms_and_palette_transform(files: dict[str, Path]) -> None:
    f = DCQFile(files["even"])
    ds = DCQDataset(files["even"], combine=2, transform=lambda t: t.flip(-1),
                    target_transform=lambda y: y + 10,
                    palette_transform=lambda pal: 255 - pal)
    plain = DCQDataset(files["even"], combine=2)
    batch = ds.__getitems__([0, 3])
    assert batch.stacked is None  # transforms: no zero-copy stack
    for (x, y), j in zip(batch, (0, 3), strict=True):
        assert y == plain.targets[j] + 10
        cells = cells_of(x.flip(-1).numpy(), 2)
        for cell, m in zip(cells, ds.canvas_members(j), strict=True):
            inverted = 255 - f.palettes[int(f.clusters[m])]
            assert np.array_equal(cell, inverted[f.index_map(m)].transpose(2, 0, 1))


def test_zstd_payloads_and_the_decoded_cache(files: dict[str, Path]) -> None:
    imgs, _ = decodes([files["zstd"]])
    for ds in (DCQDataset(files["zstd"], combine=2, seed=4),
               DCQDataset(files["zstd"], combine=2, seed=4, cache_decoded=True).fill_cache()):
        for epoch in (0, 1):
            ds.set_epoch(epoch)
            batch = ds.__getitems__(list(range(len(ds))))
            for j, (x, _y) in enumerate(batch):
                for cell, m in zip(cells_of(x.numpy(), 2), ds.canvas_members(j), strict=True):
                    assert np.array_equal(cell, imgs[m])


# -- selections and shards ---------------------------------------------------------------------
def test_selection_fraction_and_shards(files: dict[str, Path]) -> None:
    f = DCQFile(files["uneven"])
    sel = f.selection_indices("core")
    ds = DCQDataset(files["uneven"], combine=2, selection="core")
    labels = f.labels[sel]
    assert ds.num_samples == len(sel)
    assert len(ds) == sum(-(-int(c) // 4) for c in np.bincount(labels) if c)
    seen = set()
    for j in range(len(ds)):
        x, y = ds[j]
        for cell, m in zip(cells_of(x.numpy(), 2), ds.canvas_members(j), strict=True):
            assert int(labels[m]) == y
            assert np.array_equal(cell, f.decode(int(sel[m]), "chw"))
            seen.add(m)
    assert seen == set(range(len(sel)))
    part = DCQDataset(files["uneven"], combine=2, selection="core", fraction=0.25)
    assert part.num_samples < len(sel)

    shards = [files["part0"], files["part1"]]
    imgs, all_labels = decodes(shards)
    multi = DCQDataset(shards, combine=2)
    assert len(multi) == 2 + 2 + 2  # classes 0: 5, 1: 3 + 5, 2: 7 across the two files
    for j in range(len(multi)):
        x, y = multi[j]
        for cell, m in zip(cells_of(x.numpy(), 2), multi.canvas_members(j), strict=True):
            assert all_labels[m] == y and np.array_equal(cell, imgs[m])


# -- loaders, workers, sampler -----------------------------------------------------------------
def epoch_batches(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    out = list(loader)
    return torch.cat([b[0] for b in out]), torch.cat([b[1] for b in out])


def reference(ds: DCQDataset, epoch: int, order: list[int]) -> tuple[torch.Tensor, list[int]]:
    ds.set_epoch(epoch)
    return torch.stack([ds[j][0] for j in order]), [ds.targets[j] for j in order]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_persistent_workers_follow_set_epoch(files: dict[str, Path], context: str) -> None:
    ds = DCQDataset(files["uneven"], combine=2, seed=3)
    check = DCQDataset(files["uneven"], combine=2, seed=3)
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True,
                        multiprocessing_context=context, collate_fn=DCQDataset.collate)
    got = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        x, y = epoch_batches(loader)
        want, labels = reference(check, epoch, list(range(len(check))))
        assert torch.equal(x, want) and y.tolist() == labels
        got.append(x)
    assert not torch.equal(got[0], got[1])


def test_sampler_sets_the_dataset_epoch_and_splits_canvases(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["even"], combine=2, seed=1)
    check = DCQDataset(files["even"], combine=2, seed=1)
    ranks = [DCQSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=4) for r in (0, 1)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        assert ds.epoch == epoch
        order = ranks[0].indices().tolist() + ranks[1].indices().tolist()
        assert sorted(order) == list(range(len(ds)))  # 6 canvases split 3 + 3
        loader = DataLoader(ds, batch_size=2, sampler=ranks[1], num_workers=2,
                            multiprocessing_context="fork")
        x, y = epoch_batches(loader)
        want, labels = reference(check, epoch, ranks[1].indices().tolist())
        assert torch.equal(x, want) and y.tolist() == labels
    fresh = DCQDataset(files["even"], combine=2, seed=1)
    DCQSampler(fresh, seed=4).load_state_dict(ranks[0].state_dict())
    assert fresh.epoch == 1


def test_pickle_round_trip(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["uneven"], combine=2, seed=2)
    ds.set_epoch(4)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.epoch == 4 and len(copy) == len(ds)
    assert all(torch.equal(copy[j][0], ds[j][0]) for j in range(len(ds)))
    assert "combine=2" in repr(ds) and "canvases" in repr(ds)


def test_errors(files: dict[str, Path]) -> None:
    p = files["even"]
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(DcqError, match="combine"):
            DCQDataset(p, combine=bad)
    with pytest.raises(DcqError, match="packed"):
        DCQDataset(p, combine=2, output="packed")
    with pytest.raises(DcqError, match="fill"):
        DCQDataset(p, combine=2, fill="none")
    with pytest.raises(DcqError, match="seed"):
        DCQDataset(p, combine=2, seed=-1)
    ds = DCQDataset(p, combine=2)
    with pytest.raises(DcqError, match="epoch"):
        ds.set_epoch(-1)
    with pytest.raises(IndexError):
        ds[len(ds)]
    with pytest.raises(DcqError, match="canvas_members"):
        DCQDataset(p).canvas_members(0)
    assert len(DCQDataset(p, combine=1)) == 24  # 1 = off
    assert ds.locate(20) == (0, 20)  # sample-level methods still take sample positions


# -- CellCrop ----------------------------------------------------------------------------------
def test_cellcrop_never_crosses_a_cell() -> None:
    gen = torch.Generator().manual_seed(0)
    for cells, (h, w) in ((2, (16, 24)), (3, (27, 9)), (1, (10, 10))):
        crop = CellCrop(8, cells=cells, scale=(0.01, 1.0), ratio=(0.2, 5.0), generator=gen)
        ch, cw = h // cells, w // cells
        used = set()
        for _ in range(300):
            top, left, hh, ww = crop.get_params(h, w)
            r, c = top // ch, left // cw
            used.add((r, c))
            assert hh >= 1 and ww >= 1
            assert r * ch <= top and top + hh <= (r + 1) * ch
            assert c * cw <= left and left + ww <= (c + 1) * cw
        assert used == {(r, c) for r in range(cells) for c in range(cells)}


def test_cellcrop_output_is_one_cells_content() -> None:
    canvas = torch.zeros(3, 16, 16, dtype=torch.uint8)
    colours = [10, 80, 150, 220]
    for k, v in enumerate(colours):  # every cell one flat colour
        r, c = divmod(k, 2)
        canvas[:, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = v
    crop = CellCrop((5, 7), cells=2, generator=torch.Generator().manual_seed(1))
    seen = set()
    for _ in range(100):
        out = crop(canvas)
        assert out.shape == (3, 5, 7) and out.dtype == torch.uint8
        values = torch.unique(out).tolist()
        assert len(values) == 1 and values[0] in colours  # no pixel from a neighbouring cell
        seen.add(values[0])
    assert seen == set(colours)
    batch = crop(torch.stack([canvas, canvas]).float())
    assert batch.shape == (2, 3, 5, 7) and batch.dtype == torch.float32


def test_cellcrop_deterministic_with_a_generator() -> None:
    canvas = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    a = CellCrop(12, generator=torch.Generator().manual_seed(7))
    b = CellCrop(12, generator=torch.Generator().manual_seed(7))
    outs_a = [a(canvas) for _ in range(5)]
    outs_b = [b(canvas) for _ in range(5)]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b, strict=True))
    assert not all(torch.equal(outs_a[0], x) for x in outs_a[1:])
    torch.manual_seed(3)
    g1 = CellCrop(12)(canvas)
    torch.manual_seed(3)
    assert torch.equal(CellCrop(12)(canvas), g1)  # the global RNG without a generator


def test_cellcrop_full_scale_is_the_whole_cell() -> None:
    canvas = torch.arange(2 * 12 * 12, dtype=torch.float32).reshape(2, 12, 12)
    crop = CellCrop(6, cells=2, scale=(1.0, 1.0), ratio=(1.0, 1.0),
                    generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        top, left, h, w = crop.get_params(12, 12)
        assert (h, w) == (6, 6) and top in (0, 6) and left in (0, 6)
    out = crop(canvas)
    cells = [canvas[:, r:r + 6, c:c + 6] for r in (0, 6) for c in (0, 6)]
    assert any(torch.allclose(out, cell) for cell in cells)  # same size: the cell itself


def test_cellcrop_fallback_is_the_central_crop() -> None:
    # a 1x6 cell cannot hold a crop of aspect ratio in [1, 1]: central 1x1 crop
    crop = CellCrop(4, cells=1, scale=(0.9, 1.0), ratio=(1.0, 1.0))
    assert crop.get_params(1, 6) == (0, 2, 1, 1)


def test_cellcrop_errors() -> None:
    with pytest.raises(DcqError, match="multiples"):
        CellCrop(8, cells=2)(torch.zeros(3, 15, 16, dtype=torch.uint8))
    with pytest.raises(DcqError, match="uint8 or floating"):
        CellCrop(8)(torch.zeros(3, 16, 16, dtype=torch.int32))
    with pytest.raises(DcqError, match="tensor"):
        CellCrop(8)(np.zeros((3, 16, 16), np.uint8))  # type: ignore[arg-type]
    for kwargs in ({"scale": (0.5, 0.1)}, {"scale": (0.1, 2.0)}, {"ratio": (0, 1)},
                   {"cells": 0}, {"size": 0}, {"size": (4, 4, 4)}, {"generator": 3}):
        with pytest.raises(DcqError):
            CellCrop(**{"size": 8, **kwargs})  # type: ignore[arg-type]
