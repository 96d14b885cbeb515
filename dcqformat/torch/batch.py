"""How a decoded batch travels from a DataLoader worker to the training loop.

:meth:`DCQDataset.__getitems__` returns a :class:`DCQBatch`: the list of ``(image, label)``
pairs torch's ``default_collate`` expects, each pair a :class:`DCQItem`, plus ``stacked``:
the whole batch as ``(images uint8 [B, C, H, W], labels int64 [B])`` when it was decoded into
one buffer. ``DCQItem`` is registered in torch's ``default_collate_fn_map`` (the extension
point torch documents for ``default_collate``), so the default collate and
:meth:`DCQDataset.collate` both return ``stacked`` as it is instead of stacking B views again.

Inside a DataLoader worker the images and the labels of ``stacked`` are views of **one**
shared-memory storage (:func:`one_storage`, the labels first: 8-byte aligned). A worker
shares every tensor storage separately (a shared-memory segment, its descriptor passed to the
main process and mapped there); on the 2-core development VM a dummy dataset moved batches of
256 64-px RGB images at 93k images/s as two storages and 119k as one, and the main process
spent 2.3 ms per batch receiving 13 storages, 0.5 ms receiving one with 13 views.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from dcqformat.torch.batch_arena import sendable_batch, worker_slot
from dcqformat.torch.shared_memory import shared_uint8

__all__ = ["DCQBatch", "DCQItem", "collate_decoded", "in_worker", "one_storage", "register_collate", "stacked_batch", "worker_batch"]


class DCQItem(tuple):  # type: ignore[type-arg]
    """One ``(image, label)`` pair of a :class:`DCQBatch`: a plain tuple whose type tells the
    default collate that the batch may carry its images already stacked."""

    __slots__ = ()


class DCQBatch(list):  # type: ignore[type-arg]
    """The list of ``(image, label)`` pairs returned by :meth:`DCQDataset.__getitems__`.

    It is what ``default_collate`` expects; in addition, ``stacked`` holds
    ``(images uint8 [B, C, H, W], labels int64 [B])`` sharing memory with the items when the
    batch was decoded into one buffer (same sizes, tensor output, no transforms), else None.
    """

    stacked: tuple[torch.Tensor, torch.Tensor] | None = None


def one_storage(ints: dict[str, np.ndarray], small: dict[str, np.ndarray],
                shared: bool = False) -> dict[str, torch.Tensor]:
    """The int64 arrays ``ints`` and the uint8 arrays ``small`` copied into one uint8 buffer,
    each returned as a tensor view of it with its own shape (the int64 ones first: aligned).
    ``shared``: the buffer is memory a DataLoader worker sends as it is, a free slot of its
    arena (:mod:`dcqformat.torch.batch_arena`) or else a new shared-memory segment
    (:func:`shared_uint8`: what the worker would copy it to when sending it; made there
    directly, it is copied once, not twice)."""
    fields = [(name, np.asarray(a), 8) for name, a in ints.items()]
    fields += [(name, np.asarray(a), 1) for name, a in small.items()]
    nbytes = sum(a.size * width for _, a, width in fields)
    buf = torch.empty(nbytes, dtype=torch.uint8) if not shared else _shared_buffer(nbytes)
    flat = buf.numpy()
    out, pos = {}, 0
    for name, arr, width in fields:
        n = arr.size * width
        if width == 8:
            flat[pos:pos + n].view(np.int64)[:] = arr.reshape(-1)
            out[name] = buf[pos:pos + n].view(torch.int64).view(arr.shape)
        else:
            flat[pos:pos + n] = arr.reshape(-1)
            out[name] = buf[pos:pos + n].view(arr.shape)
        pos += n
    return out


def _shared_buffer(nbytes: int) -> torch.Tensor:
    """A worker's buffer to send: a recycled arena slot where one is free, else a new segment."""
    slot = worker_slot(nbytes)
    return slot if slot is not None else shared_uint8(nbytes)


def stacked_batch(stack: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` tensors of a decoded batch (``stack`` uint8 [B, ...], ``labels``
    int64 [B]): in the calling process, views of the arrays themselves; inside a DataLoader
    worker, views of one shared-memory storage (see the module docstring)."""
    if not in_worker():
        return torch.from_numpy(stack), torch.from_numpy(np.ascontiguousarray(labels, np.int64))
    views = one_storage({"labels": np.asarray(labels, np.int64)}, {"images": stack}, shared=True)
    return views["images"], views["labels"]


def in_worker() -> bool:
    """Whether this process is a DataLoader worker."""
    return get_worker_info() is not None


def worker_batch(image_shape: tuple[int, ...], labels: np.ndarray
                 ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Inside a DataLoader worker, ``(images, labels)`` for a batch about to be decoded: views
    of one new shared-memory storage, ``labels`` (int64 [B]) copied in and ``images`` (uint8
    of ``image_shape``, content undefined) for the decoder to write into; None elsewhere (the
    arrays the decoder returns are then used as they are, :func:`stacked_batch`)."""
    if not in_worker():
        return None
    labels = np.asarray(labels, np.int64).reshape(-1)
    slot = worker_slot(int(np.prod(image_shape)))
    if slot is not None:  # a recycled slot (dcqformat.torch.batch_arena); labels travel by value
        return slot.view(image_shape), torch.from_numpy(labels.copy())
    n_labels = labels.size * 8
    buf = shared_uint8(n_labels + int(np.prod(image_shape)))
    label_view = buf[:n_labels].view(torch.int64)
    label_view.numpy()[:] = labels
    return buf[n_labels:].view(image_shape), label_view


def _stacked_of(batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``batch.stacked`` when it still describes ``batch`` (same length, same first and last
    image memory), else None: a list changed after ``__getitems__`` is collated item by item."""
    stacked = getattr(batch, "stacked", None)
    if stacked is None or len(batch) != stacked[0].shape[0] or not len(batch):
        return None
    images = stacked[0]
    first, last = batch[0][0], batch[-1][0]
    if not (isinstance(first, torch.Tensor) and isinstance(last, torch.Tensor)):
        return None
    if first.data_ptr() != images[0].data_ptr() or last.data_ptr() != images[-1].data_ptr():
        return None
    return stacked


def collate_decoded(batch: Sequence[Any], *, collate_fn_map: Any = None) -> list[Any]:
    """Collate function for a list of :class:`DCQItem`: ``[images, labels]``, the batch's
    ``stacked`` tensors without a copy when it has them, else each field collated as torch's
    ``default_collate`` collates the fields of tuples."""
    stacked = _stacked_of(batch)
    if stacked is not None:
        return sendable_batch(stacked[0], stacked[1])
    return [default_collate(list(samples)) for samples in zip(*batch, strict=True)]


def register_collate(kind: type, fn: Any) -> None:
    """Make torch's ``default_collate`` call ``fn(batch, collate_fn_map=...)`` for batches whose
    first element is a ``kind`` (its documented ``default_collate_fn_map``); on a torch without
    that map nothing is registered and :meth:`DCQDataset.collate` still handles ``kind``."""
    try:
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:
        return
    default_collate_fn_map[kind] = fn


register_collate(DCQItem, collate_decoded)
