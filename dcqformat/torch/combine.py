"""Combined canvases (PCA's *combine*): n×n decoded images of one class tiled into one image.

``DCQDataset(path, combine=n)`` uses this module. The rules (what the tests check):

- **Canvases of one class.** Class ``c`` with ``m_c`` samples owns ``ceil(m_c / n²)``
  consecutive canvases; the dataset's items are the canvases of class 0, then class 1, ...
  (the label of an item never changes between epochs, so ``targets`` is fixed; shuffle with
  the sampler). ``len(dataset) = sum_c ceil(m_c / n²)``.
- **Each image once per epoch where the counts allow.** For epoch ``e`` the generator
  ``numpy.random.default_rng([seed, e])`` permutes every class's samples (classes in label
  order) and cuts the permutation into canvases of n² cells, row-major. When ``n²`` does not
  divide ``m_c`` the last canvas is filled up with samples drawn without replacement from the
  class's other canvases (with replacement from the whole class when it has fewer than n²
  samples), and its cells are shuffled so the re-used images sit anywhere. Everything depends
  only on ``(seed, epoch)`` and the samples (labels, selection), never on workers or ranks.
- **The cell size** is the most common stored size ``(h, w)`` among the dataset's samples
  (ties: the larger area, then the larger height); a canvas is ``n·h × n·w``. Samples of another
  size are resized to the cell with antialiased bilinear interpolation (rounded to uint8);
  samples of the cell size are copied unchanged, so such a cell equals ``DCQFile.decode``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dcqformat.errors import InvalidArgumentError

__all__ = ["CanvasPlan", "assemble_canvases", "check_combine", "most_common_size"]


def check_combine(combine: Any, output: str, fill_mode: str) -> int:
    """``combine`` as an int >= 1, or an :class:`InvalidArgumentError` saying why not."""
    try:
        n = operator.index(combine)
    except TypeError:
        raise InvalidArgumentError(
            f"combine must be an integer >= 1 (the canvas is combine × combine images), got "
            f"{type(combine).__name__}") from None
    if n < 1:
        raise InvalidArgumentError(f"combine must be >= 1 (1 = off), got combine={n}")
    if n > 1 and output == "packed":
        raise InvalidArgumentError(
            'combine needs decoded images; output="packed" decodes nothing: use output="tensor", '
            '"numpy" or "pil" with combine, or combine=1 with "packed"')
    if n > 1 and fill_mode != "stored":
        raise InvalidArgumentError(
            f"combine tiles decoded images with their stored fill; fill={fill_mode!r} is not "
            "supported with combine > 1 (use fill=None)")
    return n


def most_common_size(heights: np.ndarray, widths: np.ndarray) -> tuple[int, int]:
    """The most common ``(h, w)`` pair; ties go to the larger area, then the larger height."""
    if heights.size == 0:
        raise InvalidArgumentError("combine needs at least one sample; the dataset is empty")
    pairs, counts = np.unique(np.stack([heights, widths], 1).astype(np.int64), axis=0,
                              return_counts=True)
    keys = [(int(c), int(h) * int(w), int(h)) for (h, w), c in zip(pairs, counts, strict=True)]
    best = max(range(len(keys)), key=keys.__getitem__)
    return int(pairs[best][0]), int(pairs[best][1])


class CanvasPlan:
    """Which samples fill which canvas, per epoch (see the module docstring for the rules).

    ``labels`` are the dataset's sample labels (after any selection), ``heights``/``widths``
    their stored sizes; ``n`` the canvas side in images; ``seed`` the base seed.
    """

    def __init__(self, labels: np.ndarray, heights: np.ndarray, widths: np.ndarray, n: int,
                 seed: int) -> None:
        self.n = n
        self.cells = n * n
        self.seed = seed
        self.cell = most_common_size(heights, widths)
        labels = np.asarray(labels, dtype=np.int64)
        self._members_of = [np.flatnonzero(labels == c) for c in np.unique(labels).tolist()]
        self._class_ids = np.unique(labels)
        per_class = [-(-len(m) // self.cells) for m in self._members_of]
        self.labels = np.repeat(self._class_ids, per_class).astype(np.int64)
        self._cached: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def canvas_shape(self) -> tuple[int, int]:
        """(height, width) of every canvas."""
        return self.n * self.cell[0], self.n * self.cell[1]

    def members(self, epoch: int) -> np.ndarray:
        """int64 ``[canvases, n²]``: the dataset positions in each canvas's cells (row-major)
        for ``epoch``; cached for the last epoch asked."""
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1]
        rng = np.random.default_rng([self.seed, epoch])
        rows = []
        for idx in self._members_of:
            perm = rng.permutation(idx)
            full = (len(perm) // self.cells) * self.cells
            if full:
                rows.append(perm[:full].reshape(-1, self.cells))
            rest = perm[full:]
            if rest.size:
                pad = self.cells - rest.size
                others = perm[:full]
                extra = (rng.choice(others, pad, replace=False) if others.size >= pad
                         else rng.choice(idx, pad, replace=True))
                rows.append(rng.permutation(np.concatenate([rest, extra]))[None])
        plan = np.concatenate(rows).astype(np.int64) if rows else np.empty((0, self.cells), np.int64)
        self._cached = (epoch, plan)
        return plan


def _resized(img: np.ndarray, size: tuple[int, int], layout: str) -> np.ndarray:
    """``img`` (uint8, ``layout``) resized to ``size`` (antialiased bilinear, rounded)."""
    t = torch.from_numpy(np.ascontiguousarray(img))
    chw = t if layout == "chw" else t.permute(2, 0, 1)
    out = F.interpolate(chw[None].float(), size=size, mode="bilinear", align_corners=False,
                        antialias=True)[0]
    out = out.round_().clamp_(0, 255).to(torch.uint8)
    return (out if layout == "chw" else out.permute(1, 2, 0)).contiguous().numpy()


def assemble_canvases(images: Sequence[np.ndarray] | np.ndarray, n: int, cell: tuple[int, int],
                      channels: int, layout: str) -> np.ndarray:
    """Tile decoded images (n² per canvas, row-major, in ``layout`` "chw" or "hwc") into one
    uint8 buffer ``[B, C, n·h, n·w]`` (``"chw"``) or ``[B, n·h, n·w, C]`` (``"hwc"``)."""
    per = n * n
    count = len(images)
    if count % per:
        raise InvalidArgumentError(f"{count} images do not fill canvases of {per} cells")
    h, w = cell
    b = count // per
    shape = (b, channels, n * h, n * w) if layout == "chw" else (b, n * h, n * w, channels)
    out = np.empty(shape, dtype=np.uint8)
    for t in range(count):
        img = images[t]
        ih, iw = (img.shape[1], img.shape[2]) if layout == "chw" else (img.shape[0], img.shape[1])
        if (ih, iw) != (h, w):
            img = _resized(img, (h, w), layout)
        k, cell_no = divmod(t, per)
        r, c = divmod(cell_no, n)
        if layout == "chw":
            out[k, :, r * h:(r + 1) * h, c * w:(c + 1) * w] = img
        else:
            out[k, r * h:(r + 1) * h, c * w:(c + 1) * w, :] = img
    return out
