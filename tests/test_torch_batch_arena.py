"""Recycled shared memory for worker batches (dcqformat.torch.batch_arena): a slot is written
again only after every view of the batch sent from it is gone, a batch the loop keeps is never
overwritten (the worker falls back to a new segment), the descriptor stops travelling once the
receiver has mapped the arena, and a DataLoader returns the same batches with arenas as without."""

from __future__ import annotations

import gc
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import dcqformat.torch.batch_arena as arena_module
from dcqformat import DCQWriter
from dcqformat.errors import BatchTransportError, DcqError
from dcqformat.torch import DCQDataset
from dcqformat.torch.batch_arena import (
    HEADER,
    MAPPED,
    SLOTS,
    ArenaBatch,
    WorkerArena,
    arena_enabled,
    rebuild_batch,
    sendable_batch,
    worker_slot,
)

pytestmark = pytest.mark.skipif(not arena_enabled(), reason="batch arenas need Linux on x86-64")


def _write(path: Path, n: int, encoding: str) -> Path:
    rng = np.random.default_rng(n)
    with DCQWriter(path, bits=2, channels=3, classes=["a", "b", "c"], payload_encoding=encoding) as w:
        w.set_palettes(rng.integers(0, 256, (2, 4, 3), dtype=np.uint8))
        for i in range(n):
            w.add_sample(rng.integers(0, 4, (8, 8), dtype=np.uint8), cluster=i % 2, label=i % 3)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("arena")
    return {"raw": _write(d / "raw.dcq", 41, "raw"), "ctx": _write(d / "ctx.dcq", 29, "ctx")}


