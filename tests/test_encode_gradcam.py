"""Grad-CAM++ maps and the top-50 % attention mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dcqformat.encode.gradcam import compute_cams, gradcam_pp, top_fraction_mask, upsample_cam


def test_gradcam_pp_matches_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 5, 4, 4, generator=g, dtype=torch.float64)
    gr = torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64)
    # pytorch-grad-cam's GradCAMPlusPlus.get_cam_weights, written out independently
    g2, g3 = gr**2, gr**3
    sum_a = a.sum(axis=(2, 3))
    aij = g2 / (2 * g2 + sum_a[:, :, None, None] * g3 + 1e-7)
    aij = torch.where(gr != 0, aij, torch.zeros_like(aij))
    w = (torch.clamp(gr, min=0) * aij).sum(axis=(2, 3))
    ref = torch.relu((w[:, :, None, None] * a).sum(1))
    assert torch.allclose(gradcam_pp(a, gr).double(), ref, atol=1e-4)


def test_compute_cams_follows_the_target_class() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    head = nn.Linear(4, 3)
    x = torch.rand(2, 3, 8, 8)
    feat = torch.relu(conv(x))
    logits = head(feat.mean((2, 3)))
    cams = compute_cams(logits, feat, torch.tensor([0, 2]))
    assert cams.shape == (2, 8, 8) and bool((cams >= 0).all())


@pytest.mark.parametrize("shape", [(32, 32), (31, 17), (64, 48)])
def test_mask_keeps_exactly_half(shape: tuple[int, int]) -> None:
    cam = upsample_cam(torch.rand(4, 4, generator=torch.Generator().manual_seed(1)), shape)
    assert cam.shape == shape
    mask, degenerate = top_fraction_mask(cam, 0.5, torch.Generator().manual_seed(0))
    n = shape[0] * shape[1]
    assert not degenerate and int(mask.sum()) == round(n / 2)
    assert float(cam[mask].min()) >= float(cam[~mask].max())


def test_mask_ties_are_drawn_at_random_not_in_raster_order() -> None:
    cam = torch.zeros(40, 40)
    cam[:4, :4] = 1.0  # 16 attended pixels, the rest one flat tie
    mask, degenerate = top_fraction_mask(cam, 0.5, torch.Generator().manual_seed(0))
    assert not degenerate and int(mask.sum()) == 800
    assert bool(mask[:4, :4].all())
    top_half = int(mask[:20].sum())
    assert 300 < top_half < 500  # raster order would put all 800 in the top 20 rows


def test_constant_map_is_degenerate_and_keeps_everything() -> None:
    mask, degenerate = top_fraction_mask(torch.zeros(8, 8), 0.5)
    assert degenerate and bool(mask.all())


def test_mask_is_seeded() -> None:
    cam = torch.zeros(16, 16)
    a, _ = top_fraction_mask(cam + (torch.arange(256).view(16, 16) % 3 == 0), 0.5,
                             torch.Generator().manual_seed(5))
    b, _ = top_fraction_mask(cam + (torch.arange(256).view(16, 16) % 3 == 0), 0.5,
                             torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_fraction_validation() -> None:
    with pytest.raises(ValueError):
        top_fraction_mask(torch.rand(4, 4), 0.0)
    mask, _ = top_fraction_mask(torch.rand(4, 4), 1.0)
    assert bool(mask.all())
