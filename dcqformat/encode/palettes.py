"""Palettes in CIE LAB (docs/method.md §1 step 4) and their sRGB storage form.

- :func:`image_palettes`: per image, weighted k-means (K colours) of its selected pixels in the
  working space, giving a palette and (weighted) pixel counts. The pipeline passes every pixel with
  weight 1 for the attended ones and a small ``context_weight`` for the rest (ours: attention-only
  palettes drop flat backgrounds -- 42 % of emoji64's pixels are white -- so the decoded training
  images get tinted backgrounds the test images do not have), or only the attended pixels when
  that weight is 0. Images with more than ``max_points`` points use a seeded uniform subsample of
  ``max_points`` of them, each weighted so the counts still sum to the total weight (ours: bounds
  the cost on large images).
- :func:`shared_palettes`: per group (image cluster, or one group for ``palette="global"``),
  count-weighted k-means (K) over the per-image palettes of its members. Optionally one entry is
  reserved for the group's dominant flat colour (below).
- :func:`dominant_colours` / :func:`reserved_colours` (ours): the most frequent colour of each
  image (6-bit-per-channel bins, mean colour of the top bin) and its share of the pixels; a group
  whose members' dominant colours (same bin) cover at least ``min_share`` of their pixels keeps
  that colour exactly as one palette entry, and the other K-1 entries come from the count-weighted
  k-means of the member palette colours farther than ``RESERVE_RADIUS`` (LAB) from it. Without
  this, the shared k-means averages a white (or black) background with the pale object colours
  of other members into a tinted colour, so a model trains on tinted backgrounds and is tested
  on white ones (emoji64: 42 % of pixels are white; see
  ``benchmarks/results/train_probe_diagnosis.md``). Photos rarely have a colour covering 20 % of
  their pixels, so for them nothing changes.
- :func:`palette_to_uint8`: working-space centres -> stored uint8 sRGB (or grey), clipped and
  rounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcqformat.encode.color import from_working_space
from dcqformat.encode.kmeans import kmeans, kmeans_batched
from dcqformat.errors import InvalidArgumentError

__all__ = ["image_palettes", "pick_points", "shared_palettes", "palette_to_uint8", "dominant_colours",
           "reserved_colours", "RESERVE_RADIUS"]

RESERVE_RADIUS = 12.0
"""Member palette colours closer than this (working-space distance: CIE76 ΔE, or L* for grey)
to a reserved colour are represented by it and left out of the k-means for the other entries."""


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def pick_points(n: int, max_points: int, generator: torch.Generator | None,
                device: torch.device | str = "cpu") -> torch.Tensor | None:
    """The seeded uniform subsample (sorted int64 indices) :func:`image_palettes` draws for an
    image of ``n`` points; None when it uses all of them (``n <= max_points``)."""
    if n <= max_points:
        return None
    pick = torch.randperm(n, generator=generator, device=_gen_device(generator))
    return pick[:max_points].sort().values.to(device)


def image_palettes(
    points: Sequence[torch.Tensor],
    k: int,
    *,
    weights: Sequence[torch.Tensor | None] | None = None,
    max_points: int = 4096,
    n_init: int = 1,
    max_iter: int = 30,
    generator: torch.Generator | None = None,
    sampled_from: Sequence[int | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One palette per image from its working-space pixels ``points[b] [P_b, C]``, optionally
    weighted per pixel by ``weights[b] [P_b]`` (non-negative; None = all 1).

    ``sampled_from[b]`` (optional, large images): ``points[b]``/``weights[b]`` are already the
    :func:`pick_points` subsample of an image of that many points (drawn by the caller from
    ``generator``, in image order), so only the picked pixels were ever converted; the result
    is identical to passing every point.

    Returns ``centers [B, k, C]`` and ``counts [B, k]`` (float; sum = the image's total weight,
    P_b when unweighted).
    """
    if not points:
        raise InvalidArgumentError("image_palettes needs at least one image")
    if weights is not None and len(weights) != len(points):
        raise InvalidArgumentError(f"image_palettes got {len(points)} point sets but {len(weights)} weight sets")
    dev = points[0].device
    c = points[0].shape[1]
    sel: list[torch.Tensor] = []
    wts: list[torch.Tensor] = []
    for b, p in enumerate(points):
        n = p.shape[0]
        pw = None if weights is None else weights[b]
        if pw is None:
            pw = torch.ones(n, dtype=torch.float32, device=dev)
        elif pw.shape != (n,):
            raise InvalidArgumentError(f"weights[{b}] has shape {tuple(pw.shape)}, expected ({n},)")
        if n == 0 or float(pw.sum()) <= 0:
            raise InvalidArgumentError("an image contributed no pixels to its palette")
        full = None if sampled_from is None else sampled_from[b]
        if full is not None:  # the caller picked the points (pick_points) before converting
            sel.append(p)
            wts.append(pw.to(dev, torch.float32) * (full / max_points))
        elif n > max_points:
            pick = pick_points(n, max_points, generator, dev)
            assert pick is not None
            sel.append(p[pick])
            wts.append(pw.to(dev, torch.float32)[pick] * (n / max_points))
        else:
            sel.append(p)
            wts.append(pw.to(dev, torch.float32))
    pmax = max(s.shape[0] for s in sel)
    x = torch.zeros(len(sel), pmax, c, dtype=torch.float32, device=dev)
    w = torch.zeros(len(sel), pmax, dtype=torch.float32, device=dev)
    for i, (s, wt) in enumerate(zip(sel, wts, strict=True)):
        x[i, : s.shape[0]] = s
        w[i, : s.shape[0]] = wt
    r = kmeans_batched(x, k, weights=w, n_init=n_init, max_iter=max_iter, tol=1e-4,
                       generator=generator)
    return r.centers, r.counts


