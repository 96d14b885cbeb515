"""A torch Dataset that decodes .dcq samples on the fly.

:class:`DCQDataset` is a map-style dataset over one ``.dcq`` file or several shards. Samples
are decoded when requested, straight into the array that becomes the returned tensor:

- ``ds[i]`` decodes one sample (``torch.from_numpy`` of a C×H×W decode: no extra copy);
- ``ds.__getitems__(indices)``, which torch's DataLoader calls with the whole batch's index
  list, decodes the batch in one :meth:`DCQFile.decode_batch` call per shard (one Numba call
  for raw payloads) into one buffer; each sample is a view of it.

With the default collate a DataLoader batch is then stacked as usual (one copy). Passing
``collate_fn=DCQDataset.collate`` skips that: when every sample of the batch has the same
size, the decoded buffer itself *is* the batch ``[B, C, H, W]`` (plus a labels tensor), with
no per-sample work at all::

    ds = DCQDataset("train.dcq")
    loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=4,
                        collate_fn=DCQDataset.collate)       # stacked batches, zero copies
    for images, labels in loader:                            # uint8 [B, C, H, W], int64 [B]
        ...

``DCQDataset.collate`` falls back to torch's ``default_collate`` whenever the batch is not
stackable as decoded (mixed sizes, a ``transform``, ``output="pil"``...), so it is always
safe to pass.

``output="packed"`` decodes nothing: every batch is a :class:`~dcqformat.torch.packed.
PackedBatch` of the stored packed indices (q bits per pixel) plus a few bytes per sample, to be
expanded on the accelerator by :func:`dcqformat.torch.expand` (see ``docs/gpu-loading.md``)::

    ds = DCQDataset("train.dcq", output="packed")
    loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=4, pin_memory=True)
    for batch in loader:
        images, labels = expand(batch, device="cuda")    # uint8 [B, C, H, W] on the GPU

``combine=n`` makes every item a canvas of n×n decoded images of one class (PCA's *combine*,
see :mod:`dcqformat.torch.combine` and ``docs/combine.md``), re-drawn each epoch
(:meth:`DCQDataset.set_epoch`); pair it with :class:`~dcqformat.torch.cellcrop.CellCrop`.

The dataset holds no open handle: :class:`DCQFile` memory-maps lazily in each
process, so the dataset pickles into fork and spawn workers alike.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from dcqformat.checks import check_int, check_sample_index, check_sample_indices
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile
from dcqformat.torch.batch import DCQBatch, DCQItem, collate_decoded, stacked_batch
from dcqformat.torch.combine import CanvasPlan, assemble_canvases, check_combine
from dcqformat.torch.original_size import check_size, to_original_size
from dcqformat.torch.packed import PackedBatch, PackedSource, collate_packed
from dcqformat.torch.palette_decode import decode_through, decode_with_palette_transform
from dcqformat.torch.paths import PathLike, resolve_paths
from dcqformat.torch.sampler import DCQSampler
from dcqformat.torch.shards import decode_positions, worker_output

__all__ = ["DCQDataset", "DCQSampler", "DCQBatch"]

OUTPUTS = ("tensor", "pil", "numpy", "packed")


def _zero_dropped(arr: np.ndarray, mask: np.ndarray, layout: str) -> None:
    """Set the pixels outside ``mask`` (bool [H, W]) of a decoded image to 0, in place."""
    if layout == "chw":
        arr[:, ~mask] = 0
    else:
        arr[~mask] = 0


class DCQDataset(Dataset[tuple[Any, Any]]):
    """Map-style dataset over one or more ``.dcq`` files, decoding on the fly.

    Parameters
    ----------
    path_or_paths:
        A ``.dcq`` file, a glob (``"train-*.dcq"``), a folder (its ``*.dcq`` files), a list of
        files, or already opened :class:`DCQFile` objects. Several files form one dataset
        whose index runs through them in the given (for globs and folders: sorted) order.
        All must have the same classes and channels.
    transform:
        Called on each image (after the palette transform), e.g. torchvision transforms.
    target_transform:
        Called on each integer label.
    output:
        ``"tensor"`` (uint8 C×H×W torch tensor, default), ``"pil"`` (PIL image, mode L or
        RGB), ``"numpy"`` (uint8 H×W×C array) or ``"packed"``: no decode; ``ds[i]`` and every
        DataLoader batch is a :class:`PackedBatch` for :func:`dcqformat.torch.expand` (the
        shards must share q, K, channels and patch size; ``transform``, ``target_transform``,
        ``palette_transform`` and a ``fill`` other than the stored one are refused: they
        belong after, or in, the expansion).
    selection, fraction:
        Restrict to the stored selection ``selection`` of every file, or, with ``fraction``,
        to the class-balanced nested prefix of its ranking holding that fraction of each file
        (:meth:`DCQFile.selection_indices`).
    palette_transform:
        A callable ``palette_transform(palette) -> palette`` on the sample's cluster palette
        (uint8 tensor ``[K, channels]``) applied before decoding, e.g.
        :class:`~dcqformat.torch.palette_transforms.PaletteColorJitter`. If it has
        ``needs_counts = True`` it is called as ``palette_transform(palette, counts=counts)``
        with the sample's index histogram (int64 tensor ``[K]``).
    fill:
        What dropped patches of a file with patch masks (spec §13) become. ``None`` or
        ``"stored"`` (default): their stored fill colour; items are ``(image, label)``.
        ``"none"``: dropped pixels are 0 and items are ``(image, mask, label)`` with ``mask``
        the boolean ``[H, W]`` of stored pixels (a bool tensor for ``output="tensor"``, else a
        NumPy array), for models that drop tokens. A callable ``fill(image, mask) -> image``
        (e.g. an MAE reconstructor) gets the stored-fill image (in the ``output`` form, before
        ``transform``) and that mask; items are ``(image, label)``. Files without masks give an
        all-True mask. ``fill_mode`` says which one is used.
    check_crc:
        Check every sample's CRC-32 as it is read (off by default, like :class:`DCQFile`:
        structure is validated at open either way; ``DCQFile.verify`` checks every checksum).
    combine, seed:
        ``combine=n`` (1 = off): every item is a canvas of n×n decoded images of one class
        (``len`` = ``sum_c ceil(count_c / n²)``), drawn per ``(seed, epoch)`` with every image
        once where the counts allow (:mod:`dcqformat.torch.combine` states the rules; set the
        epoch with :meth:`set_epoch` or a :class:`DCQSampler` on this dataset). Not with
        ``output="packed"`` or ``fill`` other than the stored one.
    cache_decoded:
        Keep every decoded index map in RAM, packed at q bits per pixel (at most the size of a
        ``raw`` payload), so that epochs after the first read zstd and ctx files at raw speed
        (:meth:`DCQFile.enable_cache`; no-op for raw files). Each DataLoader worker fills its own
        copy unless the cache is filled before the workers fork (:meth:`fill_cache`).
    size, resize:
        ``size="stored"`` (default): images as stored; ``"original"``: at the size they had
        before ``convert --scale`` stored them smaller (spec §15), resized ``"bilinear"``
        (default) or ``"nearest"`` (:mod:`dcqformat.torch.original_size`).

    ``classes``, ``class_to_idx`` and ``targets`` (the label of every sample, a list) are as
    in torchvision's ImageFolder.
    """

    def __init__(
        self,
        path_or_paths: PathLike | DCQFile | Sequence[PathLike | DCQFile],
        transform: Callable[[Any], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
        output: str = "tensor",
        selection: str | None = None,
        fraction: float | None = None,
        palette_transform: Callable[..., torch.Tensor] | None = None,
        *,
        check_crc: bool = False,
        fill: str | Callable[[Any, Any], Any] | None = None,
        combine: int = 1,
        seed: int = 0,
        cache_decoded: bool = False,
        size: str = "stored",
        resize: str = "bilinear",
    ) -> None:
        if fill is None or fill == "stored":
            self.fill_mode = "stored"
        elif fill == "none":
            self.fill_mode = "none"
        elif callable(fill):
            self.fill_mode = "callable"
        else:
            raise InvalidArgumentError(f"fill must be None, 'stored', 'none' or a callable, got {fill!r}")
        self.fill = fill
        if output not in OUTPUTS:
            raise InvalidArgumentError(f"output must be one of {OUTPUTS}, got {output!r}")
        if output == "packed":
            for name, value in (("transform", transform), ("target_transform", target_transform),
                                ("palette_transform", palette_transform)):
                if value is not None:
                    raise InvalidArgumentError(
                        f'output="packed" decodes nothing, so it takes no {name}: apply it to what '
                        "dcqformat.torch.expand returns (palette_transform: pass it to expand)")
            if self.fill_mode != "stored":
                raise InvalidArgumentError('output="packed" expands dropped patches to their stored fill; '
                                           "use fill=None")
        if fraction is not None and selection is None:
            raise InvalidArgumentError(
                "fraction needs selection=<name>: it is a fraction of a stored selection's ranking")
        self.transform = transform
        self.target_transform = target_transform
        self.output = output
        self.selection = selection
        self.fraction = fraction
        self.palette_transform = palette_transform
        files = [p if isinstance(p, DCQFile) else DCQFile(p, check_crc=check_crc)
                 for p in resolve_paths(path_or_paths)]
        first = files[0]
        for f in files[1:]:
            if f.classes != first.classes:
                raise InvalidArgumentError(
                    f"shards disagree on classes: {str(first.path)!r} has {first.classes}, "
                    f"{str(f.path)!r} has {f.classes}")
            if f.channels != first.channels:
                raise InvalidArgumentError(
                    f"shards disagree on channels: {str(first.path)!r} has {first.channels}, "
                    f"{str(f.path)!r} has {f.channels}")
        if cache_decoded:
            for f in files:
                f.enable_cache()
        self._files = files
        self.paths = [f.path for f in files]
        self.classes: list[str] = first.classes
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.channels: int = first.channels
        sizes = [len(f) for f in files]
        self._starts = np.zeros(len(files) + 1, dtype=np.int64)
        np.cumsum(sizes, out=self._starts[1:])
        self._starts_list = self._starts.tolist()
        labels = np.concatenate([f.labels for f in files]) if files else np.empty(0, np.int64)
        positions: np.ndarray | None = None
        if selection is not None:
            parts = [np.asarray(f.selection_indices(selection, fraction), dtype=np.int64) + start
                     for f, start in zip(files, self._starts_list, strict=False)]
            positions = np.concatenate(parts)
            labels = labels[positions]
        self._positions = positions
        self._labels = np.ascontiguousarray(labels, dtype=np.int64)
        self._targets: list[int] | None = None
        self._packer = PackedSource(files, self._starts) if output == "packed" else None
        self.combine = check_combine(combine, output, self.fill_mode)
        self.size, self.resize = check_size(size, resize, output, self.fill_mode, self.combine, files)
        self._plan: CanvasPlan | None = None
        self._epoch = torch.zeros(1, dtype=torch.int64)
        if self.combine > 1:
            g = positions if positions is not None else np.arange(int(self._starts[-1]))
            heights = np.concatenate([f.heights for f in files])[g]
            widths = np.concatenate([f.widths for f in files])[g]
            self._plan = CanvasPlan(self._labels, heights, widths, self.combine,
                                    check_int(seed, "seed", minimum=0))
            self._epoch.share_memory_()  # persistent DataLoader workers see set_epoch

    def fill_cache(self) -> DCQDataset:
        """Decode every sample of every file into its in-RAM cache now (``cache_decoded``; call
        it before the DataLoader forks its workers so that they share it). Returns self."""
        for f in self._files:
            f.fill_cache()
        return self

    # -- ImageFolder-like metadata ---------------------------------------------------------
    @property
    def targets(self) -> list[int]:
        """The label of every item, in dataset order (of every canvas with ``combine``)."""
        if self._targets is None:
            self._targets = (self._plan.labels if self._plan is not None else self._labels).tolist()
        return self._targets

    @property
    def num_samples(self) -> int:
        """Stored samples the dataset reads from (``len`` unless ``combine`` > 1)."""
        return int(self._labels.shape[0])

    @property
    def epoch(self) -> int:
        """The epoch whose canvases ``combine`` yields (:meth:`set_epoch`)."""
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose canvases are drawn (``combine`` > 1). It lives in shared
        memory: DataLoader workers (persistent too) see it; call it before iterating."""
        self._epoch[0] = check_int(epoch, "epoch", minimum=0, maximum=2**62)

    def canvas_members(self, index: int) -> list[int]:
        """Sample positions in the cells of canvas ``index`` this epoch, row-major."""
        if self._plan is None:
            raise InvalidArgumentError("canvas_members() needs DCQDataset(combine=n) with n >= 2")
        return self._plan.members(self.epoch)[self._check_index(index)].tolist()

    @property
    def files(self) -> list[DCQFile]:
        """The underlying shards, in index order."""
        return list(self._files)

    def __len__(self) -> int:
        return len(self._plan) if self._plan is not None else int(self._labels.shape[0])

    def __repr__(self) -> str:
        extra = f", selection={self.selection!r}" if self.selection else ""
        if self.fraction is not None:
            extra += f", fraction={self.fraction}"
        if self._plan is not None:
            extra += f", combine={self.combine} ({self.num_samples} samples)"
        what = "canvases" if self._plan is not None else "samples"
        return (f"DCQDataset({len(self)} {what} from {len(self._files)} file(s), "
                f"classes={len(self.classes)}, output={self.output!r}{extra})")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_targets"] = None  # rebuilt on demand; keeps worker pickles small
        return state

    # -- index arithmetic ------------------------------------------------------------------
    def _check_index(self, index: Any, n: int | None = None) -> int:
        return check_sample_index(index, len(self) if n is None else n, "this dataset")

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, sample index inside that shard) of sample position ``index``."""
        return self._locate(self._check_index(index, self.num_samples))

    def _locate(self, i: int) -> tuple[int, int]:
        g = int(self._positions[i]) if self._positions is not None else i
        if len(self._files) == 1:
            return 0, g
        k = bisect.bisect_right(self._starts_list, g) - 1
        return k, g - self._starts_list[k]

    # -- single-sample path ----------------------------------------------------------------
    def __getitem__(self, index: int) -> tuple[Any, ...]:
        """Decode sample ``index``: ``(image, label)`` in the configured output form
        (``(image, mask, label)`` with ``fill="none"``)."""
        if self._packer is not None:
            return self.pack([index])  # type: ignore[return-value]
        if self._plan is not None:
            return tuple(self.__getitems__([self._check_index(index)])[0])
        i = self._check_index(index)
        k, j = self._locate(i)
        f = self._files[k]
        layout = "chw" if self.output == "tensor" else "hwc"
        if self.palette_transform is not None:
            arr = decode_with_palette_transform(f, j, self.palette_transform, layout)
        else:
            arr = f.decode(j, layout)
        if self.size == "original":
            arr = to_original_size(arr, f.original_shape(j), layout, self.resize)
        mask: Any = None
        if self.fill_mode != "stored":
            pm = f.pixel_mask(j)
            if self.fill_mode == "none":
                _zero_dropped(arr, pm, layout)
            mask = torch.from_numpy(pm) if self.output == "tensor" else pm
        img: Any = self._wrap(arr)
        if self.fill_mode == "callable":
            assert callable(self.fill)
            img = self.fill(img, mask)
        target: Any = int(self._labels[i])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        if self.fill_mode == "none":
            return img, mask, target
        return img, target

    def _wrap(self, arr: np.ndarray) -> Any:
        if self.output == "tensor":
            return torch.from_numpy(arr)
        if self.output == "numpy":
            return arr
        from PIL import Image
        if arr.shape[2] == 1:
            return Image.fromarray(arr.reshape(arr.shape[0], arr.shape[1]), mode="L")
        return Image.fromarray(arr, mode="RGB")

    def decode_with_palette(self, index: int, palette: np.ndarray | torch.Tensor,
                            layout: str = "chw") -> np.ndarray:
        """Decode sample ``index`` through ``palette`` (uint8 ``[K, channels]``) instead of its
        stored cluster palette; returns a new uint8 array (``"chw"`` or ``"hwc"``)."""
        k, j = self.locate(index)
        return decode_through(self._files[k], j, palette, layout)

    # -- batched path ----------------------------------------------------------------------
    def __getitems__(self, indices: Sequence[int]) -> DCQBatch:
        """Decode a whole batch; DataLoader calls this with the batch's index list.

        Returns a :class:`DCQBatch`: the list of ``(image, label)`` pairs ``default_collate``
        expects, each image a view of one buffer decoded by a single ``decode_batch`` call per
        shard (with ``combine``: the batch's canvases, tiled into one buffer). ``transform``/
        ``target_transform`` are applied per item after the decode; a ``palette_transform``
        makes it fall back to per-sample decoding.
        """
        if self._packer is not None:
            return DCQBatch([self.pack(indices)])
        if self._plan is not None:
            return self._canvas_batch(self._positions_of(indices))
        if self.palette_transform is not None or self.fill_mode != "stored" or self.size != "stored":
            return DCQBatch(self[i] for i in indices)
        idx = self._positions_of(indices)
        if idx.size == 0:
            return DCQBatch()
        layout = "chw" if self.output == "tensor" else "hwc"
        labels = self._labels[idx]
        into = self._worker_buffers(idx, layout, labels)
        stack, items = self._decode_samples(idx, layout, None if into is None else into[0].numpy())
        return self._finish(stack, items, labels, into)

    def _worker_buffers(self, idx: np.ndarray, layout: str, labels: np.ndarray
                        ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For a plain tensor batch: the images and labels tensors to decode it into inside a
        DataLoader worker (:func:`~dcqformat.torch.shards.worker_output`), else None."""
        if self.output != "tensor" or self.transform is not None or self.target_transform is not None:
            return None
        g = self._positions[idx] if self._positions is not None else idx
        return worker_output(self._files, self._starts, g, layout, labels)

    def _canvas_batch(self, idx: np.ndarray) -> DCQBatch:
        """The canvases ``idx`` of the current epoch: their samples decoded, then tiled."""
        assert self._plan is not None
        if idx.size == 0:
            return DCQBatch()
        layout = "chw" if self.output == "tensor" else "hwc"
        members = self._plan.members(self.epoch)[idx].reshape(-1)
        stack, items = self._decode_samples(members, layout)
        decoded = stack if stack is not None else items
        assert decoded is not None
        canvases = assemble_canvases(decoded, self.combine, self._plan.cell, self.channels, layout)
        return self._finish(canvases, None, self._plan.labels[idx])

    def _decode_samples(self, idx: np.ndarray, layout: str, out: np.ndarray | None = None
                        ) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
        """Decode sample positions ``idx``: ``(stack, None)`` when one buffer holds them all
        (``out``, when given), else ``(None, list of arrays)``; one ``decode_batch`` call per
        shard (per-sample decodes with a ``palette_transform``)."""
        if self.palette_transform is not None:
            located = [self._locate(i) for i in idx.tolist()]
            return None, [decode_with_palette_transform(self._files[k], j, self.palette_transform, layout)
                          for k, j in located]
        g = self._positions[idx] if self._positions is not None else idx
        return decode_positions(self._files, self._starts, g, layout, out)

    def _finish(self, stack: np.ndarray | None, items: list[np.ndarray] | None,
                labels: np.ndarray, into: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> DCQBatch:
        """Wrap decoded arrays in the output form, apply the transforms, pair with labels
        (:mod:`dcqformat.torch.batch`: a stacked tensor batch is one storage in a worker;
        ``into``: the images and labels tensors ``stack`` was decoded into)."""
        stacked: tuple[torch.Tensor, torch.Tensor] | None = None
        images: Sequence[Any]
        plain = self.transform is None and self.target_transform is None
        if stack is not None and self.output == "tensor":
            if plain:  # ``into`` is what decode_batch(out=...) wrote and returned as ``stack``
                stacked = into if into is not None else stacked_batch(stack, labels)
            images = (stacked[0] if stacked is not None else torch.from_numpy(stack)).unbind(0)
        elif stack is not None:
            images = [self._wrap(a) for a in stack]
        else:
            assert items is not None
            images = [self._wrap(a) for a in items]
        targets: list[Any] = labels.tolist()
        if self.transform is not None:
            images = [self.transform(x) for x in images]
        if self.target_transform is not None:
            targets = [self.target_transform(t) for t in targets]
        out = DCQBatch(map(DCQItem, zip(images, targets, strict=True)))
        out.stacked = stacked
        return out

    def _positions_of(self, indices: Sequence[int]) -> np.ndarray:
        """``indices`` as checked dataset positions, int64 (negative ones from the end)."""
        return check_sample_indices(indices, len(self), "this dataset")

    def pack(self, indices: Sequence[int]) -> PackedBatch:
        """The :class:`PackedBatch` of samples ``indices`` (``output="packed"`` only): their
        stored packed indices, one :meth:`DCQFile.packed_batch` call per shard, no decode."""
        if self._packer is None:
            raise InvalidArgumentError(f'pack() needs DCQDataset(output="packed"), this one has {self.output!r}')
        idx = self._positions_of(indices)
        g = self._positions[idx] if self._positions is not None else idx
        return self._packer.pack(g, self._labels[idx], idx)

    @staticmethod
    def collate(batch: Sequence[Any]) -> Any:
        """collate_fn for DataLoader: the already stacked ``(images [B, C, H, W], labels [B])``
        of a batch decoded into one buffer, without copying; the :class:`PackedBatch` of a
        packed batch; ``default_collate`` otherwise (which does the same for both, see
        :mod:`dcqformat.torch.batch`, where torch has ``default_collate_fn_map``)."""
        if len(batch) and isinstance(batch[0], DCQItem):
            return collate_decoded(batch)
        if len(batch) and isinstance(batch[0], PackedBatch):
            return collate_packed(batch)
        return default_collate(batch if isinstance(batch, list) else list(batch))
