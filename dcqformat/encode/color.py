"""sRGB <-> CIE LAB (D65, 2° observer) in torch.

The constants and branch points are those of ``skimage.color.rgb2lab`` / ``lab2rgb`` (which follow
easyrgb.com), so results agree with scikit-image to floating-point rounding. All functions take
and return float tensors with channels in the LAST dimension (``[..., 3]``), sRGB in ``[0, 1]``.
They are differentiable (palette refinement back-propagates through :func:`rgb_to_lab`).

Grey images use the one-channel pair :func:`grey_to_lstar` / :func:`lstar_to_grey`: for R = G = B
the luminance Y equals the linearised grey value, so L* is exact without the a*/b* round trip.
"""

from __future__ import annotations

import torch

from dcqformat.errors import InvalidArgumentError

__all__ = [
    "XYZ_FROM_RGB",
    "RGB_FROM_XYZ",
    "D65_WHITE",
    "srgb_to_linear",
    "linear_to_srgb",
    "rgb_to_lab",
    "lab_to_rgb",
    "grey_to_lstar",
    "lstar_to_grey",
    "to_working_space",
    "from_working_space",
]

XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# The exact inverse of XYZ_FROM_RGB (computed in float64, as scikit-image does with linalg.inv).
RGB_FROM_XYZ = (
    (3.2404813432005266, -1.5371515162713185, -0.49853632616888777),
    (-0.9692549499965682, 1.8759900014898907, 0.041555926558292815),
    (0.05564663913517715, -0.20404133836651123, 1.0573110696453443),
)
D65_WHITE = (0.95047, 1.0, 1.08883)

_EPS = 0.008856  # (6/29)^3 as rounded by easyrgb / scikit-image
_KAPPA = 7.787  # 1 / (3 (6/29)^2) as rounded likewise
_INV_EPS = 0.2068966  # cube root of _EPS, the lab->xyz branch point


def _const(values: object, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB companding inverse: ``c / 12.92`` below 0.04045, else ``((c + 0.055) / 1.055)^2.4``."""
    hi = torch.pow((c.clamp(min=0.04045) + 0.055) / 1.055, 2.4)
    return torch.where(c > 0.04045, hi, c / 12.92)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """sRGB companding, then clipped to ``[0, 1]`` (as scikit-image's ``xyz2rgb``)."""
    hi = 1.055 * torch.pow(c.clamp(min=0.0031308), 1.0 / 2.4) - 0.055
    return torch.where(c > 0.0031308, hi, c * 12.92).clamp(0.0, 1.0)


def _f(t: torch.Tensor) -> torch.Tensor:
    # torch.pow of a negative base is NaN; clamp the cube-root branch's input (the other branch is
    # selected there anyway) so gradients stay finite.
    return torch.where(t > _EPS, torch.pow(t.clamp(min=_EPS), 1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _INV_EPS, t.clamp(min=_INV_EPS) ** 3, (t - 16.0 / 116.0) / _KAPPA)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in ``[0, 1]`` (``[..., 3]``) -> CIE LAB D65 (``L`` in [0, 100])."""
    if rgb.shape[-1] != 3:
        raise InvalidArgumentError(f"rgb_to_lab expects 3 channels in the last dimension, got {tuple(rgb.shape)}")
    lin = srgb_to_linear(rgb)
    xyz = lin @ _const(XYZ_FROM_RGB, rgb).T
    xyz = xyz / _const(D65_WHITE, rgb)
    f = _f(xyz)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE LAB D65 (``[..., 3]``) -> sRGB in ``[0, 1]``, out-of-gamut values clipped."""
    if lab.shape[-1] != 3:
        raise InvalidArgumentError(f"lab_to_rgb expects 3 channels in the last dimension, got {tuple(lab.shape)}")
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)  # scikit-image sets negative z to 0 (and warns)
    xyz = _f_inv(torch.stack([fx, fy, fz], dim=-1)) * _const(D65_WHITE, lab)
    lin = xyz @ _const(RGB_FROM_XYZ, lab).T
    return linear_to_srgb(lin)


def grey_to_lstar(g: torch.Tensor) -> torch.Tensor:
    """Grey values in ``[0, 1]`` (any shape) -> L* in [0, 100] (the L of ``rgb_to_lab`` of R=G=B)."""
    return 116.0 * _f(srgb_to_linear(g)) - 16.0


def lstar_to_grey(lstar: torch.Tensor) -> torch.Tensor:
    """L* (any shape) -> grey value in ``[0, 1]``; the inverse of :func:`grey_to_lstar`."""
    return linear_to_srgb(_f_inv((lstar + 16.0) / 116.0))


def to_working_space(x: torch.Tensor) -> torch.Tensor:
    """Pixels ``[..., C]`` in ``[0, 1]`` -> the space palettes live in: LAB for C = 3, L* for C = 1
    (shape kept, ``[..., 1]``)."""
    if x.shape[-1] == 3:
        return rgb_to_lab(x)
    if x.shape[-1] == 1:
        return grey_to_lstar(x)
    raise InvalidArgumentError(f"expected 1 or 3 channels in the last dimension, got {tuple(x.shape)}")


def from_working_space(w: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_working_space`: LAB -> sRGB or L* -> grey, in ``[0, 1]``."""
    if w.shape[-1] == 3:
        return lab_to_rgb(w)
    if w.shape[-1] == 1:
        return lstar_to_grey(w)
    raise InvalidArgumentError(f"expected 1 or 3 channels in the last dimension, got {tuple(w.shape)}")
