"""Chromaticity-aware clustering features (docs/method.md §1 step 2).

The shallow stage's output map ``[B, C, h, w]`` is summarised per channel by its spatial mean
(global average pooling) and, optionally, its spatial standard deviation (population std), giving
``C`` or ``2C`` numbers per image. Across the dataset every dimension is then standardised to zero
mean and unit variance (dimensions with zero variance are left centred at 0).
"""

from __future__ import annotations

import torch

__all__ = ["pooled_features", "standardize"]


def pooled_features(shallow_map: torch.Tensor, with_std: bool = True) -> torch.Tensor:
    """``[B, C, h, w]`` -> ``[B, C]`` (mean) or ``[B, 2C]`` (mean then std), float32."""
    if shallow_map.ndim != 4:
        raise ValueError(f"expected a [B, C, h, w] map, got {tuple(shallow_map.shape)}")
    m = shallow_map.detach().float()
    mean = m.mean((2, 3))
    if not with_std:
        return mean
    std = m.std((2, 3), correction=0)
    return torch.cat([mean, std], dim=1)


def standardize(features: torch.Tensor) -> torch.Tensor:
    """Per-dimension z-score over the rows of ``features [N, D]`` (float64 statistics)."""
    f = features.double()
    mean = f.mean(0, keepdim=True)
    std = f.std(0, correction=0, keepdim=True)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return ((f - mean) / std).to(features.dtype)
