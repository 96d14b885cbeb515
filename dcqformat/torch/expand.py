"""Expand a packed batch into images on any torch device: one unpack and one gather.

``images, labels = expand(batch, device="cuda")`` takes the :class:`PackedBatch` that
``DCQDataset(output="packed")`` yields, copies its packed indices (q bits per pixel) and the
palette table (a few KB) to ``device``, unpacks the indices there (:mod:`dcqformat.torch.
unpack`) and gathers ``palettes[palette_id][index]`` straight into NCHW. The CPU never touches
a pixel on an accelerator. On the CPU, for uint8 output without a palette transform or patch
masks, the expansion is the reader's Numba palette kernel instead (:mod:`dcqformat.torch.
expand_cpu`: one pass, split over threads; about 4x faster than the torch ops there).

What it returns:

- ``images``: uint8 ``[B, C, H, W]`` (``dtype=torch.uint8``, default) equal to
  ``DCQFile.decode(i, "chw")`` byte for byte for every q in 1..8 and every sample, patch-masked
  ones included (dropped patches get their stored fill colour, spec §13). With a floating
  ``dtype`` the values are ``p / 255`` and, with ``normalize=(mean, std)``, ``(p / 255 - mean)
  / std``: computed once per palette entry in float32 (then cast to ``dtype``) and gathered, so
  every pixel equals those float32 operations applied to the decoded uint8 image exactly (the
  same operations on the same values; tolerance 0).
- **Mixed sizes**: when the samples do not all share one H×W, ``images`` is a list of B tensors
  ``[C, H_b, W_b]`` in batch order (like :meth:`DCQFile.decode_batch`). Internally the batch is
  grouped by size and each group expanded in one pass; no padding is added.
- ``labels``: int64 ``[B]`` on ``device``.

``palette_transform`` (any :mod:`~dcqformat.torch.palette_transforms` transform, or any callable
``fn(palette[, counts=])``) is applied to each sample's palette on the device before the gather,
with parameters drawn per sample in batch order: row b is transformed exactly as
``DCQDataset(palette_transform=t)`` transforms sample b when its draws come next from the same
generator. ``counts`` (for contrast with ``center="image"``) are the histograms of each sample's
stored pixels, computed on the device.

Validation: the batch's layout was checked when it was built (:class:`PackedBatch`); an index
>= K, possible only when K < 2**q, is looked for on the device (one sync, only then) and raises
:class:`~dcqformat.errors.PayloadError` as ``DCQFile.decode`` does. The palette table is padded
to 2**q entries so no gather can leave it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dcqformat.checks import check_int
from dcqformat.device import resolve_device
from dcqformat.errors import InvalidArgumentError, PayloadError
from dcqformat.torch.expand_cpu import expand_cpu, fast_path_applies
from dcqformat.torch.packed import PackedBatch
from dcqformat.torch.palette_batch import transform_palettes
from dcqformat.torch.unpack import masked_maps, raster_maps

__all__ = ["expand", "shape_groups"]

Images = torch.Tensor | list[torch.Tensor]
CPU_CHUNK = 1 << 18
DEVICE_CHUNK = 1 << 25


def shape_groups(heights: np.ndarray, widths: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """``(h, w, rows)`` for every distinct size in order of first appearance; ``rows`` int64."""
    if heights.size and (heights == heights[0]).all() and (widths == widths[0]).all():
        return [(int(heights[0]), int(widths[0]), np.arange(heights.size))]
    keys = heights * (int(widths.max()) + 1) + widths
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return [(int(heights[first[g]]), int(widths[first[g]]), np.flatnonzero(inverse == g))
            for g in np.argsort(first)]


def _check_output(dtype: torch.dtype, normalize: Any, channels: int) -> tuple[list[float], list[float]] | None:
    if not isinstance(dtype, torch.dtype) or not (dtype == torch.uint8 or dtype.is_floating_point):
        raise InvalidArgumentError(f"dtype must be torch.uint8 or a floating dtype, got {dtype!r}")
    if normalize is None:
        return None
    if dtype == torch.uint8:
        raise InvalidArgumentError("normalize needs a floating dtype, e.g. dtype=torch.float32")
    try:
        mean, std = normalize
        means = np.asarray(mean, dtype=np.float64).reshape(-1).tolist()
        stds = np.asarray(std, dtype=np.float64).reshape(-1).tolist()
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"normalize must be (mean, std), got {normalize!r}") from None
    means, stds = (v * channels if len(v) == 1 else v for v in (means, stds))
    if len(means) != channels or len(stds) != channels:
        raise InvalidArgumentError(f"normalize needs {channels} means and stds, got {normalize!r}")
    if not all(math.isfinite(s) and s != 0 for s in stds) or not all(math.isfinite(m) for m in means):
        raise InvalidArgumentError(f"normalize: means must be finite and stds finite and non-zero, got {normalize!r}")
    return means, stds


def _table(palettes: torch.Tensor, q: int, dtype: torch.dtype,
           norm: tuple[list[float], list[float]] | None) -> torch.Tensor:
    """Per-sample gather table ``[B, C, max(K, 2**q)]``: the output value of every entry."""
    tab = palettes.permute(0, 2, 1)
    pad = (1 << q) - tab.shape[2]
    if pad > 0:
        tab = torch.nn.functional.pad(tab, (0, pad))
    if dtype == torch.uint8:
        return tab.contiguous()
    values = tab.to(torch.float32) / 255
    if norm is not None:
        mean = torch.tensor(norm[0], dtype=torch.float32, device=tab.device).view(1, -1, 1)
        std = torch.tensor(norm[1], dtype=torch.float32, device=tab.device).view(1, -1, 1)
        values = (values - mean) / std
    return values.to(dtype).contiguous()


def _index_maps(batch: PackedBatch, data: torch.Tensor, groups: list[tuple[int, int, np.ndarray]],
                dev: torch.device, non_blocking: bool) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    lay = {k: getattr(batch, k).numpy() for k in ("offsets", "stored", "keep_offsets", "fill_offsets")}
    q, p = batch.bits, batch.patch_size
    if p is None:
        return [(raster_maps(data, lay["offsets"], rows, h * w, q), None) for h, w, rows in groups]
    keep = batch.keep.to(dev, non_blocking=non_blocking)
    fills = batch.fills.to(dev, non_blocking=non_blocking)
    return [masked_maps(data, keep, fills, lay, rows, h, w, p, q) for h, w, rows in groups]


def _check_indices(batch: PackedBatch, maps: list[tuple[torch.Tensor, torch.Tensor | None]],
                   groups: list[tuple[int, int, np.ndarray]]) -> None:
    k = batch.palette_size
    if k >= 1 << batch.bits:
        return  # every q-bit value is a valid index
    flags = []
    for idx, kept in maps:
        bad = idx >= k
        flags.append((bad & kept if kept is not None else bad).any(dim=1))
    rows = np.concatenate([g[2] for g in groups])[torch.cat(flags).cpu().numpy()]
    if rows.size:
        r = int(rows.min())
        raise PayloadError(
            f"packed batch row {r} (dataset position {int(batch.indices[r])}) holds a palette "
            f"index >= palette_size {k}")


def _counts(maps: list[tuple[torch.Tensor, torch.Tensor | None]], groups: list[tuple[int, int, np.ndarray]],
            b: int, k: int, q: int, dev: torch.device) -> torch.Tensor:
    """Histogram of every sample's stored pixels over the K palette entries, int64 [B, K]."""
    counts = torch.zeros((b, max(k, 1 << q)), dtype=torch.int64, device=dev)
    for (idx, kept), (_, _, rows) in zip(maps, groups, strict=True):
        src = kept.to(torch.int64) if kept is not None else torch.ones_like(idx, dtype=torch.int64)
        part = torch.zeros((rows.size, counts.shape[1]), dtype=torch.int64, device=dev)
        counts[torch.as_tensor(rows).to(dev)] = part.scatter_add_(1, idx.to(torch.int64), src)
    return counts[:, :k].contiguous()


