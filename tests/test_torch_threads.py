"""Threads in the torch layer: DCQDataset decodes on one thread inside DataLoader workers and
on the automatic count elsewhere; expand's CPU fast path (the Numba palette kernel, split over
threads) equals DCQFile.decode and the torch path byte for byte and fails as it does."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import DcqError, InvalidArgumentError, PayloadError
from dcqformat.format import threadpool
from dcqformat.torch import DCQDataset, PackedBatch, expand, shards
from dcqformat.torch.expand_cpu import expand_cpu


def _write(path: Path, *, encoding: str = "ctx", sizes: list[tuple[int, int]] | None = None,
           bits: int = 2, palette_size: int = 4, channels: int = 3, seed: int = 0,
           patch_size: int | None = None) -> Path:
    rng = np.random.default_rng(seed)
    sizes = sizes if sizes is not None else [(64, 64)] * 40
    with DCQWriter(path, bits=bits, channels=channels, classes=["a", "b", "c"],
                   palette_size=palette_size, payload_encoding=encoding, patch_size=patch_size) as w:
        w.set_palettes(rng.integers(0, 256, (3, palette_size, channels), dtype=np.uint8))
        for i, (h, wd) in enumerate(sizes):
            m = ((np.add.outer(np.arange(h), np.arange(wd)) // 5) % palette_size).astype(np.uint8)
            w.add_sample(m, cluster=i % 3, label=i % 3)
    return path


def _record(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    seen: list[Any] = []
    original = getattr(DCQFile, name)

    def spy(self: DCQFile, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("threads", "missing"))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(DCQFile, name, spy)
    return seen


@pytest.mark.parametrize("in_worker", [False, True])
def test_the_dataset_asks_for_one_thread_only_in_a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          in_worker: bool) -> None:
    path = _write(tmp_path / "x.dcq")
    monkeypatch.setattr(shards, "get_worker_info", lambda: object() if in_worker else None)
    assert shards.loader_threads() == (1 if in_worker else None)
    want = 1 if in_worker else None
    decoded = _record(monkeypatch, "decode_batch")
    DCQDataset(path).__getitems__([0, 5, 2])
    DCQDataset([path, path]).__getitems__([0, 45, 2])  # two shards
    DCQDataset(path, combine=2).__getitems__([0, 1])
    assert decoded and all(t == want for t in decoded)
    packed = _record(monkeypatch, "packed_batch")
    DCQDataset(path, output="packed").__getitems__([0, 5, 2])
    DCQDataset([path, path], output="packed").__getitems__([0, 45, 2])
    assert len(packed) == 3 and all(t == want for t in packed)


def _collate_and_report_pool(batch: Any) -> tuple[Any, bool]:
    """Runs in the worker: the batch, and whether this process has made a decode pool."""
    return DCQDataset.collate(batch), threadpool._pool is not None and threadpool._pool_pid == os.getpid()


@pytest.mark.parametrize("output", ["tensor", "packed"])
def test_workers_never_start_decode_threads(tmp_path: Path, output: str) -> None:
    path = _write(tmp_path / "x.dcq")  # 40 images of 64 px: split by the automatic count
    ds = DCQDataset(path, output=output)
    loader = DataLoader(ds, batch_size=40, num_workers=1, collate_fn=_collate_and_report_pool)
    (batch, pool_in_worker), = list(loader)
    assert not pool_in_worker
    f = DCQFile(path)
    if output == "tensor":
        assert np.array_equal(batch[0].numpy(), f.decode_batch(np.arange(40), threads=1))
    else:
        assert batch.data.numpy().tobytes() == f.packed_batch(np.arange(40), threads=1)[0].tobytes()


@st.composite
def packed_files(draw: st.DrawFn) -> dict[str, Any]:
    bits = draw(st.integers(1, 8))
    n = draw(st.integers(1, 9))
    one = (draw(st.integers(1, 13)), draw(st.integers(1, 13)))
    sizes = [one] * n if draw(st.booleans()) else \
        [(draw(st.integers(1, 13)), draw(st.integers(1, 13))) for _ in range(n)]
    return {"bits": bits, "sizes": sizes, "palette_size": draw(st.integers(1, 1 << bits)),
            "channels": draw(st.sampled_from([1, 3])),
            "encoding": draw(st.sampled_from(["raw", "zstd", "ctx"])), "seed": draw(st.integers(0, 2**31))}


def _random_file(path: Path, p: dict[str, Any]) -> Path:
    rng = np.random.default_rng(p["seed"])
    k, ch = p["palette_size"], p["channels"]
    with DCQWriter(path, bits=p["bits"], channels=ch, classes=["a"], palette_size=k,
                   payload_encoding=p["encoding"]) as w:
        w.set_palettes(rng.integers(0, 256, (2, k, ch), dtype=np.uint8))
        for h, wd in p["sizes"]:
            w.add_sample(rng.integers(0, k, (h, wd), dtype=np.uint8), cluster=int(rng.integers(2)), label=0)
    return path


@settings(max_examples=60, deadline=None)
@given(params=packed_files(), order_seed=st.integers(0, 1000), threads=st.sampled_from([None, 1, 2, 3, 16]))
def test_fast_cpu_expand_equals_decode_and_the_torch_path(params: dict[str, Any], order_seed: int,
                                                          threads: int | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _random_file(Path(tmp) / "x.dcq", params)
        f = DCQFile(path)
        order = np.random.default_rng(order_seed).integers(0, len(f), 2 * len(f)).tolist()
        batch = DCQDataset(path, output="packed").pack(order)
        fast, labels = expand(batch, "cpu", threads=threads)
        slow, slow_labels = expand(batch, "cpu", palette_transform=lambda p: p)  # the torch path
        assert torch.equal(labels, slow_labels)
        fast_list = list(fast) if isinstance(fast, torch.Tensor) else fast
        assert isinstance(fast, torch.Tensor) == isinstance(slow, torch.Tensor)
        for b, i in enumerate(order):
            ref = f.decode(i, "chw")
            assert fast_list[b].dtype == torch.uint8 and fast_list[b].shape == ref.shape
            assert fast_list[b].numpy().tobytes() == ref.tobytes() == slow[b].numpy().tobytes()


def _batch(values: list[np.ndarray], q: int, k: int) -> PackedBatch:
    """An unmasked PackedBatch of 1×n index maps (raw bytes packed as the spec says)."""
    from dcqformat.codecs.reference import pack_ref
    packed = [pack_ref(v, q) for v in values]
    offsets = np.cumsum([0, *[p.size for p in packed]])
    n = len(values)
    return PackedBatch(
        data=torch.from_numpy(np.concatenate(packed)), offsets=torch.from_numpy(offsets),
        heights=torch.ones(n, dtype=torch.int64), widths=torch.tensor([v.size for v in values]),
        stored=torch.tensor([v.size for v in values]), labels=torch.zeros(n, dtype=torch.int64),
        indices=torch.arange(100, 100 + n), palettes=torch.arange(k * 3, dtype=torch.uint8).reshape(1, k, 3),
        palette_ids=torch.zeros(n, dtype=torch.int64), bits=q)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_fast_path_index_at_or_above_k_names_the_first_row(threads: int) -> None:
    rows = [np.array([0, 1, 2] * 50) for _ in range(12)]
    rows[5] = np.array([0, 3, 1] * 50)  # 3 >= K = 3
    rows[9] = np.array([3] * 150)
    with pytest.raises(PayloadError, match=r"row 5 \(dataset position 105\).*palette_size 3"):
        expand(_batch(rows, 2, 3), "cpu", threads=threads)
    with pytest.raises(PayloadError, match="row 5"):
        expand(_batch(rows, 2, 3), "cpu", palette_transform=lambda p: p)  # the torch path agrees
    ok, _ = expand(_batch(rows[:5], 2, 3), "cpu", threads=threads)
    assert ok[0, :, 0, 2].tolist() == [6, 7, 8]


@pytest.mark.parametrize("bad", [0, -2, "x", 2.0, True])
def test_expand_refuses_bad_thread_counts(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="threads"):
        expand(_batch([np.array([0, 1])], 2, 4), "cpu", threads=bad)  # type: ignore[arg-type]


def test_fast_path_survives_a_batch_edited_after_construction() -> None:
    batch = _batch([np.array([0, 1, 2, 1] * 4)] * 3, 2, 4)
    batch.offsets[1] = 10**6  # the tensors are mutable; the kernel must never see this
    with pytest.raises(DcqError):
        expand(batch, "cpu")
    batch = _batch([np.array([0, 1, 2, 1] * 4)] * 3, 2, 4)
    batch.palette_ids[2] = 5
    with pytest.raises(DcqError):
        expand_cpu(batch, 2)


def test_fast_path_only_where_it_applies(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.dcq", sizes=[(8, 8)] * 4, patch_size=4)
    batch = DCQDataset(path, output="packed").pack([0, 1, 2, 3])
    images, _ = expand(batch, "cpu", threads=2)  # patch masks: the torch path
    f = DCQFile(path)
    assert np.array_equal(images.numpy(), f.decode_batch([0, 1, 2, 3]))
    floats, _ = expand(batch, "cpu", dtype=torch.float32)
    assert torch.equal(floats, images.float() / 255)
