"""Palettes in CIE LAB (METHOD.md §1 step 4) and their sRGB storage form.

- :func:`image_palettes`: per image, weighted k-means (K colours) of its attended pixels in the
  working space, giving a palette and pixel counts. Images with more than ``max_points`` attended
  pixels use a seeded uniform subsample of ``max_points`` of them, each weighted so the counts
  still sum to the number of attended pixels (ours: bounds the cost on large images).
- :func:`shared_palettes`: per group (image cluster, or one group for ``palette="global"``),
  count-weighted k-means (K) over the per-image palettes of its members.
- :func:`palette_to_uint8`: working-space centres -> stored uint8 sRGB (or grey), clipped and
  rounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcqformat.encode.color import from_working_space
from dcqformat.encode.kmeans import kmeans, kmeans_batched

__all__ = ["image_palettes", "shared_palettes", "palette_to_uint8"]


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def image_palettes(
    points: Sequence[torch.Tensor],
    k: int,
    *,
    max_points: int = 4096,
    n_init: int = 1,
    max_iter: int = 30,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One palette per image from its selected working-space pixels ``points[b] [P_b, C]``.

    Returns ``centers [B, k, C]`` and ``counts [B, k]`` (float; sum = P_b per image).
    """
    if not points:
        raise ValueError("image_palettes needs at least one image")
    dev = points[0].device
    c = points[0].shape[1]
    sel: list[torch.Tensor] = []
    wts: list[float] = []
    for p in points:
        n = p.shape[0]
        if n == 0:
            raise ValueError("an image contributed no pixels to its palette")
        if n > max_points:
            pick = torch.randperm(n, generator=generator, device=_gen_device(generator))
            pick = pick[:max_points].sort().values.to(dev)
            sel.append(p[pick])
            wts.append(n / max_points)
        else:
            sel.append(p)
            wts.append(1.0)
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
) -> torch.Tensor:
    """Count-weighted k-means over the per-image palettes of each group.

    ``palettes [N, K', C]``, ``counts [N, K']``, ``groups [N]`` (0..n_groups-1) ->
    ``[n_groups, k, C]``. An empty group gets the palette of all images (it is never used by a
    sample, but the file still stores one palette per cluster).
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
        out[g] = kmeans(pts, k, weights=wts, n_init=n_init, generator=generator).centers
    return out


def palette_to_uint8(centers: torch.Tensor) -> np.ndarray:
    """Working-space centres ``[..., K, C]`` -> uint8 sRGB/grey ``[..., K, C]`` (rounded)."""
    rgb = from_working_space(centers.detach().double().cpu())
    return np.asarray(torch.round(rgb.clamp(0.0, 1.0) * 255.0).to(torch.uint8).numpy())
