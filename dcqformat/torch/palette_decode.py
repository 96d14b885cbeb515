"""Decoding one sample through another palette: a given one, or the sample's cluster palette
after a palette transform (what :class:`~dcqformat.torch.dataset.DCQDataset` does with
``palette_transform``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from dcqformat.codecs.bitpack import unpack_indices
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile

__all__ = ["decode_through", "decode_with_palette_transform"]


def decode_through(f: DCQFile, j: int, palette: np.ndarray | torch.Tensor, layout: str) -> np.ndarray:
    """Sample ``j`` of ``f`` decoded through ``palette`` (uint8 ``[K, channels]``) into a new
    uint8 array (``"chw"`` or ``"hwc"``)."""
    pal = palette.numpy() if isinstance(palette, torch.Tensor) else np.asarray(palette)
    h, w, c = f.shape(j)
    out = np.empty((c, h, w) if layout == "chw" else (h, w, c), dtype=np.uint8)
    return f.decode_into(j, out, layout=layout, palette=pal)


def decode_with_palette_transform(f: DCQFile, j: int, transform: Callable[..., torch.Tensor],
                                  layout: str) -> np.ndarray:
    """Sample ``j`` of ``f`` decoded through ``transform(cluster palette)`` (called with
    ``counts=`` the sample's index histogram when ``transform.needs_counts`` is true); the
    transform must return a uint8 tensor of the palette's shape."""
    palette = torch.from_numpy(f.palettes[int(f.clusters[j])].copy())
    if getattr(transform, "needs_counts", False):
        hist = np.bincount(unpack_indices(f.packed(j), f.stored_pixels(j), f.bits),
                           minlength=f.palette_size)
        counts = torch.from_numpy(hist[: f.palette_size].astype(np.int64))
        new = transform(palette, counts=counts)
    else:
        new = transform(palette)
    if not isinstance(new, torch.Tensor) or new.dtype != torch.uint8 or tuple(new.shape) != tuple(palette.shape):
        what = f"{new.dtype} {tuple(new.shape)}" if isinstance(new, torch.Tensor) else type(new).__name__
        raise InvalidArgumentError(
            f"palette_transform must return a uint8 tensor {tuple(palette.shape)}, got {what}")
    return decode_through(f, j, new, layout)
