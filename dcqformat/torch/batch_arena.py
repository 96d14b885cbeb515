"""Recycled shared memory for the decoded batches a DataLoader worker sends.

torch sends every tensor storage a worker returns through a new shared-memory segment: the
worker creates and maps it (its pages faulted in and zeroed by the kernel), hands its file
descriptor to the main process (a round trip to the worker's resource-sharer thread), and the
main process maps it again, faults its pages in again as the batch is read and unmaps it when
the batch dies. For a batch of 256 64-px RGB images (3 MiB) that costs about as much as
decoding the batch from a raw file (``benchmarks/batch_arena.py``).

An *arena* is one memory file per worker (``memfd_create``), mapped once by the worker and once
by the main process, holding ``SLOTS`` batch slots after a one-page header:

- header bytes ``0 .. SLOTS-1``: one flag per slot, 0 free, 1 held;
- header byte ``MAPPED``: 1 once the main process has mapped the arena.

A worker decodes a batch into a free slot (:func:`worker_slot`, lowest first, so only as many
slots are ever touched as are held at once) and collates it to an :class:`ArenaBatch`, which
pickles as (arena, slot, shape, labels) instead of as tensors (a packed batch, whose fields are
views of one slot, as the slot and each field's offset, dtype and shape: :func:`send_views`). The main process rebuilds it as
the plain ``[images, labels]`` the default path gives: ``images`` a tensor over its own mapping
of the slot (through a NumPy array; torch keeps that array alive as long as any tensor or view
over it lives), ``labels`` a new tensor. When the last view of the images is gone the array's
finalizer clears the slot's flag, and only then may the worker write the slot again: a batch the
training loop keeps is never overwritten. A worker that finds no free slot (the loop holds
``SLOTS`` batches, or a batch is larger than a slot) decodes into a new segment as before.

The descriptor travels (multiprocessing's ``DupFd``, as torch sends its own) with each batch until
the worker sees ``MAPPED`` set. The main process forgets an arena's mapping only once its worker
process has exited, when a new arena arrives; the memory goes once no batch of it is alive.

Only on Linux (``memfd_create``) on x86-64, whose ordered stores make one flag byte enough to
hand a slot between two processes; elsewhere, or with ``DCQFORMAT_BATCH_ARENA=0`` in the
environment, every batch goes through a new segment (:mod:`dcqformat.torch.shared_memory`).
"""

from __future__ import annotations

import mmap
import os
import platform
import secrets
import sys
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dcqformat.errors import BatchTransportError
from dcqformat.format.publish import process_alive
from dcqformat.torch.shared_memory import populate

__all__ = ["SLOTS", "ArenaBatch", "arena_enabled", "rebuild_batch", "receive_views", "send_views",
           "sendable_batch", "worker_slot"]

SLOTS = 8
HEADER = 4096
MAPPED = 64
SLOT_ALIGN = 1 << 16


def arena_enabled() -> bool:
    """Whether batches may travel through an arena here (see the module docstring)."""
    return (sys.platform.startswith("linux") and hasattr(os, "memfd_create")
            and platform.machine().lower() in {"x86_64", "amd64"}
            and os.environ.get("DCQFORMAT_BATCH_ARENA", "1") != "0")


class WorkerArena:
    """A worker's arena: the memory file, the worker's mapping and its slots in flight."""

    def __init__(self, slot_bytes: int) -> None:
        self.slot_bytes = -(-max(slot_bytes, 1) // SLOT_ALIGN) * SLOT_ALIGN
        self.size = HEADER + SLOTS * self.slot_bytes
        self.fd = os.memfd_create("dcqformat-batches", os.MFD_CLOEXEC)
        weakref.finalize(self, os.close, self.fd)
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size)
        self.header = np.frombuffer(self.map, np.uint8, count=HEADER)
        self.token = secrets.token_hex(8)
        self.pid = os.getpid()
        self.populated = np.zeros(SLOTS, bool)
        self.in_flight: dict[int, tuple[int, dict[str, bool]]] = {}  # address -> slot, state

    def acquire(self, nbytes: int) -> torch.Tensor | None:
        """A uint8 tensor of ``nbytes`` over the lowest free slot, now held; None when none is
        free or the batch does not fit a slot."""
        free = np.flatnonzero(self.header[:SLOTS] == 0)
        if nbytes > self.slot_bytes or free.size == 0:
            return None
        slot = int(free[0])
        self.header[slot] = 1
        offset = HEADER + slot * self.slot_bytes
        array = np.frombuffer(self.map, np.uint8, count=nbytes, offset=offset)
        if not self.populated[slot]:  # the first use faults the slot's pages in at once
            self.populated[slot] = populate(array.ctypes.data, self.slot_bytes)
        state = {"sent": False}
        tensor = torch.from_numpy(array)
        address = tensor.data_ptr()
        self.in_flight[address] = (slot, state)
        weakref.finalize(array, self._dropped, address, slot, state)
        return tensor

    def _dropped(self, address: int, slot: int, state: dict[str, bool]) -> None:
        """The worker's last view of a slot is gone: free it unless it went to the main process."""
        if os.getpid() != self.pid:  # a forked child's copy: the slot is not its to free
            return
        if self.in_flight.get(address, (slot, None))[1] is state:  # not a newer use of the slot
            del self.in_flight[address]
        if not state["sent"]:
            self.header[slot] = 0


_WORKER_ARENA: WorkerArena | None = None
_UNAVAILABLE_IN: int | None = None  # the pid where making an arena failed (then never retried)


