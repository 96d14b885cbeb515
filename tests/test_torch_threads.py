"""Threads in the torch layer: DCQDataset decodes on one thread inside DataLoader workers and
on the automatic count elsewhere."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch.utils.data import DataLoader

from dcqformat import DCQFile, DCQWriter
from dcqformat.format import threadpool
from dcqformat.torch import DCQDataset, shards


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
