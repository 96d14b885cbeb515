"""Texture-preserving palette refinement (docs/method.md §1 step 6).

Edge loss on images ``x`` and their quantized versions ``x̂`` (channels in [0, 1], sRGB or grey):

    EL = Σ_c w_c · MSE(Sobel(x)_c, Sobel(x̂)_c)

where Sobel gives the horizontal and vertical 3x3 Sobel responses (replicate padding) and the MSE
averages over both responses and all pixels; ``w_c`` defaults to 1/C.

The palette (``K`` colours in [0, 1]) is optimised with Adam. ``x̂`` uses the hard nearest-colour
assignment (in the working space: LAB or L*) in the forward pass and, through a straight-through
estimator, the gradient of the soft assignment ``softmax(−d/τ)`` in the backward pass:
``x̂ = hard + soft − soft.detach()``.

Ours: the objective adds ``λ · MSE(x, x̂)`` (default λ = 1) because the Sobel response is blind to
a shift of every colour by the same amount, so EL alone lets the palette drift away from the
image colours. The refined palette (after rounding to uint8 and re-assigning) is kept only if
it lowers that objective on the refinement images AND, with ``keep_psnr=True`` (the default),
does not raise their MSE (lower their PSNR): with the objective alone, refinement was accepted on
nearly every palette while pulling background colours away from pure white on emoji64 and
lowering PSNR by 0.5 dB, without helping a model trained on the result (see
``benchmarks/results/train_probe_diagnosis.md``). So refinement never makes a palette worse on
the images it saw, by either measure. Indices are re-assigned with the refined palette afterwards
by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from dcqformat.encode.color import to_working_space
from dcqformat.encode.kmeans import sq_distances

__all__ = ["RefineResult", "sobel", "edge_loss", "quantize_ste", "refine_palette",
           "refine_palettes_batched", "evaluate"]

def sobel(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, C, 2, H, W]``: horizontal and vertical 3x3 Sobel responses
    (``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and its transpose, as cross-correlations) with
    replicate padding. Computed separably with slices (cheaper than a convolution, forward and
    backward, for a handful of channels)."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = xp[..., :, 2:] - xp[..., :, :-2]  # [B, C, H+2, W]
    gx = dx[..., :-2, :] + 2.0 * dx[..., 1:-1, :] + dx[..., 2:, :]
    dy = xp[..., 2:, :] - xp[..., :-2, :]  # [B, C, H, W+2]
    gy = dy[..., :, :-2] + 2.0 * dy[..., :, 1:-1] + dy[..., :, 2:]
    return torch.stack([gx, gy], dim=2)


def edge_loss(
    x: torch.Tensor, xhat: torch.Tensor, weights: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """``Σ_c w_c · MSE(Sobel(x)_c, Sobel(x̂)_c)`` for ``[B, C, H, W]`` tensors."""
    return _weighted_channel_mse(sobel(x), sobel(xhat), weights)


def _weighted_channel_mse(
    a: torch.Tensor, b: torch.Tensor, weights: Sequence[float] | torch.Tensor | None
) -> torch.Tensor:
    c = a.shape[1]
    w = (torch.full((c,), 1.0 / c) if weights is None else torch.as_tensor(weights, dtype=torch.float32))
    w = w.to(device=a.device, dtype=a.dtype)
    return (w * ((a - b) ** 2).mean(dim=(0, 2, 3, 4))).sum()


def quantize_ste(
    x_work: torch.Tensor, palette: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quantize working-space pixels ``[P, C]`` against ``palette [K, C]`` (display space,
    differentiable): returns ``x̂ [P, C]`` (hard forward, soft backward) and the hard indices."""
    pw = to_working_space(palette)
    d = sq_distances(x_work[None], pw[None])[0]  # [P, K]
    dmin, idx = d.min(1, keepdim=True)
    hard = palette[idx[:, 0]]
    e = torch.exp((dmin - d) / tau)  # softmax(-d/tau) by hand: faster over a short last axis
    soft = (e / e.sum(1, keepdim=True)) @ palette
    return hard + soft - soft.detach(), idx[:, 0]


@dataclass
class RefineResult:
    """``palette`` uint8 ``[K, C]``; objective / edge loss / MSE (of [0, 1] pixels) before and
    after (after = of the returned palette, hard assignment); ``accepted``: whether the refined
    palette was kept."""

    palette: np.ndarray
    edge_loss_before: float
    edge_loss_after: float
    objective_before: float
    objective_after: float
    accepted: bool
    mse_before: float = 0.0
    mse_after: float = 0.0


