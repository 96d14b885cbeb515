"""Patch dropping for ``convert`` (docs/method.md §3): which patches of each image to store.

Two modes (``patch_drop=``):

``"fixed:θ"`` (DQ)
    Patch importance = the mean Grad-CAM++ attention of the task model over the patch (the map of
    the analyse pass, upsampled bilinearly to the image); the ``round(θ·G)`` lowest-ranked of the
    ``G`` patches are dropped (ties: the lower patch number first; at least one patch is kept).

``"spd"`` (BGFDQ, semantic offset)
    Features f = the task model's pooled last conv block (its penultimate features) of the analyse
    pass. Per class, λ_C = mean of the :data:`SPD_NEAREST` (50) smallest non-zero Euclidean
    distances between two images of the class (each pair once; blockwise, never an N×N matrix).
    Per image, for θ in :data:`SPD_THETAS` (10 %..90 %) the same importance ranking drops
    ``round(θ·G)`` patches, each dropped patch is filled with its own mean colour, and the
    largest θ whose feature shift ‖f(x) − f(x_θ)‖ stays below λ_C is kept; θ = 0 when none does.

Patch size (``patch_size=None``): ``max(4, s // 8)`` with ``s`` the smallest image side of the
dataset (:func:`default_patch_size`), i.e. an 8×8 grid for square images of 32 px and up, 4 px
patches for smaller ones (Fashion-MNIST 28×28: 4 px, a 7×7 grid; emoji64: 8 px, 8×8).

The fill colour stored per dropped patch is chosen by the writer
(:func:`dcqformat.format.masks.most_common_fills`: the palette index most frequent in the
patch's quantized pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dcqformat.encode.gradcam import upsample_cam
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.masks import (
    check_patch_size,
    grid_shape,
    most_common_fills,
    patch_areas,
    patch_ids,
)

__all__ = ["PatchDropSpec", "PatchDropper", "parse_patch_drop", "default_patch_size", "patch_scores",
           "drop_lowest", "class_lambdas", "fill_patch_means", "SPD_THETAS", "SPD_NEAREST"]

SPD_THETAS = tuple(round(0.1 * k, 1) for k in range(1, 10))
SPD_NEAREST = 50


@dataclass(frozen=True)
class PatchDropSpec:
    """A parsed ``patch_drop`` argument: ``mode`` ``"fixed"`` (with ``theta``) or ``"spd"``."""

    mode: str
    theta: float = 0.0

    def text(self) -> str:
        """The spec as ``patch_drop`` text: ``"fixed:THETA"`` (THETA in ``%g``) or ``"spd"``."""
        return f"fixed:{self.theta:g}" if self.mode == "fixed" else "spd"


def parse_patch_drop(spec: Any) -> PatchDropSpec | None:
    """``None``/``"none"`` -> None; ``"fixed:0.25"`` -> fixed θ in (0, 1); ``"spd"``."""
    if spec is None or spec == "none":
        return None
    if isinstance(spec, PatchDropSpec):
        return spec
    if not isinstance(spec, str):
        raise InvalidArgumentError(f"patch_drop must be 'fixed:THETA', 'spd' or None, got {spec!r}")
    if spec == "spd":
        return PatchDropSpec("spd")
    if spec.startswith("fixed:"):
        try:
            theta = float(spec[6:])
        except ValueError:
            theta = float("nan")
        if not 0.0 < theta < 1.0:
            raise InvalidArgumentError(f"patch_drop fixed:THETA needs 0 < THETA < 1, got {spec!r}")
        return PatchDropSpec("fixed", theta)
    raise InvalidArgumentError(f"patch_drop must be 'fixed:THETA', 'spd' or None, got {spec!r}")


def default_patch_size(heights: Sequence[int], widths: Sequence[int]) -> int:
    """``max(4, s // 8)`` with ``s`` the smallest side of any image."""
    s = min(min(heights), min(widths)) if len(heights) else 32
    return max(4, int(s) // 8)


def patch_scores(cams: torch.Tensor, size: tuple[int, int], p: int) -> np.ndarray:
    """Mean attention per patch, float64 ``[B, G]``, of low-resolution maps ``[B, h, w]``
    upsampled bilinearly to ``size`` (edge patches: the mean over their clipped pixels)."""
    h, w = size
    up = upsample_cam(cams.float(), (h, w)).double().cpu().numpy()  # [B, H, W]
    gh, gw = grid_shape(h, w, p)
    pad = np.zeros((up.shape[0], gh * p, gw * p))
    pad[:, :h, :w] = up
    sums = pad.reshape(up.shape[0], gh, p, gw, p).sum((2, 4)).reshape(up.shape[0], -1)
    return sums / patch_areas(h, w, p).reshape(1, -1)


def drop_lowest(scores: np.ndarray, theta: float) -> np.ndarray:
    """Keep mask ``[G]``: the ``min(G - 1, round(θ·G))`` lowest scores dropped (stable order)."""
    g = scores.shape[0]
    n_drop = min(g - 1, int(round(theta * g)))
    keep = np.ones(g, bool)
    if n_drop > 0:
        keep[np.argsort(scores, kind="stable")[:n_drop]] = False
    return keep


def class_lambdas(features: np.ndarray, labels: np.ndarray, n_classes: int, k: int = SPD_NEAREST,
                  block: int = 1024) -> np.ndarray:
    """λ_C per class, float64 ``[n_classes]``: the mean of the ``k`` smallest non-zero distances
    between two different images of the class (0 when it has no such pair)."""
    out = np.zeros(n_classes)
    feats = torch.from_numpy(np.ascontiguousarray(features, np.float64))
    for c in range(n_classes):
        x = feats[torch.from_numpy(labels == c)]
        m = x.shape[0]
        best = torch.empty(0, dtype=torch.float64)
        for i0 in range(0, m, block):
            d = torch.cdist(x[i0:i0 + block], x)  # [b, m]
            rows = torch.arange(i0, min(i0 + block, m))[:, None]
            upper = torch.arange(m)[None, :] > rows  # each pair once
            vals = d[upper & (d > 1e-12)]
            if vals.numel():
                best = torch.cat([best, torch.topk(vals, min(k, vals.numel()), largest=False).values])
                best = torch.topk(best, min(k, best.numel()), largest=False).values
        out[c] = float(best.mean()) if best.numel() else 0.0
    return out


def fill_patch_means(images: np.ndarray, keeps: np.ndarray, p: int) -> np.ndarray:
    """Float32 copy of ``images`` ``[B, H, W, C]`` with every dropped patch (``keeps`` ``[B, G]``
    False) replaced by that patch's mean colour."""
    b, h, w, c = images.shape
    gh, gw = grid_shape(h, w, p)
    pid = patch_ids(h, w, p).reshape(-1)
    x = images.reshape(b, h * w, c).astype(np.float32)
    sums = np.zeros((b, gh * gw, c), np.float32)
    for j in range(b):
        np.add.at(sums[j], pid, x[j])
    means = sums / patch_areas(h, w, p).reshape(1, -1, 1)
    out = x.copy()
    dropped_px = ~keeps[:, pid]  # [B, H*W]
    out[dropped_px] = means[:, pid][dropped_px]
    return out.reshape(b, h, w, c)


@dataclass
class PatchDropper:
    """State of patch dropping across the passes of ``convert``.

    ``record`` (analyse pass, per batch): keep the low-resolution Grad-CAM++ maps and the pooled
    last-block features. ``finish`` (after analyse): patch size and, for spd, λ per class.
    ``decide`` (write pass, per batch of same-size images): keep masks and θ."""

    spec: PatchDropSpec
    patch_size: int | None = None
    cams: list[torch.Tensor] = field(default_factory=list)
    feats: list[np.ndarray] = field(default_factory=list)
    lambdas: np.ndarray | None = None
    labels: np.ndarray | None = None
    chosen: list[float] = field(default_factory=list)
    dropped_patches: int = 0
    total_patches: int = 0

    def __post_init__(self) -> None:
        if self.patch_size is not None:
            self.patch_size = check_patch_size(self.patch_size)

    def record(self, cams: torch.Tensor, last_map: torch.Tensor) -> None:
        """Store one analyse batch's maps ``[B, h, w]`` and pooled features ``[B, D]``."""
        for cam in cams.detach().float().cpu():
            self.cams.append(cam)
        self.feats.append(last_map.detach().float().mean((2, 3)).cpu().numpy())

    def finish(self, heights: Sequence[int], widths: Sequence[int], labels: Sequence[int],
               n_classes: int) -> None:
        """Fix the patch size and compute λ_C (spd) once every image was analysed."""
        if self.patch_size is None:
            self.patch_size = default_patch_size(heights, widths)
        self.labels = np.asarray(labels, np.int64)
        self.feats = [np.concatenate(self.feats)] if self.feats else []
        if self.spec.mode == "spd":
            self.lambdas = class_lambdas(self.feats[0], self.labels, n_classes)

    def decide(self, task: Any, positions: Sequence[int], images: np.ndarray
               ) -> list[tuple[np.ndarray, float]]:
        """Keep grids ``[gh, gw]`` and θ for a batch of same-size images ``[B, H, W, C]`` whose
        analyse-order positions are ``positions``."""
        p = self.patch_size
        assert p is not None
        h, w = images.shape[1:3]
        gh, gw = grid_shape(h, w, p)
        scores = patch_scores(torch.stack([self.cams[i] for i in positions]), (h, w), p)
        if self.spec.mode == "fixed":
            thetas = [self.spec.theta] * len(positions)
            keeps = [drop_lowest(s, self.spec.theta) for s in scores]
        else:
            thetas, keeps = self._spd(task, positions, images, scores)
        out = []
        for keep, theta in zip(keeps, thetas, strict=True):
            self.chosen.append(float(theta))
            self.dropped_patches += int((~keep).sum())
            self.total_patches += keep.size
            out.append((keep.reshape(gh, gw), float(theta)))
        return out

    def _spd(self, task: Any, positions: Sequence[int], images: np.ndarray, scores: np.ndarray
             ) -> tuple[list[float], list[np.ndarray]]:
        assert self.lambdas is not None and self.labels is not None and self.patch_size is not None
        feats = self.feats[0]
        pos = np.asarray(positions)
        f0 = torch.from_numpy(feats[pos]).double()
        lam = self.lambdas[self.labels[pos]]
        best = np.zeros(len(pos))
        best_keep = [np.ones(scores.shape[1], bool) for _ in pos]
        for theta in SPD_THETAS:
            keeps = np.stack([drop_lowest(s, theta) for s in scores])
            x = fill_patch_means(images, keeps, self.patch_size)
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).div(255.0)
            with torch.no_grad():
                _logits, _shallow, last = task.forward_maps(task.prepare(xt))
            shift = (last.float().mean((2, 3)).cpu().double() - f0).norm(dim=1).numpy()
            ok = shift < lam
            for j in np.flatnonzero(ok):
                best[j] = theta
                best_keep[j] = keeps[j]
        return best.tolist(), best_keep

    def filled_indices(self, idx: np.ndarray, keep: np.ndarray, palette_size: int) -> np.ndarray:
        """The index map a reader decodes (dropped patches at the writer's default fill)."""
        assert self.patch_size is not None
        keep_flat = keep.reshape(-1)
        if keep_flat.all():
            return idx
        fills = most_common_fills(idx, self.patch_size, keep_flat, palette_size)
        fill_of = np.zeros(keep_flat.size, np.uint8)
        fill_of[~keep_flat] = fills
        h, w = idx.shape
        pid = patch_ids(h, w, self.patch_size)
        return np.where(keep_flat[pid], idx, fill_of[pid]).astype(np.uint8)

    def provenance(self) -> dict[str, Any]:
        """What the provenance records about the dropping."""
        d: dict[str, Any] = {
            "mode": self.spec.mode, "spec": self.spec.text(), "patch_size": self.patch_size,
            "importance": "mean Grad-CAM++ (analyse-pass map, bilinear) per patch; lowest dropped",
            "mean_theta": float(np.mean(self.chosen)) if self.chosen else 0.0,
            "dropped_patch_fraction": self.dropped_patches / self.total_patches if self.total_patches else 0.0,
            "fill": "most frequent palette index of the patch (ties: smallest)",
        }
        if self.spec.mode == "fixed":
            d["theta"] = self.spec.theta
        else:
            d.update(thetas=list(SPD_THETAS), nearest=SPD_NEAREST,
                     features="pooled last conv block of the task model, Euclidean",
                     shift_fill="patch mean colour",
                     lambda_per_class=[float(v) for v in (self.lambdas if self.lambdas is not None else [])],
                     theta_zero_images=int(sum(1 for t in self.chosen if t == 0.0)))
        return d


def mask_overlay(image: np.ndarray, mask: np.ndarray, colour: Sequence[int] = (255, 0, 255)) -> np.ndarray:
    """RGB copy of ``image`` ``[H, W, C]`` for previews: pixels outside ``mask`` (dropped
    patches) blended half-and-half with ``colour``, every other row of them fully coloured."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image.copy()
    tint = np.asarray(colour, np.float32)
    dropped = ~np.asarray(mask, bool)
    rgb[dropped] = ((rgb[dropped].astype(np.float32) + tint) / 2).round().astype(np.uint8)
    hatch = dropped & (np.arange(image.shape[0])[:, None] % 2 == 0)
    rgb[hatch] = tint.astype(np.uint8)
    return rgb
