"""Packed batches: what ``DCQDataset(output="packed")`` hands to the DataLoader.

A :class:`PackedBatch` holds the q-bit packed palette indices of every sample of a batch (spec
§5) as they are stored, in one contiguous uint8 tensor, and the few bytes per sample needed to
expand them (sizes, palette ids, the palette table, patch masks): no pixel is produced on the
CPU. :func:`dcqformat.torch.expand` turns it into images on any torch device.

Where the fields live. ``to(device)`` moves ``data`` (the only field that grows with the number
of pixels) and ``labels``; every other field is a few bytes per sample and stays on the CPU,
where :func:`~dcqformat.torch.expand` reads it to plan output shapes without a device sync and
copies the little the device needs. ``pin_memory()`` pins every tensor (DataLoader calls it
with ``pin_memory=True``; without an accelerator it returns the batch unchanged).

The default collate and :meth:`DCQDataset.collate` both pass packed batches through:
``PackedBatch`` is registered in torch's ``default_collate_fn_map`` (the extension point torch
documents for :func:`torch.utils.data.default_collate`), and a list of several packed batches
(e.g. single samples from a dataset wrapper without ``__getitems__``) is concatenated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from dcqformat.errors import InvalidArgumentError
from dcqformat.format import masks as M
from dcqformat.format.reader import DCQFile
from dcqformat.torch.batch import one_storage, register_collate
from dcqformat.torch.batch_arena import receive_views, send_views
from dcqformat.torch.packed_checks import check_packed_batch
from dcqformat.torch.shards import loader_threads

__all__ = ["PackedBatch", "PackedSource", "collate_packed"]

_MOVED = ("data", "labels")


@dataclass(frozen=True)
class PackedBatch:
    """A batch of ``.dcq`` samples as packed indices (B samples, C channels, q bits).

    ``data`` uint8 [total]: sample b's packed indices (its ``stored[b]`` pixels, spec §5) at
    ``data[offsets[b]:offsets[b + 1]]``; ``offsets`` int64 [B + 1]; ``heights``, ``widths``,
    ``stored`` (pixels held: H·W, or the kept pixels under patch masks), ``labels`` and
    ``indices`` (dataset positions) int64 [B]; ``palettes`` uint8 [P, K, C] (the palettes the
    batch uses) and ``palette_ids`` int64 [B] into it; ``bits`` q. Patch masks (spec §13):
    ``patch_size`` P (None without masks), ``keep`` uint8 (the bit-packed keep masks of the
    samples at ``keep_offsets`` [B + 1]) and ``fills`` uint8 (the dropped patches' fill
    indices at ``fill_offsets`` [B + 1]).

    Construction checks every field that the expansion relies on (shapes, dtypes, offsets,
    lengths = ceil(stored·q/8), palette ids, mask bits and fills) and raises
    :class:`~dcqformat.errors.InvalidArgumentError`; what it cannot check without reading
    ``data`` (a stored index >= K when K < 2**q) the expansion checks on the device.
    """

    data: torch.Tensor
    offsets: torch.Tensor
    heights: torch.Tensor
    widths: torch.Tensor
    stored: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    palettes: torch.Tensor
    palette_ids: torch.Tensor
    bits: int
    patch_size: int | None = None
    keep: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0, dtype=torch.uint8))
    keep_offsets: torch.Tensor | None = None
    fills: torch.Tensor = dataclasses.field(default_factory=lambda: torch.zeros(0, dtype=torch.uint8))
    fill_offsets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        b = int(self.heights.numel())
        zeros = torch.zeros(b + 1, dtype=torch.int64)
        if self.keep_offsets is None:
            object.__setattr__(self, "keep_offsets", zeros)
        if self.fill_offsets is None:
            object.__setattr__(self, "fill_offsets", zeros.clone())
        check_packed_batch(self)

    # -- sizes ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.heights.numel())

    @property
    def channels(self) -> int:
        """Channels C of the decoded images (1 or 3)."""
        return int(self.palettes.shape[2])

    @property
    def palette_size(self) -> int:
        """Colours per palette, K."""
        return int(self.palettes.shape[1])

    def nbytes(self) -> dict[str, int]:
        """Bytes of the batch: ``"data"`` (the packed indices), ``"device"`` (everything
        :func:`~dcqformat.torch.expand` copies to the device: data, labels, palette ids, the
        palette table and, with patch masks, keep masks and fills) and ``"total"`` (every
        tensor, the host-side layout included)."""
        def size(t: torch.Tensor) -> int:
            return int(t.numel() * t.element_size())

        tensors = [getattr(self, f.name) for f in dataclasses.fields(self)]
        moved = [self.data, self.labels, self.palette_ids, self.palettes]
        if self.patch_size is not None:
            moved += [self.keep, self.fills]
        return {"data": size(self.data), "device": sum(size(t) for t in moved),
                "total": sum(size(t) for t in tensors if isinstance(t, torch.Tensor))}

    # -- sending -------------------------------------------------------------------------------
    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled inside a DataLoader worker whose arena slot holds every tensor (the batch
        :meth:`PackedSource.pack` builds there): as the slot's description, rebuilt in the main
        process as views of its mapping of the slot (:mod:`dcqformat.torch.batch_arena`);
        otherwise as a dataclass."""
        names = [f.name for f in dataclasses.fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]
        ref = send_views([getattr(self, n) for n in names])
        if ref is None:
            return super().__reduce_ex__(protocol)
        others = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in names}
        return _rebuild_packed, (names, ref, others)

    # -- moving --------------------------------------------------------------------------------
    def pin_memory(self, device: Any = None) -> PackedBatch:
        """Every tensor in page-locked memory (for non-blocking copies); unchanged without CUDA."""
        if not torch.cuda.is_available():
            return self
        moved = {f.name: getattr(self, f.name).pin_memory() for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)

    def to(self, device: Any, non_blocking: bool = False) -> PackedBatch:
        """``data`` and ``labels`` on ``device``; the per-sample metadata stays on the CPU (see
        the module docstring)."""
        moved = {k: getattr(self, k).to(device, non_blocking=non_blocking) for k in _MOVED}
        return dataclasses.replace(self, **moved)

    @staticmethod
    def concat(batches: Sequence[PackedBatch]) -> PackedBatch:
        """One batch holding the samples of ``batches`` in order (same q, K, C and patch size)."""
        if not batches:
            raise InvalidArgumentError("concat needs at least one PackedBatch")
        first = batches[0]
        if len(batches) == 1:
            return first
        for other in batches[1:]:
            if (other.bits, other.palette_size, other.channels, other.patch_size) != \
                    (first.bits, first.palette_size, first.channels, first.patch_size):
                raise InvalidArgumentError(
                    "packed batches to concatenate must share bits, palette size, channels and patch size")

        def shifted(name: str, sizes: list[int]) -> torch.Tensor:
            base = np.cumsum([0, *sizes[:-1]])
            return torch.cat([getattr(x, name)[:-1] + int(s) for x, s in zip(batches, base, strict=True)]
                             + [getattr(batches[-1], name)[-1:] + int(base[-1])])

        cat = {name: torch.cat([getattr(x, name).cpu() for x in batches])
               for name in ("heights", "widths", "stored", "indices", "keep", "fills")}
        pal_base = np.cumsum([0, *[x.palettes.shape[0] for x in batches[:-1]]])
        return PackedBatch(
            data=torch.cat([x.data for x in batches]),
            offsets=shifted("offsets", [int(x.data.numel()) for x in batches]),
            labels=torch.cat([x.labels for x in batches]),
            palettes=torch.cat([x.palettes for x in batches]),
            palette_ids=torch.cat([x.palette_ids + int(p) for x, p in zip(batches, pal_base, strict=True)]),
            bits=first.bits, patch_size=first.patch_size,
            keep_offsets=shifted("keep_offsets", [int(x.keep.numel()) for x in batches]),
            fill_offsets=shifted("fill_offsets", [int(x.fills.numel()) for x in batches]),
            **cat)