_Prepared = list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _prep(images: Sequence[np.ndarray], device: torch.device) -> _Prepared:
    """Group images by shape: ``[(x [B, C, H, W] in [0, 1], working pixels [B·H·W, C],
    Sobel(x)), ...]``."""
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for im in images:
        groups.setdefault(tuple(im.shape), []).append(np.ascontiguousarray(im))
    out = []
    for shape in sorted(groups):
        t = torch.as_tensor(np.stack(groups[shape]), device=device).float() / 255.0  # [B, H, W, C]
        x = t.permute(0, 3, 1, 2)
        out.append((x, to_working_space(t.reshape(-1, shape[-1])), sobel(x)))
    return out


def _objective(
    prepared: _Prepared,
    palette: torch.Tensor,
    tau: float,
    rec_weight: float,
    channel_weights: Sequence[float] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image-averaged (edge loss, objective, MSE) with the straight-through quantizer."""
    n = sum(x.shape[0] for x, _, _ in prepared)
    el_total = torch.zeros((), device=palette.device)
    obj_total = torch.zeros((), device=palette.device)
    rec_total = torch.zeros((), device=palette.device)
    for x, xw, sx in prepared:
        b, c, h, w = x.shape
        xh, _ = quantize_ste(xw, palette, tau)
        xh = xh.reshape(b, h, w, c).permute(0, 3, 1, 2)
        el = _weighted_channel_mse(sx, sobel(xh), channel_weights)
        rec = ((x - xh) ** 2).mean()
        el_total = el_total + el * (b / n)
        obj_total = obj_total + (el + rec_weight * rec) * (b / n)
        rec_total = rec_total + rec * (b / n)
    return el_total, obj_total, rec_total


def evaluate(
    images: Sequence[np.ndarray],
    palette: np.ndarray,
    *,
    rec_weight: float = 1.0,
    channel_weights: Sequence[float] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """(edge loss, objective) of a uint8 palette on uint8 ``[H, W, C]`` images, hard assignment,
    averaged over images."""
    el, obj, _ = _score(images, palette, rec_weight, channel_weights, torch.device(device))
    return el, obj


def _score(
    images: Sequence[np.ndarray],
    palette: np.ndarray,
    rec_weight: float,
    channel_weights: Sequence[float] | None,
    dev: torch.device,
) -> tuple[float, float, float]:
    """(edge loss, objective, MSE) of a uint8 palette, hard assignment."""
    if not images:
        return 0.0, 0.0, 0.0
    pal = torch.as_tensor(np.asarray(palette), device=dev).float() / 255.0
    with torch.no_grad():
        el, obj, rec = _objective(_prep(images, dev), pal, 1.0, rec_weight, channel_weights)
    return float(el), float(obj), float(rec)


def _keep(obj0: float, obj1: float, mse0: float, mse1: float, keep_psnr: bool) -> bool:
    """Whether a refined palette replaces the original (module docstring)."""
    return obj1 < obj0 and (not keep_psnr or mse1 <= mse0)


def refine_palette(
    images: Sequence[np.ndarray],
    palette: np.ndarray,
    *,
    steps: int = 20,
    lr: float = 0.01,
    tau: float = 25.0,
    rec_weight: float = 1.0,
    channel_weights: Sequence[float] | None = None,
    keep_psnr: bool = True,
    frozen: Sequence[int] = (),
    device: torch.device | str = "cpu",
) -> RefineResult:
    """Refine a uint8 ``[K, C]`` palette on uint8 ``[H, W, C]`` images (see the module docstring).
    Entries listed in ``frozen`` (e.g. a reserved background colour) never move.

    Deterministic (no randomness; fixed iteration count).
    """
    dev = torch.device(device)
    pal0 = np.asarray(palette, dtype=np.uint8)
    el0, obj0, mse0 = _score(images, pal0, rec_weight, channel_weights, dev)
    if steps <= 0 or not images:
        return RefineResult(pal0, el0, el0, obj0, obj0, False, mse0, mse0)
    prepared = _prep(images, dev)
    p = torch.nn.Parameter(torch.as_tensor(pal0, device=dev).float() / 255.0)
    opt = torch.optim.Adam([p], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        _, total, _ = _objective(prepared, p.clamp(0.0, 1.0), tau, rec_weight, channel_weights)
        total.backward()
        if frozen and p.grad is not None:
            p.grad[list(frozen)] = 0.0  # Adam moves an entry with zero gradient history by 0
        opt.step()
        with torch.no_grad():
            p.clamp_(0.0, 1.0)
    pal1 = torch.round(p.detach() * 255.0).clamp(0, 255).to(torch.uint8).cpu().numpy()
    pal1[list(frozen)] = pal0[list(frozen)]
    el1, obj1, mse1 = _score(images, pal1, rec_weight, channel_weights, dev)
    if _keep(obj0, obj1, mse0, mse1, keep_psnr):
        return RefineResult(pal1, el0, el1, obj0, obj1, True, mse0, mse1)
    return RefineResult(pal0, el0, el0, obj0, obj0, False, mse0, mse0)


def _batched_objective(
    x: torch.Tensor,
    xw: torch.Tensor,
    sx: torch.Tensor,
    palettes: torch.Tensor,
    tau: float,
    rec_weight: float,
    channel_weights: Sequence[float] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-problem (edge loss, objective, MSE), each ``[G]``: image ``x[g]`` with palette ``g``."""
    g, c, h, w = x.shape
    pw = to_working_space(palettes)  # [G, K, C]
    d = sq_distances(xw, pw)  # [G, HW, K]
    dmin, idx = d.min(-1, keepdim=True)
    hard = torch.gather(palettes, 1, idx.expand(-1, -1, c))  # [G, HW, C]
    e = torch.exp((dmin - d) / tau)
    soft = (e / e.sum(-1, keepdim=True)) @ palettes
    xh = (hard + soft - soft.detach()).reshape(g, h, w, c).permute(0, 3, 1, 2)
    cw = (torch.full((c,), 1.0 / c) if channel_weights is None
          else torch.as_tensor(channel_weights, dtype=torch.float32)).to(x.device, x.dtype)
    el = (((sx - sobel(xh)) ** 2).mean(dim=(2, 3, 4)) * cw).sum(1)
    rec = ((x - xh) ** 2).mean(dim=(1, 2, 3))
    return el, el + rec_weight * rec, rec


def refine_palettes_batched(
    images: np.ndarray,
    palettes: np.ndarray,
    *,
    steps: int = 20,
    lr: float = 0.01,
    tau: float = 25.0,
    rec_weight: float = 1.0,
    channel_weights: Sequence[float] | None = None,
    keep_psnr: bool = True,
    device: torch.device | str = "cpu",
) -> list[RefineResult]:
    """Refine G independent palettes at once, palette ``g`` (uint8 ``[G, K, C]``) on image
    ``g`` (uint8 ``[G, H, W, C]``, all the same size) -- the per-image-palette ablation.

    Adam is element-wise, so each palette follows the same path as :func:`refine_palette` on its
    own image would (up to floating-point summation order); each is accepted or kept on its own.
    """
    dev = torch.device(device)
    pal0 = np.asarray(palettes, dtype=np.uint8)
    imgs = torch.as_tensor(np.ascontiguousarray(images), device=dev).float() / 255.0
    g, h, w, c = imgs.shape
    x = imgs.permute(0, 3, 1, 2)
    xw = to_working_space(imgs.reshape(g, h * w, c))
    sx = sobel(x)

    def score(pal_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pal = torch.as_tensor(pal_u8, device=dev).float() / 255.0
        with torch.no_grad():
            res = _batched_objective(x, xw, sx, pal, 1.0, rec_weight, channel_weights)
        el, obj, rec = (t.cpu().numpy().astype(np.float64) for t in res)
        return el, obj, rec

    el0, obj0, mse0 = score(pal0)

    def kept(i: int) -> RefineResult:
        return RefineResult(pal0[i], float(el0[i]), float(el0[i]), float(obj0[i]), float(obj0[i]),
                            False, float(mse0[i]), float(mse0[i]))

    if steps <= 0 or g == 0:
        return [kept(i) for i in range(g)]
    p = torch.nn.Parameter(torch.as_tensor(pal0, device=dev).float() / 255.0)
    opt = torch.optim.Adam([p], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        _, obj, _ = _batched_objective(x, xw, sx, p.clamp(0.0, 1.0), tau, rec_weight,
                                       channel_weights)
        obj.sum().backward()
        opt.step()
        with torch.no_grad():
            p.clamp_(0.0, 1.0)
    pal1 = torch.round(p.detach() * 255.0).clamp(0, 255).to(torch.uint8).cpu().numpy()
    el1, obj1, mse1 = score(pal1)
    out = []
    for i in range(g):
        if _keep(float(obj0[i]), float(obj1[i]), float(mse0[i]), float(mse1[i]), keep_psnr):
            out.append(RefineResult(pal1[i], float(el0[i]), float(el1[i]), float(obj0[i]),
                                    float(obj1[i]), True, float(mse0[i]), float(mse1[i])))
        else:
            out.append(kept(i))
    return out
