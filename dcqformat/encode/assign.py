"""Nearest-colour index maps (docs/method.md §1 step 5).

Distances are Euclidean in the working space (CIE LAB for colour, L* for grey) between each pixel
and the palette *as stored* (the uint8 sRGB palette converted back to the working space), so the
indices are exactly those a decoder's colours were measured against. Ties go to the lowest index.
"""

from __future__ import annotations

import numpy as np
import torch

from dcqformat.encode.color import to_working_space
from dcqformat.encode.kmeans import sq_distances

__all__ = ["palette_to_working", "pixels_to_working", "nearest_indices", "assign_image",
           "assign_batch"]

_CHUNK_ELEMENTS = 1 << 22


def palette_to_working(palette: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
                       ) -> torch.Tensor:
    """uint8 ``[K, C]`` (or ``[..., K, C]``) sRGB/grey palette -> float32 working-space colours."""
    p = torch.as_tensor(np.asarray(palette), device=device)
    return to_working_space(p.float() / 255.0)


def pixels_to_working(image: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"
                      ) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> float32 ``[H*W, C]`` in the working space."""
    x = torch.as_tensor(np.asarray(image), device=device)
    return to_working_space(x.reshape(-1, x.shape[-1]).float() / 255.0)


def nearest_indices(points: torch.Tensor, palette_w: torch.Tensor) -> torch.Tensor:
    """Index ``[P]`` (int64) of the nearest palette colour for each of ``points [P, C]``."""
    k = palette_w.shape[0]
    step = max(1, _CHUNK_ELEMENTS // max(1, k * points.shape[1]))
    out = torch.empty(points.shape[0], dtype=torch.int64, device=points.device)
    for i in range(0, points.shape[0], step):
        out[i : i + step] = sq_distances(points[None, i : i + step], palette_w[None])[0].argmin(-1)
    return out


def assign_image(image: np.ndarray, palette_w: torch.Tensor) -> np.ndarray:
    """uint8 ``[H, W, C]`` image -> uint8 ``[H, W]`` index map against ``palette_w [K, C]``."""
    h, w = image.shape[:2]
    idx = nearest_indices(pixels_to_working(image, palette_w.device), palette_w)
    return idx.to(torch.uint8).reshape(h, w).cpu().numpy()


def assign_batch(images: np.ndarray, palettes_w: torch.Tensor) -> np.ndarray:
    """Equal-size uint8 images ``[G, H, W, C]``, one palette each ``[G, K, C]`` -> uint8 index
    maps ``[G, H, W]`` (identical to :func:`assign_image` per image)."""
    g, h, w, c = images.shape
    k = palettes_w.shape[1]
    out = np.empty((g, h, w), dtype=np.uint8)
    dev = palettes_w.device
    if h * w * k * c > _CHUNK_ELEMENTS:  # a large image: rows of pixels at a time
        rows = max(1, _CHUNK_ELEMENTS // (w * k * c))
        for i in range(g):
            for y in range(0, h, rows):
                x = torch.as_tensor(images[i, y:y + rows], device=dev).reshape(1, -1, c)
                idx = sq_distances(to_working_space(x.float() / 255.0), palettes_w[i:i + 1])
                out[i, y:y + rows] = idx.argmin(-1).to(torch.uint8).reshape(-1, w).cpu().numpy()
        return out
    step = max(1, _CHUNK_ELEMENTS // max(1, h * w * k * c))
    for i in range(0, g, step):
        x = torch.as_tensor(images[i : i + step], device=dev).reshape(-1, h * w, c).float() / 255.0
        idx = sq_distances(to_working_space(x), palettes_w[i : i + step]).argmin(-1)
        out[i : i + step] = idx.to(torch.uint8).reshape(-1, h, w).cpu().numpy()
    return out