def _rebuild_packed(names: list[str], ref: Any, others: dict[str, Any]) -> PackedBatch:
    """Unpickle a :class:`PackedBatch` sent from an arena slot (fields set as a dataclass's
    unpickling sets them, without re-running the checks its worker ran)."""
    batch = object.__new__(PackedBatch)
    for name, tensor in zip(names, receive_views(ref), strict=True):
        object.__setattr__(batch, name, tensor)
    for name, value in others.items():
        object.__setattr__(batch, name, value)
    return batch


def collate_packed(batch: Sequence[Any], *, collate_fn_map: Any = None) -> PackedBatch:
    """Collate function for a list of :class:`PackedBatch` (one, from ``__getitems__``, is
    returned as is; several are concatenated)."""
    return PackedBatch.concat(list(batch))


register_collate(PackedBatch, collate_packed)


class PackedSource:
    """The per-dataset tables that :meth:`pack` needs: global sizes and palette ids of every
    sample, and one palette table for all shards (they must share q, K, channels and patch
    size: a packed batch has one of each)."""

    def __init__(self, files: Sequence[DCQFile], starts: np.ndarray) -> None:
        first = files[0]
        for f in files[1:]:
            for what in ("bits", "palette_size", "channels", "patch_size"):
                if getattr(f, what) != getattr(first, what):
                    raise InvalidArgumentError(
                        f'output="packed" needs shards that share {what}: {str(first.path)!r} has '
                        f"{getattr(first, what)}, {str(f.path)!r} has {getattr(f, what)}")
        self.files = list(files)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.bits = first.bits
        self.patch_size = first.patch_size
        self.heights = np.concatenate([f.heights for f in files])
        self.widths = np.concatenate([f.widths for f in files])
        pal_base = np.cumsum([0, *[f.num_clusters for f in files[:-1]]])
        self.palette_ids = np.concatenate([f.clusters + int(b) for f, b in zip(files, pal_base, strict=True)])
        self.table = np.concatenate([f.palettes for f in files])

    def pack(self, g: np.ndarray, labels: np.ndarray, positions: np.ndarray) -> PackedBatch:
        """The packed batch of the samples at global positions ``g`` (validated int64 [B]),
        with their ``labels`` and dataset ``positions``."""
        shard = np.searchsorted(self.starts, g, side="right") - 1
        local = g - self.starts[shard]
        if len(self.files) == 1:
            data_np, offsets = self.files[0].packed_batch(local, threads=loader_threads())
        else:
            data_np, offsets = self._gather_shards(shard, local)
        h, w = self.heights[g], self.widths[g]
        used, inverse = np.unique(self.palette_ids[g], return_inverse=True)
        none = np.zeros(g.size + 1, np.int64)
        ints = {"offsets": offsets, "heights": h, "widths": w, "stored": h * w, "labels": labels,
                "indices": positions, "palette_ids": inverse.reshape(-1), "keep_offsets": none,
                "fill_offsets": none}
        small = {"palettes": self.table[used], "keep": np.zeros(0, np.uint8), "fills": np.zeros(0, np.uint8)}
        if self.patch_size is not None:
            self._masks(shard, local, ints, small)
        # one writable storage (zstd's batch output is read-only: a tensor must own writable memory)
        return PackedBatch(bits=self.bits, patch_size=self.patch_size,
                           **one_storage(ints, {"data": data_np, **small},
                                         shared=get_worker_info() is not None))

    def _gather_shards(self, shard: np.ndarray, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts: list[np.ndarray] = [np.empty(0, np.uint8)] * shard.size
        for k in np.unique(shard).tolist():
            sel = np.flatnonzero(shard == k)
            data, off = self.files[k].packed_batch(local[sel], threads=loader_threads())
            for t, a, b in zip(sel.tolist(), off[:-1].tolist(), off[1:].tolist(), strict=True):
                parts[t] = data[a:b]
        offsets = np.zeros(shard.size + 1, np.int64)
        np.cumsum([p.size for p in parts], out=offsets[1:])
        return (np.concatenate(parts) if parts else np.empty(0, np.uint8)), offsets

    def _masks(self, shard: np.ndarray, local: np.ndarray, ints: dict[str, np.ndarray],
               small: dict[str, np.ndarray]) -> None:
        """Add the stored pixel counts, keep masks and fills of the samples to the fields."""
        keeps, fills, stored = [], [], []
        for k, j in zip(shard.tolist(), local.tolist(), strict=True):
            f = self.files[k]
            keeps.append(M.pack_mask(f.patch_mask(j)))
            fills.append(f.patch_fills(j))
            stored.append(f.stored_pixels(j))
        ko = np.zeros(len(keeps) + 1, np.int64)
        np.cumsum([x.size for x in keeps], out=ko[1:])
        fo = np.zeros(len(fills) + 1, np.int64)
        np.cumsum([x.size for x in fills], out=fo[1:])
        ints.update(stored=np.asarray(stored, np.int64), keep_offsets=ko, fill_offsets=fo)
        small.update(keep=np.concatenate(keeps) if keeps else np.zeros(0, np.uint8),
                     fills=np.concatenate(fills) if fills else np.zeros(0, np.uint8))