def _gather(table: torch.Tensor, idx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``out[r, c, p] = table[r, c, idx[r, p]]`` as ``[b, C, h, w]``. The int64 gather index
    is built for a chunk of rows at a time: on the CPU chunks of about 2**18 pixels (8× the
    uint8 map in int64 would otherwise leave the caches: 2× slower at 224 px), elsewhere up to
    2**25 pixels (few kernel launches)."""
    b, c = table.shape[0], table.shape[1]
    out = torch.empty((b, c, h * w), dtype=table.dtype, device=table.device)
    per = max(1, (CPU_CHUNK if table.device.type == "cpu" else DEVICE_CHUNK) // max(h * w, 1))
    for s in range(0, b, per):
        e = min(b, s + per)
        index = idx[s:e].to(torch.int64).unsqueeze(1).expand(-1, c, -1)
        torch.gather(table[s:e], 2, index, out=out[s:e])
    return out.view(b, c, h, w)


def expand(batch: PackedBatch, device: str | torch.device | None = "auto", *,
           dtype: torch.dtype = torch.uint8, normalize: tuple[Any, Any] | None = None,
           palette_transform: Callable[..., torch.Tensor] | None = None,
           non_blocking: bool = True, threads: int | None = None) -> tuple[Images, torch.Tensor]:
    """Images and labels of a packed batch on ``device`` (see the module docstring).

    ``device``: ``"auto"`` (the first CUDA device when present, else the CPU), ``"cpu"``,
    ``"cuda[:N]"``, ``"mps"`` or a :class:`torch.device`. ``dtype``: ``torch.uint8`` (0..255) or
    a floating dtype (``p / 255``); ``normalize=(mean, std)`` (per channel or one value, in
    the 0..1 scale as torchvision's Normalize) needs a floating dtype. ``non_blocking``: copy
    from pinned memory asynchronously (the expansion is ordered after the copy on the stream).
    ``threads``: for the CPU fast path only (:mod:`~dcqformat.torch.expand_cpu`), as
    :meth:`DCQFile.decode_batch`'s (None: automatic, 1 inside a DataLoader worker).
    """
    if not isinstance(batch, PackedBatch):
        raise InvalidArgumentError(f"expand needs a PackedBatch (DCQDataset(output='packed')), got {type(batch).__name__}")
    dev = resolve_device(device)
    norm = _check_output(dtype, normalize, batch.channels)
    labels = batch.labels.to(dev, non_blocking=non_blocking)
    b = len(batch)
    if threads is not None:
        check_int(threads, "threads", minimum=1)
    if b == 0:
        return [], labels
    if fast_path_applies(batch, dev, dtype, palette_transform is not None):
        return expand_cpu(batch, threads), labels
    data = batch.data.to(dev, non_blocking=non_blocking)
    groups = shape_groups(batch.heights.numpy(), batch.widths.numpy())
    maps = _index_maps(batch, data, groups, dev, non_blocking)
    _check_indices(batch, maps, groups)
    pids = batch.palette_ids.to(dev, non_blocking=non_blocking)
    palettes = batch.palettes.to(dev, non_blocking=non_blocking)[pids]
    if palette_transform is not None:
        counts = None
        if getattr(palette_transform, "needs_counts", False):
            counts = _counts(maps, groups, b, batch.palette_size, batch.bits, dev)
        palettes = transform_palettes(palette_transform, palettes, counts)
    table = _table(palettes, batch.bits, dtype, norm)
    outs = [_gather(table if rows.size == b else table[torch.as_tensor(rows).to(dev)], idx, h, w)
            for (idx, _), (h, w, rows) in zip(maps, groups, strict=True)]
    if len(groups) == 1:
        return outs[0], labels
    images: list[torch.Tensor] = [outs[0][0]] * b
    for out, (_, _, rows) in zip(outs, groups, strict=True):
        for j, r in enumerate(rows.tolist()):
            images[r] = out[j]
    return images, labels
