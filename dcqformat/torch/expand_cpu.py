"""The CPU fast path of :func:`dcqformat.torch.expand`: the Numba palette kernel.

On the CPU, for uint8 output without a palette transform and without patch masks, a packed
batch is expanded by :func:`dcqformat.codecs.palette.decode_many_into` (unpack q-bit indices
and gather palette colours in one pass, the reader's own decode kernel) straight into a new
uint8 ``[B, C, H, W]`` tensor, instead of torch's unpack and ``torch.gather`` (several passes
over int64 indices): the same bytes as ``DCQFile.decode(i, "chw")``, since it is the kernel
that decode runs. The batch is split over threads as :meth:`DCQFile.decode_batch` is
(:mod:`dcqformat.format.threadpool`): contiguous chunks of about equal pixel count, one
validated kernel call per chunk, each writing its own rows of the output.
"""

from __future__ import annotations

import numpy as np
import torch

from dcqformat.codecs.palette import decode_many_into
from dcqformat.errors import PayloadError
from dcqformat.format.threadpool import resolve_threads, run_chunks, split_by_pixels
from dcqformat.torch.packed import PackedBatch
from dcqformat.torch.shards import loader_threads

__all__ = ["expand_cpu", "fast_path_applies"]

Images = torch.Tensor | list[torch.Tensor]


def fast_path_applies(batch: PackedBatch, dev: torch.device, dtype: torch.dtype,
                      has_palette_transform: bool) -> bool:
    """Whether :func:`expand_cpu` expands this batch (CPU device and data, uint8 output, no
    palette transform, no patch masks)."""
    return (dev.type == "cpu" and dtype == torch.uint8 and not has_palette_transform
            and batch.patch_size is None and batch.data.device.type == "cpu")


def expand_cpu(batch: PackedBatch, threads: int | None = None) -> Images:
    """The uint8 images of an unmasked packed batch held on the CPU: one ``[B, C, H, W]``
    tensor when the samples share a size, else a list of B ``[C, H_b, W_b]`` tensors (views of
    one buffer). ``threads``: as :meth:`DCQFile.decode_batch`'s (None: automatic, and 1
    inside a DataLoader worker). An index >= K raises :class:`~dcqformat.errors.PayloadError`
    naming the first such row, as the torch path does."""
    b, c = len(batch), batch.channels
    if b == 0:
        return []
    hs, ws = batch.heights.numpy(), batch.widths.numpy()
    pixels = hs * ws
    sizes = pixels * c
    out_offsets = np.zeros(b, np.int64)
    np.cumsum(sizes[:-1], out=out_offsets[1:])
    uniform = bool((hs == hs[0]).all() and (ws == ws[0]).all())
    shape = (b, c, int(hs[0]), int(ws[0])) if uniform else (int(sizes.sum()),)
    images = torch.empty(shape, dtype=torch.uint8)
    flat = images.numpy().reshape(-1)
    data = batch.data.numpy()
    offsets, stored = batch.offsets.numpy()[:-1], batch.stored.numpy()
    pids, palettes = batch.palette_ids.numpy(), np.ascontiguousarray(batch.palettes.numpy())
    n = resolve_threads(loader_threads() if threads is None else threads, int(pixels.sum()), "palette")
    chunks = split_by_pixels(pixels, n)

    def chunk(s: int, e: int) -> int:
        bad = decode_many_into(data, offsets[s:e], stored[s:e], pids[s:e], palettes, batch.bits,
                               flat, out_offsets[s:e], True)
        return -1 if bad < 0 else s + bad

    bad = [r for r in run_chunks(chunk, chunks) if r >= 0]
    if bad:
        r = bad[0]
        raise PayloadError(
            f"packed batch row {r} (dataset position {int(batch.indices[r])}) holds a palette "
            f"index >= palette_size {batch.palette_size}")
    if uniform:
        return images
    return [images[o:o + s].view(c, int(h), int(w))
            for o, s, h, w in zip(out_offsets.tolist(), sizes.tolist(), hs.tolist(), ws.tolist(),
                                  strict=True)]
