"""``DCQDataset(size="original")``: images back at the size they had before ``convert
--scale`` stored them smaller (spec §15).

``resize="bilinear"`` (default) interpolates with torch's bilinear filter
(``align_corners=False``, no antialiasing: this only ever enlarges), rounding to uint8;
``resize="nearest"`` repeats stored pixels (``nearest-exact``: every output pixel takes the
stored pixel under its centre), so the image keeps exactly its palette's colours. A sample
stored at its original size is returned as decoded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dcqformat.errors import InvalidArgumentError, PixelLimitError
from dcqformat.format.layout import MAX_PIXELS
from dcqformat.format.reader import DCQFile

__all__ = ["SIZES", "RESIZES", "check_original_pixels", "check_size", "to_original_size"]

SIZES = ("stored", "original")
RESIZES = ("bilinear", "nearest")


def check_original_pixels(files: Sequence[DCQFile]) -> None:
    """The decompression-bomb guard of ``size="original"``: a PixelLimitError naming the first
    sample whose original size (spec §15 allows sides up to 2**24) has more pixels than its
    file's ``max_pixels`` (the format's 2**28 per sample when that is None), which the resize
    would allocate (as float32)."""
    for f in files:
        m = f.metadata
        if m.original_height is None or m.original_width is None:
            continue
        limit = MAX_PIXELS if f.max_pixels is None else f.max_pixels
        pixels = m.original_height.astype(np.int64) * m.original_width.astype(np.int64)
        bad = np.flatnonzero(pixels > limit)
        if bad.size:
            i = int(bad[0])
            raise PixelLimitError(
                f"{f.path}: sample {i} has the original size {int(m.original_height[i])}x"
                f"{int(m.original_width[i])} = {int(pixels[i])} pixels, more than the reader's "
                f"limit of {limit} (a guard against decompression bombs); size=\"original\" would "
                "resize it to that. Pass DCQFile(path, max_pixels=...) objects with a larger limit "
                "if you trust the file")


def check_size(size: str, resize: str, output: str, fill_mode: str, combine: int,
               files: Sequence[DCQFile]) -> tuple[str, str]:
    """The checked ``size`` and ``resize`` arguments of :class:`~dcqformat.torch.DCQDataset`
    (for ``size="original"`` also :func:`check_original_pixels` of ``files``)."""
    if size not in SIZES:
        raise InvalidArgumentError(f"size must be one of {SIZES}, got {size!r}")
    if resize not in RESIZES:
        raise InvalidArgumentError(f"resize must be one of {RESIZES}, got {resize!r}")
    if size == "original" and (output == "packed" or fill_mode != "stored" or combine > 1):
        raise InvalidArgumentError('size="original" decodes whole images at their stored fill; '
                                   'it does not combine with output="packed", fill= or combine=')
    if size == "original":
        check_original_pixels(files)
    return size, resize


def to_original_size(arr: np.ndarray, original: tuple[int, int, int], layout: str,
                     resize: str) -> np.ndarray:
    """``arr`` (uint8, ``"chw"`` or ``"hwc"``) resized to ``original`` (H, W, C)."""
    h0, w0 = int(original[0]), int(original[1])
    chw = arr if layout == "chw" else arr.transpose(2, 0, 1)
    if chw.shape[1:] == (h0, w0):
        return arr
    x = torch.from_numpy(np.ascontiguousarray(chw))[None].float()
    if resize == "nearest":
        y = F.interpolate(x, size=(h0, w0), mode="nearest-exact")
    else:
        y = F.interpolate(x, size=(h0, w0), mode="bilinear", align_corners=False)
    out = y[0].round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out if layout == "chw" else np.ascontiguousarray(out.transpose(1, 2, 0))
