"""How decoded batches travel (dcqformat.torch.batch): the default collate takes a batch's
stacked tensors without a copy, a batch changed after ``__getitems__`` is collated item by item,
and inside a DataLoader worker images and labels (and a packed batch's fields) are views of one
shared-memory storage, which is what makes a worker's batch one segment to send, not two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

import dcqformat.torch.batch as batch_module
import dcqformat.torch.packed as packed_module
from dcqformat import DCQWriter
from dcqformat.torch import DCQDataset
from dcqformat.torch.batch import DCQItem, collate_decoded, one_storage, stacked_batch


def _write(path: Path, n: int, sizes: tuple[tuple[int, int], ...] = ((8, 8),), encoding: str = "raw") -> Path:
    rng = np.random.default_rng(n)
    with DCQWriter(path, bits=2, channels=3, classes=["a", "b", "c"], payload_encoding=encoding) as w:
        w.set_palettes(rng.integers(0, 256, (2, 4, 3), dtype=np.uint8))
        for i in range(n):
            h, wd = sizes[i % len(sizes)]
            w.add_sample(rng.integers(0, 4, (h, wd), dtype=np.uint8), cluster=i % 2, label=i % 3)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch")
    return {"raw": _write(d / "raw.dcq", 37), "zstd": _write(d / "zstd.dcq", 23, encoding="zstd"),
            "mixed": _write(d / "mixed.dcq", 12, sizes=((8, 8), (5, 7)))}


def _reference(ds: DCQDataset, order: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([ds[i][0] for i in order]), torch.tensor([ds[i][1] for i in order])


def test_default_collate_takes_the_stacked_tensors(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["raw"])
    batch = ds.__getitems__([5, 1, 30])
    assert all(type(item) is DCQItem and isinstance(item, tuple) for item in batch)
    images, labels = default_collate(batch)
    assert images.data_ptr() == batch[0][0].data_ptr()  # no copy: the decode buffer is the batch
    ref_x, ref_y = _reference(ds, [5, 1, 30])
    assert torch.equal(images, ref_x) and torch.equal(labels, ref_y)


@pytest.mark.parametrize("change", ["pop", "swap", "replace"])
def test_a_changed_batch_is_collated_item_by_item(files: dict[str, Path], change: str) -> None:
    ds = DCQDataset(files["raw"])
    batch = ds.__getitems__([3, 4, 5, 6])
    order = [3, 4, 5, 6]
    if change == "pop":
        batch.pop()
        order.pop()
    elif change == "swap":
        batch[0], batch[-1] = batch[-1], batch[0]
        order[0], order[-1] = order[-1], order[0]
    else:
        batch[-1] = DCQItem(ds[9])
        order[-1] = 9
    for collate in (default_collate, DCQDataset.collate):
        images, labels = collate(batch)
        ref_x, ref_y = _reference(ds, order)
        assert torch.equal(images, ref_x) and torch.equal(labels, ref_y)


def test_collate_decoded_refuses_items_of_different_lengths() -> None:
    with pytest.raises(ValueError):
        collate_decoded([DCQItem((torch.zeros(2), 1)), DCQItem((torch.zeros(2),))])


def test_stacked_batch_is_one_shared_storage_in_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    labels = np.array([4, 0, 2, 2, 1], np.int64)
    images, ys = stacked_batch(stack, labels)  # the calling process: views of the arrays
    assert not images.is_shared() and images.data_ptr() == stack.ctypes.data
    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")  # the new-segment path (arenas: test_torch_batch_arena.py)
    monkeypatch.setattr(batch_module, "get_worker_info", lambda: object())
    images, ys = stacked_batch(stack, labels)
    assert images.is_shared() and images.untyped_storage().data_ptr() == ys.untyped_storage().data_ptr()
    assert np.array_equal(images.numpy(), stack) and ys.tolist() == labels.tolist()
    assert ys.dtype == torch.int64 and ys.data_ptr() % 8 == 0


def test_one_storage_lays_fields_out_in_order() -> None:
    views = one_storage({"a": np.arange(3), "b": np.array([[7, 8]])},
                        {"c": np.array([1, 2, 3], np.uint8), "d": np.zeros((2, 2), np.uint8)})
    assert [tuple(v.shape) for v in views.values()] == [(3,), (1, 2), (3,), (2, 2)]
    assert len({v.untyped_storage().data_ptr() for v in views.values()}) == 1
    assert views["a"].tolist() == [0, 1, 2] and views["b"].tolist() == [[7, 8]]
    assert views["c"].tolist() == [1, 2, 3] and views["a"].data_ptr() + 40 == views["c"].data_ptr()


def test_packed_batch_is_one_shared_storage_in_a_worker(files: dict[str, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = DCQDataset(files["zstd"], output="packed")
    plain = ds.pack([0, 2, 4])
    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")  # the new-segment path (arenas: test_torch_batch_arena.py)
    monkeypatch.setattr(packed_module, "get_worker_info", lambda: object())
    shared = ds.pack([0, 2, 4])
    assert shared.data.is_shared() and not plain.data.is_shared()
    assert torch.equal(shared.data, plain.data) and torch.equal(shared.offsets, plain.offsets)


@pytest.mark.parametrize("name", ["raw", "zstd"])
@pytest.mark.parametrize("collate", [None, DCQDataset.collate])
def test_worker_batches_arrive_as_one_storage(files: dict[str, Path], name: str, collate: object,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")  # the new-segment path (arenas: test_torch_batch_arena.py)
    ds = DCQDataset(files[name], cache_decoded=name == "zstd")
    kw = {"collate_fn": collate} if collate is not None else {}
    loader = DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="fork", **kw)
    xs, ys = [], []
    for images, labels in loader:
        assert images.untyped_storage().data_ptr() == labels.untyped_storage().data_ptr()
        xs.append(images)
        ys.append(labels)
    ref_x, ref_y = _reference(ds, list(range(len(ds))))
    assert torch.equal(torch.cat(xs), ref_x) and torch.equal(torch.cat(ys), ref_y)


def test_worker_batches_of_mixed_sizes_still_collate(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["mixed"])
    loader = DataLoader(ds, batch_size=3, num_workers=2, multiprocessing_context="fork",
                        collate_fn=lambda b: [DCQDataset.collate([item]) for item in b])
    got = [pair for batch in loader for pair in batch]
    assert len(got) == len(ds)
    for i, (images, labels) in enumerate(got):
        assert torch.equal(images[0], ds[i][0]) and labels.tolist() == [ds[i][1]]


@pytest.mark.parametrize("shards", [1, 2])
def test_worker_batch_is_decoded_into_its_shared_storage(files: dict[str, Path], shards: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import dcqformat.torch.dataset as dataset_module

    paths = [files["raw"], files["zstd"]][:shards]
    ds = DCQDataset(paths if shards > 1 else paths[0])
    order = [3, 0, len(ds) - 1, 7, 7, 30]
    ref_x, ref_y = _reference(ds, order)

    def no_copy(*args: object) -> None:
        raise AssertionError("a worker batch of one size was copied, not decoded in place")

    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")  # the new-segment path (arenas: test_torch_batch_arena.py)
    monkeypatch.setattr(batch_module, "get_worker_info", lambda: object())
    monkeypatch.setattr(dataset_module, "stacked_batch", no_copy)
    batch = ds.__getitems__(order)
    assert batch.stacked is not None
    images, labels = default_collate(batch)
    assert images.is_shared() and images.untyped_storage().data_ptr() == labels.untyped_storage().data_ptr()
    assert torch.equal(images, ref_x) and torch.equal(labels, ref_y)
