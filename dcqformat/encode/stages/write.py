"""Stage ``write``: pass 2 over the stored images -> the ``.dcq`` file.

Each image is reloaded, given its palette (its group's, or with ``palette_choice="best"`` the
best-fitting of all group palettes, :func:`best_palettes`), mapped to nearest-colour indices
against the stored uint8 palette and streamed into :class:`~dcqformat.DCQWriter` in batches of
same-size images. Per-image palettes (``palette="image"``) are refined here, batch by batch.
The writer renames its temporary file into place only when everything succeeded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcqformat.encode.assign import assign_batch, palette_to_working, pixels_to_working
from dcqformat.encode.images import to_channels
from dcqformat.encode.kmeans import sq_distances
from dcqformat.encode.model import TaskModel
from dcqformat.encode.patchdrop import PatchDropper
from dcqformat.encode.refine import refine_palettes_batched
from dcqformat.encode.selection_stage import SelectionPlan
from dcqformat.encode.stages.analyse import BATCH_PIXELS, Analysis
from dcqformat.encode.stages.context import RunContext
from dcqformat.encode.stages.fit import PaletteTable, RefineStats, random_crop
from dcqformat.errors import InputImageError
from dcqformat.format.writer import DCQWriter

__all__ = ["WriteStats", "write", "best_palettes", "psnr", "mse_uint8", "CHOICE_MAX_PIXELS"]

CHOICE_MAX_PIXELS = 4096  # pixels per image (strided) that decide palette_choice="best"


@dataclass
class WriteStats:
    """What the write pass measured (``written``: listing positions, in file order)."""

    path: Path
    written: list[int] = field(default_factory=list)
    psnrs: list[float] = field(default_factory=list)
    raw_bytes: int = 0
    source_bytes: int = 0
    refine_seconds: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def file_bytes(self) -> int:
        """Size of the written file."""
        return self.path.stat().st_size


def mse_uint8(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 22) -> float:
    """Mean squared difference of two equal-shape uint8 arrays, exact (integer sums), in
    chunks: at most ``8 * chunk`` bytes of temporaries however large the image."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    total = 0
    for i in range(0, fa.size, chunk):
        d = fa[i:i + chunk].astype(np.int64) - fb[i:i + chunk]
        total += int(np.dot(d, d))
    return total / max(1, fa.size)


def psnr(mse: float) -> float:
    """PSNR in dB of an 8-bit image with mean squared error ``mse`` (capped at 99 dB)."""
    return 99.0 if mse <= 1e-10 else min(99.0, 10.0 * math.log10(255.0 * 255.0 / mse))


