"""DCQDataset: single and batched decode paths, outputs, shards, selections, DataLoader
workers (fork, spawn, persistent) and pickling. Every image is compared with DCQFile's own
decode of the same sample."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dcqformat import DcqError, DCQFile, DCQWriter
from dcqformat.torch import DCQBatch, DCQDataset, DCQSampler

CLASSES = ["ant", "bee", "cat"]


def write_dcq(path: Path, n: int, *, channels: int = 3, bits: int = 2, sizes=((8, 8),), seed: int = 0,
              classes=CLASSES, clusters: int = 3, selection: bool = False,
              encoding: str = "raw") -> Path:
    """A small .dcq file of random palettes and index maps; sample i has size sizes[i % len]."""
    rng = np.random.default_rng(seed)
    k = 1 << bits
    with DCQWriter(path, bits=bits, channels=channels, classes=classes,
                   payload_encoding=encoding) as w:
        w.set_palettes(rng.integers(0, 256, (clusters, k, channels), dtype=np.uint8))
        for i in range(n):
            h, wd = sizes[i % len(sizes)]
            w.add_sample(rng.integers(0, k, (h, wd), dtype=np.uint8), cluster=int(rng.integers(clusters)),
                         label=int(rng.integers(len(classes))))
        if selection:
            ranking = rng.permutation(n)
            w.add_selection("core", ranking, np.sort(ranking[: n // 2]), {"method": "random"})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dcq")
    return {
        "rgb": write_dcq(d / "rgb.dcq", 40, sizes=((8, 8),), seed=1, selection=True),
        "mixed": write_dcq(d / "mixed.dcq", 30, sizes=((8, 8), (5, 7), (12, 3)), seed=2),
        "grey": write_dcq(d / "grey.dcq", 25, channels=1, bits=3, sizes=((6, 9),), seed=3),
        "zstd": write_dcq(d / "zstd.dcq", 20, sizes=((8, 8), (4, 4)), seed=4, encoding="zstd"),
        "shard0": write_dcq(d / "part-000.dcq", 17, seed=5, selection=True),
        "shard1": write_dcq(d / "part-001.dcq", 11, seed=6, selection=True),
        "shard2": write_dcq(d / "part-002.dcq", 9, seed=7, selection=True),
        "other_classes": write_dcq(d / "other.dcq", 5, seed=8, classes=["x", "y"]),
    }


def expected(paths: list[Path]) -> tuple[list[np.ndarray], list[int]]:
    """CHW images and labels of the concatenation of ``paths``, straight from DCQFile."""
    images, labels = [], []
    for p in paths:
        f = DCQFile(p)
        for i in range(len(f)):
            images.append(f.decode(i, "chw"))
            labels.append(int(f.labels[i]))
    return images, labels


# -- single-sample path ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rgb", "mixed", "grey", "zstd"])
def test_getitem_tensor_equals_direct_decode(files: dict[str, Path], name: str) -> None:
    ds = DCQDataset(files[name])
    imgs, labels = expected([files[name]])
    assert len(ds) == len(imgs)
    for i in range(len(ds)):
        x, y = ds[i]
        assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.is_contiguous()
        assert np.array_equal(x.numpy(), imgs[i]) and y == labels[i]
    x, y = ds[-1]
    assert np.array_equal(x.numpy(), imgs[-1])
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize("name", ["mixed", "grey"])
def test_pil_and_numpy_outputs(files: dict[str, Path], name: str) -> None:
    f = DCQFile(files[name])
    pil = DCQDataset(files[name], output="pil")
    arr = DCQDataset(files[name], output="numpy")
    for i in range(len(f)):
        hwc = f.decode(i, "hwc")
        im, y = pil[i]
        assert im.mode == ("L" if f.channels == 1 else "RGB")
        assert np.array_equal(np.asarray(im).reshape(hwc.shape), hwc)
        a, y2 = arr[i]
        assert a.shape == hwc.shape and np.array_equal(a, hwc) and y == y2 == int(f.labels[i])
    batch = pil.__getitems__([0, 1, 2])
    assert [np.asarray(im).reshape(f.shape(i)).tolist() for i, (im, _) in enumerate(batch)] == \
        [f.decode(i, "hwc").tolist() for i in range(3)]
    with pytest.raises(DcqError):
        DCQDataset(files[name], output="jpeg")


def test_transforms_single_and_batched(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["mixed"], transform=lambda t: t.float().mean(), target_transform=lambda y: -y)
    plain = DCQDataset(files["mixed"])
    for i in range(6):
        assert ds[i][0] == plain[i][0].float().mean() and ds[i][1] == -plain[i][1]
    batch = ds.__getitems__([5, 0, 3])
    assert batch.stacked is None
    assert [(float(a), b) for a, b in batch] == [(float(ds[i][0]), ds[i][1]) for i in (5, 0, 3)]


def test_imagefolder_metadata(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["rgb"])
    f = DCQFile(files["rgb"])
    assert ds.classes == CLASSES and ds.class_to_idx == {"ant": 0, "bee": 1, "cat": 2}
    assert ds.targets == f.labels.tolist() and isinstance(ds.targets, list)
    assert "40 samples" in repr(ds)


# -- shards and selections ---------------------------------------------------------------------
def test_shards_list_glob_folder_concatenate(files: dict[str, Path]) -> None:
    shards = [files["shard0"], files["shard1"], files["shard2"]]
    imgs, labels = expected(shards)
    by_list = DCQDataset([str(p) for p in shards])
    by_glob = DCQDataset(str(shards[0].parent / "part-*.dcq"))
    assert by_glob.paths == shards
    reordered = DCQDataset([shards[2], shards[0]])
    imgs_r, _ = expected([shards[2], shards[0]])
    for ds, want in ((by_list, imgs), (by_glob, imgs), (reordered, imgs_r)):
        assert len(ds) == len(want)
        assert all(np.array_equal(ds[i][0].numpy(), want[i]) for i in range(len(ds)))
    assert by_list.targets == labels
    assert by_list.locate(17) == (1, 0) and by_list.locate(-1) == (2, 8)
    with pytest.raises(DcqError, match="no file matches"):
        DCQDataset(str(shards[0].parent / "nothing-*.dcq"))


def test_shards_must_agree(files: dict[str, Path]) -> None:
    with pytest.raises(DcqError) as err:
        DCQDataset([files["shard0"], files["other_classes"]])
    assert str(files["shard0"]) in str(err.value) and str(files["other_classes"]) in str(err.value)
    with pytest.raises(DcqError, match="channels"):
        DCQDataset([files["rgb"], files["grey"]])


def test_selection_and_fraction(files: dict[str, Path]) -> None:
    shards = [files["shard0"], files["shard1"], files["shard2"]]
    imgs, labels = expected(shards)
    for fraction in (None, 0.25):
        ds = DCQDataset(shards, selection="core", fraction=fraction)
        want, start = [], 0
        for p in shards:
            f = DCQFile(p)
            want += (f.selection_indices("core", fraction) + start).tolist()
            start += len(f)
        assert len(ds) == len(want) and ds.targets == [labels[g] for g in want]
        assert all(np.array_equal(ds[i][0].numpy(), imgs[g]) for i, g in enumerate(want))
        batch = ds.__getitems__(list(range(len(ds)))[::-1])
        assert all(np.array_equal(x.numpy(), imgs[want[len(ds) - 1 - j]]) for j, (x, _) in enumerate(batch))
    with pytest.raises(DcqError, match="selection"):
        DCQDataset(files["mixed"], selection="core")
    with pytest.raises(DcqError, match="fraction"):
        DCQDataset(files["rgb"], fraction=0.5)


# -- batched path --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rgb", "mixed", "grey", "zstd", "shards"])
def test_getitems_equals_getitem(files: dict[str, Path], name: str) -> None:
    paths = [files["shard0"], files["shard1"], files["shard2"]] if name == "shards" else [files[name]]
    ds = DCQDataset(paths)
    rng = np.random.default_rng(0)
    for size in (1, 7, len(ds)):
        idx = rng.choice(len(ds), size, replace=False).tolist()
        batch = ds.__getitems__(idx)
        assert isinstance(batch, DCQBatch) and len(batch) == size
        for i, (x, y) in zip(idx, batch, strict=True):
            ref, ref_y = ds[i]
            assert x.dtype == torch.uint8 and torch.equal(x, ref) and y == ref_y
        uniform = len({tuple(x.shape) for x, _ in batch}) == 1
        assert (batch.stacked is not None) == uniform
        if uniform:
            images, labels = batch.stacked
            assert images.shape == (size, *batch[0][0].shape) and labels.dtype == torch.int64
            assert torch.equal(images, torch.stack([x for x, _ in batch]))
            assert labels.tolist() == [y for _, y in batch]
    assert ds.__getitems__([]) == []
    assert torch.equal(ds.__getitems__([-1])[0][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds.__getitems__([0, len(ds)])


def test_collate_is_zero_copy_and_falls_back(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["rgb"])
    batch = ds.__getitems__([4, 2, 9])
    images, labels = DCQDataset.collate(batch)
    assert images.data_ptr() == batch[0][0].data_ptr()  # the decode buffer is the batch
    assert torch.equal(images, torch.stack([ds[i][0] for i in (4, 2, 9)]))
    plain = [ds[i] for i in (4, 2, 9)]  # a list without .stacked goes through default_collate
    images2, labels2 = DCQDataset.collate(plain)
    assert torch.equal(images2, images) and torch.equal(labels2, labels)


# -- DataLoader ------------------------------------------------------------------------------------
def _all_batches(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("collate", ["default", "dcq"])
def test_dataloader_no_workers(files: dict[str, Path], collate: str) -> None:
    ds = DCQDataset(files["rgb"])
    imgs, labels = expected([files["rgb"]])
    kw = {"collate_fn": DCQDataset.collate} if collate == "dcq" else {}
    x, y = _all_batches(DataLoader(ds, batch_size=16, num_workers=0, **kw))
    assert torch.equal(x, torch.from_numpy(np.stack(imgs))) and y.tolist() == labels


def test_dataloader_fork_workers_persistent_and_inherited_maps(files: dict[str, Path]) -> None:
    paths = [files["shard0"], files["shard1"], files["shard2"]]
    ds = DCQDataset(paths)
    imgs, labels = expected(paths)
    ds[0]  # the parent maps the validated files at open; fork workers inherit the maps
    parent_pid = os.getpid()

    def report(batch: DCQBatch) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        images, ys = DCQDataset.collate(batch)
        return images, ys, [(os.getpid(), len(f)) for f in ds.files]

    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=report, persistent_workers=True,
                        multiprocessing_context="fork")
    for _ in range(2):  # two epochs on the same persistent workers
        out = list(loader)
        x = torch.cat([b[0] for b in out])
        assert torch.equal(x, torch.from_numpy(np.stack(imgs)))
        assert torch.cat([b[1] for b in out]).tolist() == labels
        for _, _, pids in out:
            for child, _n in pids:
                assert child != parent_pid  # decoded in the workers, from the inherited maps


def test_dataloader_fork_default_collate_with_sampler(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["grey"])
    imgs, labels = expected([files["grey"]])
    sampler = DCQSampler(ds, shuffle=True, seed=3)
    order = sampler.indices().tolist()
    assert sorted(order) == list(range(len(ds)))
    loader = DataLoader(ds, batch_size=6, sampler=sampler, num_workers=2,
                        multiprocessing_context="fork")
    x, y = _all_batches(loader)
    assert torch.equal(x, torch.from_numpy(np.stack([imgs[i] for i in order])))
    assert y.tolist() == [labels[i] for i in order]


def test_dataloader_spawn_workers(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["mixed"], selection=None)
    small = torch.utils.data.Subset(ds, list(range(0, 30, 3)))  # all 8x8
    imgs, labels = expected([files["mixed"]])
    loader = DataLoader(small, batch_size=4, num_workers=2, multiprocessing_context="spawn",
                        collate_fn=DCQDataset.collate)
    x, y = _all_batches(loader)
    assert torch.equal(x, torch.from_numpy(np.stack(imgs[0:30:3])))
    assert y.tolist() == labels[0:30:3]


def test_pickle_round_trip_drops_and_reopens_map(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["rgb"], selection="core")
    first = ds[0][0].clone()
    _ = ds.targets
    assert ds.files[0]._mm is not None
    blob = pickle.dumps(ds)
    copy = pickle.loads(blob)
    assert copy.files[0]._mm is None and copy.files[0]._payload is None
    assert copy._targets is None  # not carried; rebuilt on demand
    assert torch.equal(copy[0][0], first) and copy.targets == ds.targets
    assert copy.files[0]._mm is not None  # mapped again, identity checked
    assert len(blob) < 20_000


def test_import_dcqformat_does_not_import_torch() -> None:
    code = "import sys, dcqformat; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
