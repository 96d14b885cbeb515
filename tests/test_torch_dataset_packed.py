"""DCQDataset(output="packed") through DataLoader: workers (fork, spawn), default collate and
DCQDataset.collate, pin_memory, shards, selections, wrappers without __getitems__; the
refusals; and that the packed bytes are the stored ones (no decode on the CPU side)."""

from __future__ import annotations

import multiprocessing
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader
from torch.utils.data._utils.pin_memory import pin_memory as torch_pin_memory

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError
from dcqformat.format import masks as M
from dcqformat.torch import DCQDataset, DCQSampler, PackedBatch, PaletteBrightness, expand


def write(path: Path, n: int, *, bits: int = 2, sizes=((8, 8),), seed: int = 0, encoding: str = "raw",
          patch_size: int | None = None, selection: bool = False, channels: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    k = 1 << bits
    with DCQWriter(path, bits=bits, channels=channels, classes=["a", "b", "c"], payload_encoding=encoding,
                   patch_size=patch_size) as w:
        w.set_palettes(rng.integers(0, 256, (4, k, channels), dtype=np.uint8))
        for i in range(n):
            h, wd = sizes[i % len(sizes)]
            kw = {}
            if patch_size:
                kw["keep_mask"] = rng.random(M.grid_shape(h, wd, patch_size)) < 0.6
            w.add_sample(rng.integers(0, k, (h, wd), dtype=np.uint8), cluster=int(rng.integers(4)),
                         label=int(rng.integers(3)), **kw)
        if selection:
            ranking = rng.permutation(n)
            w.add_selection("core", ranking, np.sort(ranking[: n // 2]), {"method": "random"})
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("packed")
    return {
        "raw": write(d / "raw.dcq", 40, seed=1, selection=True),
        "zstd": write(d / "zstd.dcq", 30, bits=3, encoding="zstd", seed=2),
        "masked": write(d / "masked.dcq", 25, sizes=((8, 8), (5, 7)), patch_size=3, seed=3),
        "mixed": write(d / "mixed.dcq", 21, sizes=((8, 8), (3, 9), (8, 8)), seed=4, channels=1),
        "s0": write(d / "part-0.dcq", 13, seed=5),
        "s1": write(d / "part-1.dcq", 9, seed=6),
        "q4": write(d / "q4.dcq", 5, bits=4, seed=7),
    }


def decoded(paths: list[Path]) -> list[np.ndarray]:
    out = []
    for p in paths:
        f = DCQFile(p)
        out += [f.decode(i, "chw") for i in range(len(f))]
    return out


def check_batch(images: object, labels: torch.Tensor, positions: list[int], want: list[np.ndarray],
                ds: DCQDataset) -> None:
    assert labels.tolist() == [ds.targets[i] for i in positions]
    for b, i in enumerate(positions):
        assert np.array_equal(images[b].numpy(), want[i])  # type: ignore[index]


@pytest.mark.parametrize("name", ["raw", "zstd", "masked"])
def test_packed_bytes_are_the_stored_ones(files: dict[str, Path], name: str) -> None:
    f = DCQFile(files[name])
    ds = DCQDataset(files[name], output="packed")
    batch = ds.pack([5, 2, -1])
    for b, i in enumerate([5, 2, len(f) - 1]):
        part = batch.data[int(batch.offsets[b]):int(batch.offsets[b + 1])].numpy()
        assert np.array_equal(part, f.packed(i)) and int(batch.stored[b]) == f.stored_pixels(i)
        assert torch.equal(batch.palettes[batch.palette_ids[b]], torch.from_numpy(f.palettes[int(f.clusters[i])].copy()))
    assert batch.indices.tolist() == [5, 2, len(f) - 1] and len(batch) == 3
    one = ds[4]
    assert isinstance(one, PackedBatch) and len(one) == 1
    assert np.array_equal(expand(one, "cpu")[0][0].numpy(), f.decode(4, "chw"))
    items = ds.__getitems__([0, 1])
    assert len(items) == 1 and isinstance(items[0], PackedBatch)
    nbytes = batch.nbytes()
    assert nbytes["data"] == sum(f.packed(i).size for i in [5, 2, len(f) - 1])
    moved = nbytes["data"] + 3 * 8 + 3 * 8 + batch.palettes.numel()  # + labels, palette ids, table
    if name == "masked":
        moved += batch.keep.numel() + batch.fills.numel()
    assert nbytes["device"] == moved and nbytes["total"] > moved


@pytest.mark.parametrize("collate", [None, DCQDataset.collate])
@pytest.mark.parametrize("name", ["raw", "masked", "mixed"])
def test_dataloader_two_fork_workers_pin_memory(files: dict[str, Path], name: str, collate: object) -> None:
    ds = DCQDataset(files[name], output="packed")
    want = decoded([files[name]])
    kw = {"collate_fn": collate} if collate is not None else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pin_memory.*")  # no accelerator here
        loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, pin_memory=True,
                            multiprocessing_context="fork", generator=torch.Generator().manual_seed(0), **kw)
        seen = []
        for batch in loader:
            assert isinstance(batch, PackedBatch)
            images, labels = expand(batch, device="cpu")
            check_batch(images, labels, batch.indices.tolist(), want, ds)
            seen += batch.indices.tolist()
    assert sorted(seen) == list(range(len(ds)))


def test_dataloader_spawn_worker_and_sampler(files: dict[str, Path]) -> None:
    """The collate registration also holds in a spawned worker (it imports the dataset)."""
    ds = DCQDataset(files["zstd"], output="packed")
    want = decoded([files["zstd"]])
    sampler = DCQSampler(ds, num_replicas=2, rank=1, shuffle=True, seed=3)
    loader = DataLoader(ds, batch_size=7, sampler=sampler, num_workers=1,
                        multiprocessing_context=multiprocessing.get_context("spawn"))
    positions = []
    for batch in loader:
        images, labels = expand(batch, device="cpu")
        check_batch(images, labels, batch.indices.tolist(), want, ds)
        positions += batch.indices.tolist()
    assert positions == list(sampler)


def test_shards_selection_and_wrappers(files: dict[str, Path]) -> None:
    ds = DCQDataset([files["s0"], files["s1"]], output="packed")
    want = decoded([files["s0"], files["s1"]])
    order = [20, 0, 14, 3, 12, 13]  # across the shard border, out of order
    images, labels = expand(ds.pack(order), "cpu")
    check_batch(images, labels, order, want, ds)
    sel = DCQDataset(files["raw"], output="packed", selection="core")
    picked = DCQFile(files["raw"]).selection_indices("core")
    images, _ = expand(sel.pack([0, 3]), "cpu")
    raw = decoded([files["raw"]])
    assert np.array_equal(images[1].numpy(), raw[int(picked[3])])
    both = ConcatDataset([DCQDataset(files["s0"], output="packed"), DCQDataset(files["s1"], output="packed")])
    batch = next(iter(DataLoader(both, batch_size=16, shuffle=False)))  # per-sample items, concatenated
    assert isinstance(batch, PackedBatch) and len(batch) == 16
    images, _ = expand(batch, "cpu")
    assert all(np.array_equal(images[b].numpy(), want[b]) for b in range(16))


def test_pin_memory_and_to_keep_the_metadata_on_the_cpu(files: dict[str, Path]) -> None:
    batch = DCQDataset(files["masked"], output="packed").pack(list(range(6)))
    pinned = torch_pin_memory(batch)  # what DataLoader's pin thread calls: batch.pin_memory()
    assert isinstance(pinned, PackedBatch)
    if not torch.cuda.is_available():
        assert pinned is batch
    moved = batch.to("cpu", non_blocking=True)
    assert moved.heights.device.type == "cpu" and torch.equal(moved.data, batch.data)
    assert torch.equal(expand(moved, "cpu")[0][3], expand(batch, "cpu")[0][3])


def test_packed_refusals(files: dict[str, Path]) -> None:
    for kwargs, match in [({"transform": lambda x: x}, "transform"),
                          ({"target_transform": int}, "target_transform"),
                          ({"palette_transform": PaletteBrightness(0.2)}, "pass it to expand"),
                          ({"fill": "none"}, "stored fill")]:
        with pytest.raises(InvalidArgumentError, match=match):
            DCQDataset(files["raw"], output="packed", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="share bits"):
        DCQDataset([files["raw"], files["q4"]], output="packed")
    with pytest.raises(InvalidArgumentError, match="output=\"packed\""):
        DCQDataset(files["raw"]).pack([0])
    with pytest.raises(IndexError):
        DCQDataset(files["raw"], output="packed").pack([40])
    with pytest.raises(InvalidArgumentError, match="at least one"):
        PackedBatch.concat([])
    a = DCQDataset(files["raw"], output="packed").pack([0])
    b = DCQDataset(files["zstd"], output="packed").pack([0])
    with pytest.raises(InvalidArgumentError, match="share bits"):
        PackedBatch.concat([a, b])


def test_packed_batches_own_writable_memory(files: dict[str, Path]) -> None:
    """zstd's batch decode hands back a read-only buffer; torch must not get it (writing to
    such a tensor is undefined behaviour, and torch warns)."""
    ds = DCQDataset(files["zstd"], output="packed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = ds.pack([0, 1, 2])
    assert batch.data.numpy().flags.writeable
    batch.data[0] = batch.data[0]


@pytest.mark.parametrize("name", ["raw", "zstd"])
@pytest.mark.parametrize("masked", [False, True])
def test_a_packed_batch_is_one_storage(tmp_path: Path, name: str, masked: bool) -> None:
    """A DataLoader worker shares every tensor storage separately (a shared-memory segment and
    a descriptor passed per storage): every field of a packed batch is a view of one buffer,
    the int64 ones aligned, and equal to what the file holds."""
    path = write(tmp_path / "x.dcq", 9, sizes=((8, 8), (5, 3)), encoding=name, patch_size=4 if masked else None)
    batch = DCQDataset(path, output="packed").pack([4, 0, 7, 7])
    tensors = {k: getattr(batch, k) for k in batch.__dataclass_fields__ if isinstance(getattr(batch, k), torch.Tensor)}
    assert len({t.untyped_storage().data_ptr() for t in tensors.values()}) == 1
    assert all(t.is_contiguous() for t in tensors.values())
    assert all(t.data_ptr() % 8 == 0 for t in tensors.values() if t.dtype == torch.int64)
    f = DCQFile(path)
    data, offsets = f.packed_batch([4, 0, 7, 7])
    assert batch.data.numpy().tobytes() == data.tobytes() and batch.offsets.tolist() == offsets.tolist()
    assert batch.labels.tolist() == f.labels[[4, 0, 7, 7]].tolist() and batch.indices.tolist() == [4, 0, 7, 7]
    images, _ = expand(batch, "cpu")
    for b, i in enumerate([4, 0, 7, 7]):
        assert np.array_equal(images[b].numpy(), f.decode(i, "chw"))