def best_palettes(images: np.ndarray, palettes_w: torch.Tensor) -> list[int]:
    """``palette_choice="best"`` (ours): for equal-size uint8 images ``[B, H, W, C]``, the index
    of the palette ``palettes_w [G, K, C]`` (working space) under which each image's
    nearest-colour error (summed squared working-space distance over up to
    :data:`CHOICE_MAX_PIXELS` strided pixels) is smallest; ties go to the lowest index."""
    b, c = images.shape[0], images.shape[-1]
    flat = images.reshape(b, -1, c)
    flat = flat[:, ::max(1, -(-flat.shape[1] // CHOICE_MAX_PIXELS))]  # subsample, then convert
    x = pixels_to_working(np.ascontiguousarray(flat), palettes_w.device).reshape(b, -1, c)
    g = palettes_w.shape[0]
    err = torch.empty(b, g, dtype=torch.float64, device=x.device)
    for j in range(g):  # one palette at a time: memory B*P*K, not B*P*G*K
        d = sq_distances(x, palettes_w[j][None].expand(b, -1, -1))
        err[:, j] = d.min(-1).values.double().sum(-1)
    return [int(v) for v in err.argmin(1).tolist()]


def write(ctx: RunContext, dst: Path, analysis: Analysis, write_at: Sequence[int],
          groups: torch.Tensor, table: PaletteTable, channels: int, *,
          task: TaskModel | None, dropper: PatchDropper | None, refine_stats: RefineStats,
          plan: SelectionPlan | None,
          provenance: Callable[[WriteStats], dict[str, Any]]) -> WriteStats:
    """Write the analysed images ``write_at`` (indices into ``analysis``) to ``dst``;
    ``provenance(stats)`` gives the provenance record once every sample is written."""
    o = ctx.opts
    stats = WriteStats(dst)
    with ctx.timer.stage("write"):
        writer = DCQWriter(dst, o.bits, channels, list(ctx.source.classes),
                           payload_encoding=o.payload_encoding, zstd_level=o.zstd_level,
                           overwrite=o.overwrite,
                           patch_size=None if dropper is None else dropper.patch_size)
        with writer as w:
            batches = _Batches(ctx, w, analysis, groups, table, task, dropper, refine_stats,
                               stats)
            bar = ctx.bar(len(write_at), "write")
            pending: list[tuple[int, int, np.ndarray]] = []
            positions = [analysis.positions[i] for i in write_at]
            for i, (pos, got) in zip(write_at, ctx.reload(positions), strict=True):
                if got.shape[:2] != (analysis.heights[i], analysis.widths[i]):
                    raise InputImageError(f"image {ctx.source.relpath(pos) or pos} of "
                                          f"{ctx.source.where} changed during the conversion")
                ctx.source.check_unchanged(pos)
                img = to_channels(got, channels)
                full = len(pending) >= o.batch_size or \
                    (len(pending) + 1) * img.shape[0] * img.shape[1] > BATCH_PIXELS
                if pending and (img.shape != pending[0][2].shape or full):
                    batches.flush(pending)
                    bar.update(len(pending))
                    pending = []
                pending.append((i, pos, img))
            if pending:
                batches.flush(pending)
                bar.update(len(pending))
            bar.close()
            w.set_palettes(table.palettes)
            if plan is not None:
                plan.add_to(w)
            stats.provenance = provenance(stats)
            w.set_provenance(stats.provenance)
    ctx.timer.add("write", -stats.refine_seconds)  # per-image refinement is booked as refine
    ctx.timer.add("refine", stats.refine_seconds)
    return stats


class _Batches:
    """Encodes and appends batches of same-size images."""

    def __init__(self, ctx: RunContext, w: DCQWriter, analysis: Analysis, groups: torch.Tensor,
                 table: PaletteTable, task: TaskModel | None, dropper: PatchDropper | None,
                 refine_stats: RefineStats, stats: WriteStats) -> None:
        self.ctx, self.w, self.analysis, self.groups = ctx, w, analysis, groups
        self.pal, self.task, self.dropper = table.palettes, task, dropper
        self.refine_stats, self.stats = refine_stats, stats
        self.per_image = ctx.opts.palette == "image"
        self.pal_w = None if self.per_image else palette_to_working(self.pal, ctx.device)
        self.rgen = ctx.generator("refine", torch.device("cpu"))

    def _palette_ids(self, pending: list[tuple[int, int, np.ndarray]], images: np.ndarray
                     ) -> tuple[list[int], torch.Tensor]:
        o, dev = self.ctx.opts, self.ctx.device
        gs = [int(self.groups[i]) for i, _, _ in pending]
        if self.per_image:
            if o.refine and o.refine_steps > 0:  # same-size images: same-size crops, together
                crops = np.stack([random_crop(img, o.refine_crop, self.rgen)
                                  for _, _, img in pending])
                t0 = time.perf_counter()
                results = refine_palettes_batched(crops, self.pal[gs], steps=o.refine_steps,
                                                  device=dev)
                self.stats.refine_seconds += time.perf_counter() - t0
                for g, r in zip(gs, results, strict=True):
                    self.pal[g] = r.palette
                    self.refine_stats.add(r)
            return gs, palette_to_working(self.pal[gs], dev)
        assert self.pal_w is not None
        if o.palette_choice == "best" and self.pal_w.shape[0] > 1:
            gs = best_palettes(images, self.pal_w)
        return gs, self.pal_w[gs]

    def flush(self, pending: list[tuple[int, int, np.ndarray]]) -> None:
        """Encode and append ``pending`` (``(analysis index, position, image)`` triples)."""
        images = np.stack([img for _, _, img in pending])
        gs, pws = self._palette_ids(pending, images)
        idxs = assign_batch(images, pws)
        d = self.dropper
        drops = ([None] * len(pending) if d is None else  # keep grids and thetas
                 d.decide(self.task, [i for i, _, _ in pending], images))
        src, k, st = self.ctx.source, self.ctx.opts.palette_size, self.stats
        for (_i, pos, img), g, idx, drop in zip(pending, gs, idxs, drops, strict=True):
            extra: dict[str, Any] = {} if drop is None else {"keep_mask": drop[0], "theta": drop[1]}
            shown = idx if d is None or drop is None else d.filled_indices(idx, drop[0], k)
            decoded = self.pal[g][shown]
            st.psnrs.append(psnr(mse_uint8(decoded, img)))
            st.raw_bytes += img.size
            size = src.size(pos)
            st.source_bytes += max(0, size)
            st.written.append(pos)
            self.w.add_sample(idx, g, int(src.labels[pos]), source_path=src.relpath(pos) or None,
                              source_size=size if size >= 0 else None,
                              original_size=self.ctx.original_sizes.get(pos), **extra)
