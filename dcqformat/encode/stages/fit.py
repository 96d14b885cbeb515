"""Stages ``cluster``, ``palettes`` and ``refine``: from an :class:`~.analyse.Analysis` to the
shared palettes every image is encoded against.

``cluster``   k-means (C clusters) of the standardised shallow features (``palette="cluster"``);
              one group (``"global"``) or one per image (``"image"``)
``palettes``  count-weighted k-means of the member palettes -> one K-colour palette per group;
              a group whose members' most frequent flat colour covers at least
              ``reserve_share`` of their pixels keeps that colour exactly as entry 0
``refine``    Sobel edge-loss refinement of each group palette on up to ``refine_images``
              seeded random crops (``refine_crop`` px) of its members, reloaded from the source;
              kept only where it does not lower PSNR on those crops
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dcqformat.encode.assign import palette_to_working
from dcqformat.encode.features import standardize
from dcqformat.encode.images import to_channels
from dcqformat.encode.kmeans import kmeans
from dcqformat.encode.palettes import palette_to_uint8, reserved_colours, shared_palettes
from dcqformat.encode.refine import refine_palette
from dcqformat.encode.stages.analyse import Analysis
from dcqformat.encode.stages.context import RunContext

__all__ = ["Clusters", "PaletteTable", "RefineStats", "REFINE_RULE", "cluster", "palettes",
           "refine", "random_crop"]

REFINE_RULE = ("keep a refined palette only if it lowers EL + 1.0*MSE and does not raise the "
               "MSE (PSNR) on its refinement crops")


@dataclass
class Clusters:
    """Each analysed image's group. ``features``/``centers`` (standardised k-means centres)
    are kept for a fit state; both None when no clustering ran."""

    count: int
    groups: torch.Tensor  # int64 [n]
    features: torch.Tensor | None = None
    centers: torch.Tensor | None = None


@dataclass
class PaletteTable:
    """uint8 ``[G, K, channels]`` palettes; ``reserved``: groups whose entry 0 is a reserved
    colour (refinement keeps it)."""

    palettes: np.ndarray
    reserved: set[int] = field(default_factory=set)

    @property
    def reserved_count(self) -> int:
        """How many palettes hold a reserved colour."""
        return len(self.reserved)


@dataclass
class RefineStats:
    """Sums over the refined palettes (:meth:`as_record` averages the losses)."""

    palettes_refined: int = 0
    palettes_improved: int = 0
    edge_loss_before: float = 0.0
    edge_loss_after: float = 0.0

    def add(self, result: Any) -> None:
        """Count one :class:`~dcqformat.encode.refine.RefineResult`."""
        self.palettes_refined += 1
        self.palettes_improved += int(result.accepted)
        self.edge_loss_before += result.edge_loss_before
        self.edge_loss_after += result.edge_loss_after

    def sums(self) -> dict[str, float]:
        """The raw sums (what a fit state stores)."""
        return {"palettes_refined": self.palettes_refined,
                "palettes_improved": self.palettes_improved,
                "edge_loss_before": self.edge_loss_before, "edge_loss_after": self.edge_loss_after}

    @classmethod
    def from_sums(cls, d: dict[str, Any]) -> RefineStats:
        """Inverse of :meth:`sums`."""
        return cls(int(d["palettes_refined"]), int(d["palettes_improved"]),
                   float(d["edge_loss_before"]), float(d["edge_loss_after"]))

    def as_record(self) -> dict[str, float]:
        """The provenance's ``refinement`` record (mean losses over the refined palettes)."""
        d = self.sums()
        if self.palettes_refined:
            d["edge_loss_before"] /= self.palettes_refined
            d["edge_loss_after"] /= self.palettes_refined
        return d


def cluster(ctx: RunContext, analysis: Analysis, need_features: bool) -> Clusters:
    """Stage ``cluster``: the group of every analysed image."""
    o, dev, n = ctx.opts, ctx.device, len(analysis)
    with ctx.timer.stage("cluster"):
        if o.palette == "global":
            return Clusters(1, torch.zeros(n, dtype=torch.long))
        if o.palette == "image":
            return Clusters(n, torch.arange(n))
        count = min(o.clusters, n)
        if not (need_features and count > 1):
            return Clusters(count, torch.zeros(n, dtype=torch.long))
        raw = torch.from_numpy(analysis.feature_matrix()).to(dev)
        res = kmeans(standardize(raw), count, n_init=4, generator=ctx.generator("cluster"))
        return Clusters(count, res.labels.cpu(), raw, res.centers)


def palettes(ctx: RunContext, analysis: Analysis, clusters: Clusters, channels: int
             ) -> PaletteTable:
    """Stage ``palettes``: one palette per group (per image for ``palette="image"``)."""
    o, dev = ctx.opts, ctx.device
    with ctx.timer.stage("palettes"):
        centers, counts = analysis.palette_points()
        if channels == 1:
            centers = centers[..., :1].contiguous()  # L* only
        if o.palette == "image":
            return PaletteTable(np.ascontiguousarray(palette_to_uint8(centers)))
        res_w = has_res = None
        reserved: set[int] = set()
        if o.reserve_share is not None:
            dom = analysis.dominant
            res_rgb, has_res_np = reserved_colours(
                np.array([d[0] for d in dom], np.int64), np.stack([d[1] for d in dom]),
                np.array([d[2] for d in dom]), clusters.groups.numpy(), clusters.count,
                o.reserve_share)
            reserved = {int(g) for g in np.flatnonzero(has_res_np)}
            res_w = palette_to_working(res_rgb, dev)[..., :channels]
            has_res = torch.from_numpy(has_res_np)
        shared = shared_palettes(centers.to(dev), counts.to(dev), clusters.groups.to(dev),
                                 clusters.count, o.palette_size,
                                 generator=ctx.generator("shared"), reserved=res_w,
                                 has_reserved=has_res)
        return PaletteTable(np.ascontiguousarray(palette_to_uint8(shared)), reserved)


def random_crop(arr: np.ndarray, size: int, gen: torch.Generator) -> np.ndarray:
    """A seeded random ``size`` x ``size`` crop (the whole side where the image is smaller)."""
    h, w = arr.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    x = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    return np.ascontiguousarray(arr[y: y + ch, x: x + cw])


def refine(ctx: RunContext, analysis: Analysis, groups: torch.Tensor, table: PaletteTable,
           channels: int) -> RefineStats:
    """Stage ``refine`` (in place on ``table.palettes``) for ``palette`` ``"cluster"`` and
    ``"global"``; per-image palettes are refined in the write pass instead."""
    o = ctx.opts
    stats = RefineStats()
    rgen = ctx.generator("refine", torch.device("cpu"))
    with ctx.timer.stage("refine"):
        if not (o.refine and o.refine_steps > 0 and o.palette != "image"):
            return stats
        pal = table.palettes
        bar = ctx.bar(pal.shape[0], "refine", unit="palette")
        groups_np = groups.numpy()
        for g in range(pal.shape[0]):
            members = np.flatnonzero(groups_np == g)
            bar.update(1)
            if len(members) == 0:
                continue
            pick = torch.randperm(len(members), generator=rgen)[:o.refine_images]
            chosen = sorted(int(members[i]) for i in pick.tolist())
            crops = [random_crop(to_channels(got, channels), o.refine_crop, rgen)
                     for _pos, got in ctx.reload([analysis.positions[i] for i in chosen])]
            r = refine_palette(crops, pal[g], steps=o.refine_steps, device=ctx.device,
                               frozen=(0,) if g in table.reserved else ())
            pal[g] = r.palette
            stats.add(r)
        bar.close()
    return stats