def shared_palettes(
    palettes: torch.Tensor,
    counts: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    k: int,
    *,
    n_init: int = 4,
    generator: torch.Generator | None = None,
    reserved: torch.Tensor | None = None,
    has_reserved: torch.Tensor | None = None,
) -> torch.Tensor:
    """Count-weighted k-means over the per-image palettes of each group.

    ``palettes [N, K', C]``, ``counts [N, K']``, ``groups [N]`` (0..n_groups-1) ->
    ``[n_groups, k, C]``. An empty group gets the palette of all images (it is never used by a
    sample, but the file still stores one palette per cluster). Where ``has_reserved[g]``, entry 0
    is ``reserved[g]`` (working space) and entries 1..k-1 come from the member colours farther
    than :data:`RESERVE_RADIUS` from it (all member colours when none is).
    """
    n, kk, c = palettes.shape
    out = torch.empty(n_groups, k, c, dtype=palettes.dtype, device=palettes.device)
    for g in range(n_groups):
        members = (groups == g).nonzero()[:, 0]
        if len(members) == 0:
            members = torch.arange(n, device=palettes.device)
        pts = palettes[members].reshape(-1, c)
        wts = counts[members].reshape(-1)
        if float(wts.sum()) <= 0:
            wts = torch.ones_like(wts)
        if reserved is None or has_reserved is None or not bool(has_reserved[g]) or k < 2:
            out[g] = kmeans(pts, k, weights=wts, n_init=n_init, generator=generator).centers
            continue
        res = reserved[g].to(pts)
        far = ((pts - res) ** 2).sum(-1) > RESERVE_RADIUS**2
        if bool(far.any()) and float(wts[far].sum()) > 0:
            pts, wts = pts[far], wts[far]
        out[g, 0] = res
        out[g, 1:] = kmeans(pts, k - 1, weights=wts, n_init=n_init, generator=generator).centers
    return out


def dominant_colours(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-size uint8 ``[B, H, W, 3]`` -> per image the bin key (int64; 6 bits per channel),
    the mean uint8 colour ``[B, 3]`` and the pixel share (float64) of its most frequent bin
    (ties: the lowest key)."""
    b = images.shape[0]
    px = images.reshape(b, -1, 3)
    n = px.shape[1]
    out_key = np.empty(b, np.int64)
    out_rgb = np.empty((b, 3), np.uint8)
    share = np.empty(b, np.float64)
    step = 1 << 22  # pixels per chunk: memory stays bounded however large the image
    for i in range(b):
        cnt = np.zeros(1 << 18, np.int64)
        for s in range(0, n, step):
            cnt += np.bincount(_colour_keys(px[i, s:s + step]), minlength=1 << 18)
        top = int(np.argmax(cnt))  # the first maximum: the lowest key
        sums = np.zeros(3, np.int64)
        for s in range(0, n, step):
            chunk = px[i, s:s + step]
            sums += chunk[_colour_keys(chunk) == top].sum(0, dtype=np.int64)
        out_key[i] = top
        out_rgb[i] = np.round(sums / cnt[top])  # exact integer sums: the mean colour of the bin
        share[i] = cnt[top] / n
    return out_key, out_rgb, share


def _colour_keys(px: np.ndarray) -> np.ndarray:
    """6-bit-per-channel bin keys (int32) of uint8 RGB pixels ``[P, 3]``."""
    return (((px[:, 0] >> 2).astype(np.int32) << 12) | ((px[:, 1] >> 2).astype(np.int32) << 6)
            | (px[:, 2] >> 2))


def reserved_colours(
    keys: np.ndarray, rgb: np.ndarray, share: np.ndarray, groups: np.ndarray, n_groups: int,
    min_share: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the dominant colour to reserve (module docstring): uint8 ``[n_groups, 3]`` and
    bool ``[n_groups]`` (whether the group has one). The colour is the share-weighted mean of the
    members' dominant colours in the winning bin; the bin wins with the largest summed share, and
    is kept when that sum divided by the group size is at least ``min_share``."""
    out = np.zeros((n_groups, 3), np.uint8)
    has = np.zeros(n_groups, bool)
    for g in range(n_groups):
        m = np.flatnonzero(groups == g)
        if len(m) == 0:
            continue
        uniq, inv = np.unique(keys[m], return_inverse=True)
        inv = inv.reshape(-1)
        tot = np.bincount(inv, weights=share[m], minlength=len(uniq))
        top = int(np.argmax(tot))
        if tot[top] / len(m) < min_share:
            continue
        sel = m[inv == top]
        wsel = share[sel][:, None]
        out[g] = np.round((rgb[sel].astype(np.float64) * wsel).sum(0) / wsel.sum()).astype(np.uint8)
        has[g] = True
    return out, has


def palette_to_uint8(centers: torch.Tensor) -> np.ndarray:
    """Working-space centres ``[..., K, C]`` -> uint8 sRGB/grey ``[..., K, C]`` (rounded)."""
    rgb = from_working_space(centers.detach().double().cpu())
    return np.asarray(torch.round(rgb.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy())
