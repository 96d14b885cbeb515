"""Grad-CAM++ attention and the attention mask (docs/method.md §1 step 3).

:func:`gradcam_pp` implements the Grad-CAM++ weighting (Chattopadhay et al. 2018, the closed form
used by pytorch-grad-cam): with activations ``A`` of the last conv block and gradients ``G`` of
the target class score w.r.t. ``A``,

    alpha = G² / (2 G² + Σ_ij A · G³),   w_k = Σ_ij alpha · relu(G),   cam = relu(Σ_k w_k A_k).

The target is the image's true label (or, for a model whose outputs do not match the dataset's
classes, its top-1 prediction; the pipeline records which). :func:`upsample_cam` resizes the map
bilinearly (``align_corners=False``) to the image size; :func:`top_fraction_mask` keeps exactly
``round(fraction · H · W)`` pixels (at least one) with the highest attention.

Ties at the threshold (flat regions, e.g. where the ReLU zeroes the map) are broken by a seeded
random draw rather than raster order, so a half-flat map does not select the top half of the image. A map
that is constant everywhere carries no information: the mask then keeps every pixel and
:func:`top_fraction_mask` reports it as degenerate.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dcqformat.errors import InvalidArgumentError

__all__ = ["gradcam_pp", "compute_cams", "upsample_cam", "top_fraction_mask", "top_fraction_masks"]


def gradcam_pp(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ maps ``[B, h, w]`` (non-negative) from ``[B, K, h, w]`` activations and grads."""
    a = activations.detach().float()
    g = grads.detach().float()
    g2 = g * g
    g3 = g2 * g
    sum_a = a.sum((2, 3), keepdim=True)
    denom = 2.0 * g2 + sum_a * g3
    denom = torch.where(denom != 0, denom, torch.ones_like(denom))
    alpha = torch.where(g != 0, g2 / denom, torch.zeros_like(g))
    weights = (alpha * F.relu(g)).sum((2, 3), keepdim=True)
    return F.relu((weights * a).sum(1))


def compute_cams(
    logits: torch.Tensor, last_map: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM++ of ``logits[b, targets[b]]`` w.r.t. ``last_map`` (both from one forward pass)."""
    score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
    (grads,) = torch.autograd.grad(score, last_map, retain_graph=False)
    return gradcam_pp(last_map, grads)


def upsample_cam(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[h, w]`` or ``[B, h, w]`` map -> bilinear ``[H, W]`` / ``[B, H, W]``."""
    squeeze = cam.ndim == 2
    c = cam[None] if squeeze else cam
    out = F.interpolate(c[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    return out[0] if squeeze else out


def top_fraction_masks(
    cams: torch.Tensor, fraction: float = 0.5, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise :func:`top_fraction_mask` for a batch of equal-size maps ``[G, H, W]``: returns
    the boolean masks ``[G, H, W]`` and the degenerate flags ``[G]``. Rows are processed in
    order, so the result for a row does not depend on which rows share its batch only through
    the generator's state (which advances only where ties must be broken)."""
    if not 0.0 < fraction <= 1.0:
        raise InvalidArgumentError(f"fraction must be in (0, 1], got {fraction}")
    g = cams.shape[0]
    flat = cams.reshape(g, -1)
    n = flat.shape[1]
    if n == 0:
        return torch.zeros_like(cams, dtype=torch.bool), torch.ones(g, dtype=torch.bool)
    finite = torch.isfinite(flat).all(1)
    spread = torch.where(finite, flat.amax(1) - flat.amin(1), torch.zeros(g, device=flat.device))
    degenerate = (spread <= 0) | ~finite
    keep = min(n, max(1, round(fraction * n)))
    if keep == n:
        return torch.ones_like(cams, dtype=torch.bool), degenerate.cpu()
    # The keep-th largest value per row: everything above it is in, ties at it drawn at random.
    thresh = _kth_smallest(flat.cpu(), n - keep).to(flat.device)
    mask = flat > thresh[:, None]
    missing = (keep - mask.sum(1)).tolist()
    dev = torch.device("cpu") if generator is None else generator.device
    for r in range(g):
        if bool(degenerate[r]):
            mask[r] = True
        elif missing[r] > 0:
            ties = (flat[r] == thresh[r]).nonzero()[:, 0]
            pick = torch.randperm(len(ties), generator=generator, device=dev)[: missing[r]]
            mask[r, ties[pick.to(flat.device)]] = True
    return mask.view(cams.shape), degenerate.cpu()


#: Maps with more pixels than this find their threshold with numpy's partition (one float32
#: copy) instead of torch's kthvalue (which also allocates int64 indices): the same value.
PARTITION_MIN_PIXELS = 1 << 22


def _kth_smallest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """Per row of ``flat [G, n]`` its ``k``-th smallest value (0-based), as kthvalue gives."""
    if flat.shape[1] <= PARTITION_MIN_PIXELS:
        return torch.kthvalue(flat, k + 1, dim=1).values
    return torch.from_numpy(np.stack([np.partition(r, k)[k] for r in flat.numpy()]))


def top_fraction_mask(
    cam: torch.Tensor, fraction: float = 0.5, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, bool]:
    """Boolean mask (shape of ``cam``) of the ``round(fraction · numel)`` most attended pixels
    (at least 1), and whether the map was degenerate (constant; then every pixel is kept)."""
    masks, degenerate = top_fraction_masks(cam[None], fraction, generator)
    return masks[0], bool(degenerate[0])