def worker_slot(nbytes: int) -> torch.Tensor | None:
    """Inside a DataLoader worker where arenas are enabled: a uint8 tensor of ``nbytes`` over a
    free slot of this process's arena (made on first use, sized by that first batch; a larger
    batch starts a new arena with at least twice the slot size), else None. Where the system
    refuses the memory file or its mapping (``OSError``), None from then on in this process."""
    global _WORKER_ARENA, _UNAVAILABLE_IN
    if not arena_enabled() or _UNAVAILABLE_IN == os.getpid():
        return None
    arena = _WORKER_ARENA
    if arena is None or arena.pid != os.getpid() or nbytes > arena.slot_bytes:
        grown = 2 * arena.slot_bytes if arena is not None and arena.pid == os.getpid() else 0
        try:
            arena = _WORKER_ARENA = WorkerArena(max(nbytes, grown))
        except OSError:
            _UNAVAILABLE_IN = os.getpid()
            return None
    return arena.acquire(nbytes)


SlotViews = tuple[Any, ...]  # what send_views returns and receive_views takes (picklable)


def send_views(tensors: Sequence[torch.Tensor]) -> SlotViews | None:
    """Inside a worker: when every tensor is a contiguous view of one slot of this process's
    arena in flight, mark the slot sent (the receiver now frees it) and return its picklable
    description, the views' byte offsets, dtypes and shapes included; else None (send them as
    torch sends any tensor)."""
    from multiprocessing.reduction import DupFd

    arena = _WORKER_ARENA
    if arena is None or arena.pid != os.getpid() or not tensors:
        return None
    address = tensors[0].untyped_storage().data_ptr()
    entry = arena.in_flight.get(address)
    if entry is None or any(t.untyped_storage().data_ptr() != address or not t.is_contiguous()
                            for t in tensors):
        return None
    slot, state = entry
    views = [(t.storage_offset() * t.element_size(), str(t.dtype).removeprefix("torch."), tuple(t.shape))
             for t in tensors]
    state["sent"] = True
    fd = None if arena.header[MAPPED] else DupFd(arena.fd)
    return (arena.token, fd, arena.size, arena.pid, HEADER + slot * arena.slot_bytes, slot,
            tensors[0].untyped_storage().nbytes(), views)


class ArenaBatch(list):  # type: ignore[type-arg]
    """``[images, labels]`` of a batch decoded into an arena slot: what the default collate
    returns inside a worker; pickled as the slot's description and the labels' values."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        images, labels = self[0], self[1]
        ref = send_views([images])
        if ref is None:  # not (or no longer) a slot in flight: as torch sends tensors
            return list, ([images, labels],)
        label_array = np.ascontiguousarray(labels.numpy(), np.int64)
        return rebuild_batch, (ref, label_array.tobytes(), tuple(labels.shape))


def sendable_batch(images: torch.Tensor, labels: torch.Tensor) -> list[Any]:
    """The collated ``[images, labels]``: an :class:`ArenaBatch` when ``images`` was decoded
    into a slot of this worker's arena (it then travels as described above), else a list."""
    arena = _WORKER_ARENA
    if arena is None or arena.pid != os.getpid() or \
            images.untyped_storage().data_ptr() not in arena.in_flight:
        return [images, labels]
    return ArenaBatch([images, labels])


# -- the main process's side ------------------------------------------------------------------
_MAPPINGS: dict[str, tuple[mmap.mmap, np.ndarray, int]] = {}  # token -> mapping, header, worker pid


def _mapping(token: str, fd: Any, size: int, pid: int) -> tuple[mmap.mmap, np.ndarray]:
    """The main process's mapping of arena ``token`` (mapped from ``fd`` the first time)."""
    entry = _MAPPINGS.get(token)
    if fd is not None:
        raw = fd.detach()
        try:
            if entry is None:
                for old in [t for t, (_, _, p) in _MAPPINGS.items() if not process_alive(p)]:
                    del _MAPPINGS[old]  # memory goes once no batch of it is alive
                mapping = mmap.mmap(raw, size)
                header = np.frombuffer(mapping, np.uint8, count=HEADER)
                entry = _MAPPINGS[token] = (mapping, header, pid)
                if pid != os.getpid():  # a worker unpickling its own batch (a copy) is not the receiver
                    header[MAPPED] = 1
        finally:
            os.close(raw)
    if entry is None:
        raise BatchTransportError(
            f"a batch from DataLoader worker {pid} names shared memory (arena {token}) that this "
            "process never received; set DCQFORMAT_BATCH_ARENA=0 to send batches as torch does")
    return entry[0], entry[1]


def _release(header: np.ndarray, slot: int, pid: int) -> None:
    if os.getpid() == pid:  # a forked child's copy of a batch never frees the slot
        header[slot] = 0


def receive_views(ref: SlotViews) -> list[torch.Tensor]:
    """In the receiving process: the tensors :func:`send_views` described, views of one
    storage over this process's mapping of the slot, which is freed for reuse when the last
    view of it dies."""
    token, fd, size, pid, offset, slot, nbytes, views = ref
    mapping, header = _mapping(token, fd, size, pid)
    array = np.frombuffer(mapping, np.uint8, count=nbytes, offset=offset)
    weakref.finalize(array, _release, header, slot, os.getpid())
    region = torch.from_numpy(array)
    out = []
    for start, dtype, shape in views:
        kind = getattr(torch, dtype)
        count = int(np.prod(shape)) * kind.itemsize
        out.append(region[start:start + count].view(kind).view(shape))
    return out


def rebuild_batch(ref: SlotViews, label_bytes: bytes, label_shape: tuple[int, ...]) -> list[torch.Tensor]:
    """Unpickle an :class:`ArenaBatch`: ``[images, labels]``, the images over this process's
    mapping of the slot (:func:`receive_views`), the labels a new tensor."""
    (images,) = receive_views(ref)
    labels = torch.from_numpy(np.frombuffer(label_bytes, np.int64).copy()).view(label_shape)
    return [images, labels]