@pytest.fixture
def fresh_arena(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process acts as a worker with no arena yet (restored afterwards)."""
    monkeypatch.setattr(arena_module, "_WORKER_ARENA", None)


def _send(images: torch.Tensor, labels: torch.Tensor) -> bytes:
    batch = sendable_batch(images, labels)
    assert isinstance(batch, ArenaBatch)
    return bytes(ForkingPickler.dumps(batch))


def test_slots_are_taken_lowest_first_and_freed_when_not_sent() -> None:
    arena = WorkerArena(1000)
    assert arena.slot_bytes >= 1000 and arena.size == HEADER + SLOTS * arena.slot_bytes
    first, second = arena.acquire(1000), arena.acquire(10)
    assert first is not None and second is not None
    assert arena.header[:3].tolist() == [1, 1, 0]
    del first
    assert arena.header[:2].tolist() == [0, 1]  # dropped unsent: free again
    held = [arena.acquire(arena.slot_bytes) for _ in range(SLOTS - 1)]
    assert all(t is not None for t in held) and arena.header[:SLOTS].all()
    assert arena.acquire(1) is None  # every slot held: the caller falls back
    del held[3]
    assert arena.acquire(arena.slot_bytes + 1) is None  # larger than a slot
    assert arena.acquire(arena.slot_bytes) is not None


@pytest.mark.usefixtures("fresh_arena")
def test_a_sent_slot_is_held_until_its_last_view_dies() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    slot = worker_slot(pixels.size)
    assert slot is not None
    images = slot.view(pixels.shape)
    images.numpy()[:] = pixels
    message = _send(images, torch.tensor([2, 0, 1, 1]))
    arena = arena_module._WORKER_ARENA
    assert arena is not None
    del images, slot
    gc.collect()
    assert arena.header[0] == 1  # sent: the worker's side letting go does not free it
    got_images, got_labels = pickle.loads(message)
    assert type(got_images) is torch.Tensor and np.array_equal(got_images.numpy(), pixels)
    assert got_labels.tolist() == [2, 0, 1, 1] and got_labels.dtype == torch.int64
    kept_view = got_images[2:]
    del got_images
    gc.collect()
    assert arena.header[0] == 1 and np.array_equal(kept_view.numpy(), pixels[2:])
    del kept_view
    gc.collect()
    assert arena.header[0] == 0


@pytest.mark.usefixtures("fresh_arena")
def test_a_worker_copying_its_own_batch_does_not_mark_the_arena_mapped() -> None:
    import copy

    slot = worker_slot(64)
    assert slot is not None
    batch = sendable_batch(slot.view(64), torch.arange(1))
    twin = copy.copy(batch)  # unpickled in the sending process itself
    arena = arena_module._WORKER_ARENA
    assert arena is not None and arena.header[MAPPED] == 0  # the descriptor keeps travelling
    assert torch.equal(twin[0], slot.view(64)) and twin[1].tolist() == [0]


def test_the_descriptor_travels_only_until_the_receiver_has_mapped_the_arena(
        files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    real = arena_module._mapping

    def spy(token: str, fd: object, size: int, pid: int) -> object:
        seen.append((token, fd is not None))
        return real(token, fd, size, pid)  # type: ignore[arg-type]

    monkeypatch.setattr(arena_module, "_mapping", spy)
    loader = DataLoader(DCQDataset(files["raw"]), batch_size=2, num_workers=1, multiprocessing_context="fork")
    assert sum(1 for _ in loader) == 21  # each batch dropped before the next: every one via a slot
    assert len(seen) == 21 and len({t for t, _ in seen}) == 1
    with_fd = [i for i, (_, has) in enumerate(seen) if has]
    assert with_fd[0] == 0 and len(with_fd) <= 3  # only the batches sent before it was mapped


def test_a_batch_from_an_arena_never_received_is_a_clear_error() -> None:
    with pytest.raises(BatchTransportError, match="never received") as err:
        rebuild_batch(("0123456789abcdef", None, HEADER + 4096, 12345, HEADER, 0, 4, [(0, "uint8", (4,))]),
                      b"", (0,))
    assert isinstance(err.value, DcqError)


def test_a_plain_tensor_is_sent_as_torch_sends_it(fresh_arena: None) -> None:
    images = torch.zeros(2, 3)
    batch = sendable_batch(images, torch.zeros(2, dtype=torch.int64))
    assert type(batch) is list and batch[0] is images


def test_disabled_by_the_environment(monkeypatch: pytest.MonkeyPatch, fresh_arena: None) -> None:
    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")
    assert not arena_enabled() and worker_slot(100) is None


def _reference(ds: DCQDataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([ds[i][0] for i in range(len(ds))]), torch.tensor([ds[i][1] for i in range(len(ds))])


@pytest.mark.parametrize("name", ["raw", "ctx"])
@pytest.mark.parametrize("persistent", [True, False])
def test_dataloader_batches_are_the_same_kept_or_dropped(files: dict[str, Path], name: str,
                                                         persistent: bool) -> None:
    ds = DCQDataset(files[name])
    ref_x, ref_y = _reference(ds)
    mapped_before = set(arena_module._MAPPINGS)
    loader = DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=persistent,
                        multiprocessing_context="fork")
    for _ in range(2):
        kept = list(loader)  # 14 batches held at once, more than SLOTS per worker
        assert torch.equal(torch.cat([x for x, _ in kept]), ref_x)
        assert torch.equal(torch.cat([y for _, y in kept]), ref_y)
        del kept
        start = 0
        for images, labels in loader:  # each batch dropped before the next: slots recycle
            assert torch.equal(images, ref_x[start:start + len(images)])
            assert torch.equal(labels, ref_y[start:start + len(images)])
            start += len(images)
    assert set(arena_module._MAPPINGS) - mapped_before  # the batches came through arenas


def test_dataloader_under_spawn(files: dict[str, Path]) -> None:
    ds = DCQDataset(files["raw"])
    ref_x, _ = _reference(ds)
    loader = DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="spawn")
    assert torch.equal(torch.cat([x for x, _ in loader]), ref_x)


def test_dataloader_with_arenas_disabled(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCQFORMAT_BATCH_ARENA", "0")
    ds = DCQDataset(files["raw"])
    ref_x, _ = _reference(ds)
    mapped_before = set(arena_module._MAPPINGS)
    loader = DataLoader(ds, batch_size=8, num_workers=2, multiprocessing_context="fork")
    assert torch.equal(torch.cat([x for x, _ in loader]), ref_x)
    assert set(arena_module._MAPPINGS) == mapped_before


@pytest.mark.usefixtures("fresh_arena")
def test_a_forked_child_dropping_its_copy_does_not_free_the_slot() -> None:
    import os

    slot = worker_slot(16)
    assert slot is not None
    images, _ = pickle.loads(_send(slot, torch.zeros(1, dtype=torch.int64)))
    arena = arena_module._WORKER_ARENA
    assert arena is not None
    del slot
    gc.collect()
    pid = os.fork()
    if pid == 0:  # the child drops its copies of both sides' views, then leaves at once
        del images
        gc.collect()
        os._exit(0)
    os.waitpid(pid, 0)
    assert arena.header[0] == 1  # still held: the parent's batch is alive
    del images
    gc.collect()
    assert arena.header[0] == 0


def test_packed_batches_travel_through_arenas(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    ds = DCQDataset(files["ctx"], output="packed")
    seen: list[str] = []
    real = arena_module.receive_views

    def spy(ref: tuple[object, ...]) -> list[torch.Tensor]:
        seen.append(str(ref[0]))
        return real(ref)

    monkeypatch.setattr(arena_module, "receive_views", spy)
    import dcqformat.torch.packed as packed_module

    monkeypatch.setattr(packed_module, "receive_views", spy)
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context="fork")
    kept = list(loader)  # 8 batches held
    assert len(seen) == len(kept) == 8
    for i, batch in enumerate(kept):
        want = ds.pack(list(range(4 * i, min(4 * i + 4, len(ds)))))
        for name in ("data", "offsets", "heights", "widths", "stored", "labels", "indices",
                     "palettes", "palette_ids", "keep", "keep_offsets", "fills", "fill_offsets"):
            assert torch.equal(getattr(batch, name), getattr(want, name)), name
        assert (batch.bits, batch.patch_size) == (want.bits, want.patch_size)


@pytest.mark.usefixtures("fresh_arena")
def test_a_batch_copied_into_a_slot_travels_with_its_labels_beside_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import dcqformat.torch.batch as batch_module

    stack = np.random.default_rng(2).integers(0, 256, (5, 3, 4, 4), dtype=np.uint8)
    monkeypatch.setattr(batch_module, "get_worker_info", lambda: object())
    images, labels = batch_module.stacked_batch(stack, np.array([4, 0, 2, 2, 1]))
    assert images.untyped_storage().data_ptr() == labels.untyped_storage().data_ptr()  # one slot
    got_images, got_labels = pickle.loads(_send(images, labels))
    assert np.array_equal(got_images.numpy(), stack) and got_labels.tolist() == [4, 0, 2, 2, 1]


@pytest.mark.usefixtures("fresh_arena")
def test_a_system_without_memory_files_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(arena_module, "_UNAVAILABLE_IN", None)
    monkeypatch.setattr(arena_module.os, "memfd_create", refuse)
    assert worker_slot(100) is None and worker_slot(100) is None  # refused once, not retried
    assert arena_module._UNAVAILABLE_IN is not None


@pytest.mark.usefixtures("fresh_arena")
def test_a_larger_batch_starts_an_arena_with_at_least_twice_the_slots() -> None:
    small = worker_slot(1000)
    first = arena_module._WORKER_ARENA
    assert small is not None and first is not None
    large = worker_slot(first.slot_bytes + 1)
    second = arena_module._WORKER_ARENA
    assert large is not None and second is not None and second is not first
    assert second.slot_bytes >= 2 * first.slot_bytes
