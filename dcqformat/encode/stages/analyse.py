"""Stage ``analyse``: pass 1 over the images -> :class:`Analysis`.

Per image, in listing order: the shallow-stage features the clustering needs, the Grad-CAM++
attention mask (top ``attention_fraction``), the per-image LAB palette and its pixel counts
(attended pixels weigh 1, the rest ``context_weight``), the dominant flat colour (reserved
colours), and a content digest. Nothing kept grows with H·W.

Images are processed in *blocks* of ``batch_size`` consecutive listing positions (the analyse
batches) whose random streams are seeded per block (:func:`~.context.block_seed`), so an
image's result does not depend on which process analysed it: scale-out shares reproduce the
single-process analysis exactly. Observers (the selection stage's hashes / embeddings / EL2N,
the patch dropper's maps) see every batch through :class:`AnalyseHooks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dcqformat.encode.assign import pixels_to_working
from dcqformat.encode.features import pooled_features
from dcqformat.encode.gradcam import compute_cams, top_fraction_masks, upsample_cam
from dcqformat.encode.images import is_grey, to_channels
from dcqformat.encode.model import TaskModel
from dcqformat.encode.palettes import dominant_colours, image_palettes, pick_points
from dcqformat.encode.patchdrop import PatchDropper
from dcqformat.encode.selection_stage import SelectionStage
from dcqformat.encode.sources import image_digest
from dcqformat.encode.stages.context import STREAMS, RunContext, block_seed

__all__ = ["Analysis", "AnalyseHooks", "analyse", "LARGE_GROUP_PIXELS", "BATCH_PIXELS"]

#: A group of same-size images with more pixels than this converts to LAB only the pixels the
#: per-image k-means samples (bounded memory for large images; identical palettes).
LARGE_GROUP_PIXELS = 1 << 22
#: An analyse batch is cut early when its images hold more pixels than this (the random
#: streams continue within the block, so the cut depends only on the images' sizes).
BATCH_PIXELS = 1 << 24

Dominant = tuple[int, np.ndarray, float]  # colour bin key, RGB, share of the image's pixels


@dataclass
class AnalyseHooks:
    """What else watches the analyse pass (both optional)."""

    selection: SelectionStage | None = None
    dropper: PatchDropper | None = None


@dataclass
class Analysis:
    """Per readable image, in listing order (``positions`` are listing positions)."""

    positions: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)   # per batch [B, D] (clustering)
    centers: list[torch.Tensor] = field(default_factory=list)  # per batch [B, K, 3] LAB
    counts: list[torch.Tensor] = field(default_factory=list)   # per batch [B, K]
    dominant: list[Dominant] = field(default_factory=list)
    all_grey: bool = True
    degenerate: int = 0
    target_rule: str = "label"

    def __len__(self) -> int:
        return len(self.positions)

    def feature_matrix(self) -> np.ndarray:
        """The clustering features ``[n, D]``."""
        return np.concatenate(self.features)

    def palette_points(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image palettes ``[n, K, 3]`` (LAB) and counts ``[n, K]``."""
        return torch.cat(self.centers), torch.cat(self.counts)

    def to_wire(self) -> dict[str, Any]:
        """A compact picklable form (one array per field) for collectives."""
        dom = self.dominant
        return {
            "positions": np.asarray(self.positions, np.int64),
            "heights": np.asarray(self.heights, np.int32), "widths": np.asarray(self.widths, np.int32),
            "digests": b"".join(self.digests),
            "features": np.concatenate(self.features) if self.features else None,
            "centers": torch.cat(self.centers).numpy() if self.centers else None,
            "counts": torch.cat(self.counts).numpy() if self.counts else None,
            "dominant": (np.array([d[0] for d in dom], np.int64),
                         np.stack([d[1] for d in dom]) if dom else np.zeros((0, 3), np.uint8),
                         np.array([d[2] for d in dom], np.float64)),
            "all_grey": self.all_grey, "degenerate": self.degenerate,
            "target_rule": self.target_rule,
        }

    @classmethod
    def from_wire(cls, w: dict[str, Any]) -> Analysis:
        """Inverse of :meth:`to_wire`."""
        d = w["digests"]
        keys, rgb, share = w["dominant"]
        return cls(w["positions"].tolist(), w["heights"].tolist(), w["widths"].tolist(),
                   [d[i:i + 32] for i in range(0, len(d), 32)],
                   [] if w["features"] is None else [w["features"]],
                   [] if w["centers"] is None else [torch.from_numpy(w["centers"])],
                   [] if w["counts"] is None else [torch.from_numpy(w["counts"])],
                   [(int(k), c, float(s)) for k, c, s in zip(keys, rgb, share, strict=True)],
                   bool(w["all_grey"]), int(w["degenerate"]), str(w["target_rule"]))

    @staticmethod
    def merge(parts: Sequence[Analysis]) -> Analysis:
        """The analyses of disjoint shares joined in listing order (torchrun's gather)."""
        pos = np.concatenate([np.asarray(p.positions, np.int64) for p in parts])
        order = np.argsort(pos, kind="stable")

        def rows(name: str) -> list[Any]:
            flat = [x for p in parts for x in getattr(p, name)]
            return [flat[o] for o in order] if flat else []

        def stacked(name: str, cat: Any) -> list[Any]:
            got = [x for p in parts for x in getattr(p, name)]
            return [cat(got)[order]] if got else []

        out = Analysis(pos[order].tolist(), rows("heights"), rows("widths"), rows("digests"),
                       stacked("features", np.concatenate), stacked("centers", torch.cat),
                       stacked("counts", torch.cat), rows("dominant"))
        out.all_grey = all(p.all_grey for p in parts)
        out.degenerate = sum(p.degenerate for p in parts)
        out.target_rule = ("predicted" if any(p.target_rule == "predicted" for p in parts)
                           else parts[0].target_rule)
        return out


