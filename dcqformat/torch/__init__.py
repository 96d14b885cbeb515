"""torch integration: :class:`DCQDataset` (decode on the fly, single and batched paths, or
packed batches), :func:`expand` (packed batches to images on any device), :class:`DCQSampler`
(resumable distributed sampler), :class:`CellCrop` (crops inside one cell of a
``combine`` canvas) and palette-space colour transforms.

Importing this subpackage imports torch; ``import dcqformat`` alone does not.
"""

from __future__ import annotations

from dcqformat.torch.batch import DCQBatch
from dcqformat.torch.cellcrop import CellCrop
from dcqformat.torch.dataset import DCQDataset
from dcqformat.torch.expand import expand
from dcqformat.torch.packed import PackedBatch
from dcqformat.torch.palette_transforms import (
    PaletteBrightness,
    PaletteColorJitter,
    PaletteCompose,
    PaletteContrast,
    PaletteGrayscale,
    PaletteSaturation,
    PaletteTransform,
)
from dcqformat.torch.sampler import DCQSampler

__all__ = [
    "CellCrop",
    "DCQBatch",
    "DCQDataset",
    "DCQSampler",
    "PackedBatch",
    "PaletteBrightness",
    "PaletteColorJitter",
    "PaletteCompose",
    "PaletteContrast",
    "PaletteGrayscale",
    "PaletteSaturation",
    "PaletteTransform",
    "expand",
]
