"""sRGB <-> CIE LAB in torch against scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data
from skimage.color import lab2rgb, rgb2lab

from dcqformat.encode.color import (
    RGB_FROM_XYZ,
    XYZ_FROM_RGB,
    from_working_space,
    grey_to_lstar,
    lab_to_rgb,
    lstar_to_grey,
    rgb_to_lab,
    to_working_space,
)


def _grid() -> np.ndarray:
    v = np.linspace(0, 1, 18)
    return np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)


def test_matrices_are_inverse() -> None:
    np.testing.assert_allclose(np.linalg.inv(np.array(XYZ_FROM_RGB)), np.array(RGB_FROM_XYZ),
                               atol=1e-12)


@pytest.mark.parametrize("pixels", ["grid", "astronaut", "random"])
def test_rgb_to_lab_matches_skimage(pixels: str) -> None:
    if pixels == "grid":
        rgb = _grid()
    elif pixels == "astronaut":
        rgb = data.astronaut()[::8, ::8].reshape(-1, 3) / 255.0
    else:
        rgb = np.random.default_rng(0).random((5000, 3))
    ours = rgb_to_lab(torch.from_numpy(rgb)).numpy()
    np.testing.assert_allclose(ours, rgb2lab(rgb[None])[0], atol=1e-9)
    f32 = rgb_to_lab(torch.from_numpy(rgb).float()).numpy()
    np.testing.assert_allclose(f32, rgb2lab(rgb[None])[0], atol=2e-3)


def test_lab_to_rgb_matches_skimage() -> None:
    rng = np.random.default_rng(1)
    lab = np.column_stack([rng.uniform(0, 100, 4000), rng.uniform(-90, 90, 4000),
                           rng.uniform(-90, 90, 4000)])
    lab = lab[(lab[:, 0] / 116 + 16 / 116 - lab[:, 2] / 200) > 0]  # skimage warns on z < 0
    np.testing.assert_allclose(lab_to_rgb(torch.from_numpy(lab)).numpy(), lab2rgb(lab[None])[0],
                               atol=1e-9)


def test_round_trip() -> None:
    rgb = torch.from_numpy(_grid())
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(rgb)).numpy(), rgb.numpy(), atol=1e-9)


def test_grey_lstar_is_lab_l_and_inverts() -> None:
    g = torch.linspace(0, 1, 256, dtype=torch.float64)
    lab = rgb2lab(np.repeat(g.numpy()[:, None], 3, 1)[None])[0]
    np.testing.assert_allclose(grey_to_lstar(g).numpy(), lab[:, 0], atol=1e-9)
    np.testing.assert_allclose(lstar_to_grey(grey_to_lstar(g)).numpy(), g.numpy(), atol=1e-9)
    assert np.abs(lab[:, 1:]).max() < 0.01  # grey has (almost) no chroma in skimage's LAB too


def test_working_space_dispatch_and_gradients() -> None:
    x = torch.rand(10, 3, dtype=torch.float64, requires_grad=True)
    w = to_working_space(x)
    w.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    np.testing.assert_allclose(from_working_space(w.detach()).numpy(), x.detach().numpy(), atol=1e-9)
    assert to_working_space(torch.zeros(4, 1)).shape == (4, 1)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_working_space(torch.zeros(4, 2))
    black = torch.zeros(5, 3, requires_grad=True)  # the cube-root branch is clamped: no NaN
    rgb_to_lab(black).sum().backward()
    assert black.grad is not None and torch.isfinite(black.grad).all()