def analyse(ctx: RunContext, positions: Sequence[int], task: TaskModel | None,
            hooks: AnalyseHooks, *, need_features: bool, features_only: bool = False) -> Analysis:
    """Analyse the images at listing ``positions`` (ascending; unreadable ones are skipped or
    raise per ``on_error``). ``features_only`` (shard runs): only the clustering features."""
    out = Analysis()
    batcher = _BatchAnalyser(ctx, task, hooks, out, need_features, features_only)
    bs = ctx.opts.batch_size
    with ctx.timer.stage("analyse"):
        bar = ctx.bar(len(ctx.source), "analyse")
        batch: list[tuple[int, np.ndarray]] = []
        batch_px = 0
        for pos, got in ctx.load_many([p for p in positions if p not in ctx.skipped]):
            bar.update(1)
            if not isinstance(got, np.ndarray):
                ctx.fail_or_skip(pos, got)
                continue
            out.all_grey = out.all_grey and is_grey(got)
            out.positions.append(pos)
            out.heights.append(got.shape[0])
            out.widths.append(got.shape[1])
            out.digests.append(image_digest(got, int(ctx.source.labels[pos])))
            px = got.shape[0] * got.shape[1]
            if batch and (pos // bs != batch[0][0] // bs or batch_px + px > BATCH_PIXELS):
                batcher.run(batch)  # a batch is a block of batch_size listing positions
                batch, batch_px = [], 0
            batch.append((pos, got))
            batch_px += px
        if batch:
            batcher.run(batch)
        bar.close()
    return out


class _BatchAnalyser:
    """Model pass, masks and per-image palettes for one batch (same-size images together)."""

    def __init__(self, ctx: RunContext, task: TaskModel | None, hooks: AnalyseHooks,
                 out: Analysis, need_features: bool, features_only: bool) -> None:
        self.ctx, self.task, self.hooks, self.out = ctx, task, hooks, out
        self.need_features, self.features_only = need_features, features_only
        self.mask_gen = ctx.generator("mask", torch.device("cpu"))
        self.pal_gen = ctx.generator("image_palette")
        self.n_classes = len(ctx.source.classes)
        self.block = -1

    def run(self, batch: list[tuple[int, np.ndarray]]) -> None:
        """Analyse one batch: the model pass (features, selection scores, attention maps), then,
        unless ``features_only``, the dedup hashes and the per-image palettes."""
        o = self.ctx.opts
        arrs = [a for _, a in batch]
        blk = batch[0][0] // o.batch_size  # random streams per block: shard-independent
        if blk != self.block:  # a block cut by BATCH_PIXELS continues its streams
            self.block = blk
            self.mask_gen.manual_seed(block_seed(o.seed, STREAMS["mask"], blk))
            self.pal_gen.manual_seed(block_seed(o.seed, STREAMS["image_palette"], blk))
        labels = [int(self.ctx.source.labels[p]) for p, _ in batch]
        cams = self._model_pass(arrs, labels) if self.task is not None else None
        if self.features_only:  # shard runs: palettes come from the fit state
            return
        if self.hooks.selection is not None:
            self.hooks.selection.observe_images(arrs)
        self._palettes(arrs, cams)

    def _model_pass(self, arrs: list[np.ndarray], labels: list[int]) -> torch.Tensor | None:
        o, task, dropper = self.ctx.opts, self.task, self.hooks.dropper
        assert task is not None
        x = torch.cat([task.prepare(torch.from_numpy(a).permute(2, 0, 1)[None]) for a in arrs])
        cams = None
        with torch.set_grad_enabled(o.attention or dropper is not None):
            logits, shallow, last = task.forward_maps(x)
            if self.need_features:
                self.out.features.append(pooled_features(shallow).cpu().numpy())
            sel = self.hooks.selection
            if sel is not None and sel.needs_model:
                sel.observe_model(x, logits, last, labels, self.n_classes)
            if (o.attention or dropper is not None) and not self.features_only:
                if logits.shape[1] == self.n_classes:
                    targets = torch.tensor(labels)
                else:
                    self.out.target_rule = "predicted"
                    targets = logits.detach().argmax(1).cpu()
                cams = compute_cams(logits, last, targets).detach()
                if dropper is not None:  # patch importance: the same maps
                    dropper.record(cams, last)
                    cams = cams if o.attention else None
        return cams

    def _palettes(self, arrs: list[np.ndarray], cams: torch.Tensor | None) -> None:
        o, k = self.ctx.opts, self.ctx.opts.palette_size
        n = len(arrs)
        points: list[torch.Tensor] = [torch.empty(0)] * n
        weights: list[torch.Tensor | None] = [None] * n
        sampled: list[int | None] = [None] * n
        large: list[tuple[int, np.ndarray, torch.Tensor | None]] = []
        dom: list[Dominant] = [(0, np.zeros(3, np.uint8), 0.0)] * n
        for shape, members in _by_shape(arrs).items():
            stack = (to_channels(arrs[members[0]], 3)[None] if len(members) == 1 else
                     np.stack([to_channels(arrs[i], 3) for i in members]))
            if o.reserve_share is not None:
                dkey, drgb, dshare = dominant_colours(stack)
                for j, i in enumerate(members):
                    dom[i] = (int(dkey[j]), drgb[j], float(dshare[j]))
            masks = None
            if cams is not None:
                up = upsample_cam(cams[members], shape)
                masks, degen = top_fraction_masks(up, o.attention_fraction, self.mask_gen)
                self.out.degenerate += int(degen.sum())
                masks = masks.reshape(len(members), -1)
                del up
            if stack.size // 3 > LARGE_GROUP_PIXELS:  # convert only the pixels k-means will see
                large.extend((i, stack[j].reshape(-1, 3), None if masks is None else masks[j])
                             for j, i in enumerate(members))
                continue
            pix = pixels_to_working(stack, self.ctx.device).reshape(len(members), -1, 3)
            for j, i in enumerate(members):
                m = None if masks is None else masks[j].to(pix.device)
                points[i], weights[i] = self._points(pix[j], m)
        for i, flat, m in sorted(large, key=lambda t: t[0]):  # image order: the draws' order
            points[i], weights[i], sampled[i] = self._sampled_points(flat, m)
        c, cnt = image_palettes(points, k, weights=weights, max_points=o.max_points_per_image,
                                generator=self.pal_gen, sampled_from=sampled)
        self.out.centers.append(c.cpu())
        self.out.counts.append(cnt.cpu())
        self.out.dominant.extend(dom)

    def _points(self, pix: torch.Tensor, mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """An image's palette points and weights: every pixel (weight 1 where attended,
        ``context_weight`` elsewhere), or only the attended ones when that weight is 0."""
        cw = float(self.ctx.opts.context_weight)
        if mask is None:
            return pix, None
        if cw > 0:
            return pix, torch.where(mask, 1.0, cw)
        return pix[mask], None

    def _sampled_points(self, flat: np.ndarray, mask: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
        """:meth:`_points` for a large image, converting only the pixels
        :func:`~dcqformat.encode.palettes.pick_points` picks (same draws, same result)."""
        dev, cw = self.ctx.device, float(self.ctx.opts.context_weight)
        rows = None if mask is None or cw > 0 else mask.nonzero()[:, 0]
        n = flat.shape[0] if rows is None else int(rows.numel())
        pick = pick_points(n, self.ctx.opts.max_points_per_image, self.pal_gen)
        if pick is not None:
            rows = pick.cpu() if rows is None else rows[pick.cpu()]
        chosen = flat if rows is None else flat[rows.numpy()]
        pix = pixels_to_working(np.ascontiguousarray(chosen), dev)
        w = None
        if mask is not None and cw > 0:
            w = torch.where(mask if rows is None else mask[rows], 1.0, cw).to(dev)
        return pix, w, None if pick is None else n


def _by_shape(arrs: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Positions of the arrays grouped by ``(H, W)``, in first-seen order."""
    out: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrs):
        out.setdefault((int(a.shape[0]), int(a.shape[1])), []).append(i)
    return out
