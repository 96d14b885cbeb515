"""Decoding sample positions spread over several ``.dcq`` shards into one buffer (inside a
DataLoader worker a new shared-memory one, :func:`worker_output`), with the decode thread
count that suits the process (:func:`loader_threads`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from dcqformat.format.reader import DCQFile
from dcqformat.torch.batch import in_worker, worker_batch

__all__ = ["decode_positions", "loader_threads", "stacked_shape", "worker_output"]


def loader_threads() -> int | None:
    """The ``threads`` argument for batch decodes in this process: 1 inside a DataLoader
    worker (the workers already share the CPUs out; threads in each would oversubscribe
    them), None (automatic: this process's CPUs) elsewhere, e.g. with ``num_workers=0``."""
    return 1 if get_worker_info() is not None else None


def stacked_shape(files: Sequence[DCQFile], starts: np.ndarray, g: np.ndarray,
                  layout: str) -> tuple[int, ...] | None:
    """The shape of the one array :func:`decode_positions` returns for the positions ``g``
    (non-empty), or None when their samples differ in size or channels (a list then)."""
    shard = np.searchsorted(starts, g, side="right") - 1
    found: set[tuple[int, int, int]] = set()
    for k in np.unique(shard).tolist():
        meta = files[k].metadata
        local = g[shard == k] - starts[k]
        hs, ws = meta.height[local], meta.width[local]
        found.add((int(hs[0]), int(ws[0]), int(meta.channels)))
        if len(found) > 1 or not bool((hs == hs[0]).all() and (ws == ws[0]).all()):
            return None
    ((h, w, c),) = found
    return (g.size, h, w, c) if layout == "hwc" else (g.size, c, h, w)


def worker_output(files: Sequence[DCQFile], starts: np.ndarray, g: np.ndarray, layout: str,
                  labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Inside a DataLoader worker, ``(images, labels)``: views of one new shared-memory storage
    (:func:`~dcqformat.torch.batch.worker_batch`) for :func:`decode_positions` to decode the
    positions ``g`` into, the labels already in; None outside a worker or when the samples
    differ in size (:func:`stacked_shape`)."""
    if not in_worker():
        return None
    shape = stacked_shape(files, starts, g, layout)
    return None if shape is None else worker_batch(shape, labels)


def decode_positions(files: Sequence[DCQFile], starts: np.ndarray, g: np.ndarray, layout: str,
                     out: np.ndarray | None = None) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
    """Decode global sample positions ``g`` (shard ``k`` holds ``starts[k]..starts[k+1]-1``):
    ``(stack, None)`` when one buffer holds them all (``out`` when given: a uint8 array of
    :func:`stacked_shape`), else ``(None, list of arrays)``; one ``decode_batch`` call per
    shard, on :func:`loader_threads` threads."""
    threads = loader_threads()
    shard = np.searchsorted(starts, g, side="right") - 1
    present = np.unique(shard).tolist()
    if len(present) == 1:  # one shard (or one file): its decode is the batch, into ``out``
        k = present[0]
        decoded = files[k].decode_batch(g - starts[k], layout, threads=threads, out=out)
        return (decoded, None) if isinstance(decoded, np.ndarray) else (None, decoded)
    groups = []
    for k in present:
        sel = np.flatnonzero(shard == k)
        groups.append((sel, files[k].decode_batch(g[sel] - starts[k], layout, threads=threads)))
    if all(isinstance(d, np.ndarray) for _, d in groups) and \
            len({d.shape[1:] for _, d in groups}) == 1:
        first = groups[0][1]
        stack = np.empty((g.size, *first.shape[1:]), dtype=np.uint8) if out is None else out
        for sel, d in groups:
            stack[sel] = d
        return stack, None
    items = [np.empty(0, np.uint8)] * g.size
    for sel, d in groups:
        for t, a in zip(sel.tolist(), d, strict=True):
            items[t] = a
    return None, items
