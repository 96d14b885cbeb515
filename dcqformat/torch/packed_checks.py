"""Validation of a :class:`~dcqformat.torch.packed.PackedBatch` before anything reads it.

The expansion indexes ``data`` with the offsets, the palette table with the ids and the fill
indices, and the kept-pixel streams with positions derived from the keep masks; every one of
those is checked here, on the CPU, so that no device kernel can read out of bounds. A batch
built by :class:`DCQDataset` passes by construction (the reader validated it at open); the
checks guard hand-made or modified batches. Cost: a few array operations on O(B + patches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from dcqformat.codecs.bitpack import check_bits
from dcqformat.errors import InvalidArgumentError
from dcqformat.format import masks as M

if TYPE_CHECKING:
    from dcqformat.torch.packed import PackedBatch

__all__ = ["check_packed_batch"]

_HOST = ("offsets", "heights", "widths", "stored", "indices", "palettes", "palette_ids", "keep",
         "keep_offsets", "fills", "fill_offsets")


def _tensor(batch: PackedBatch, name: str, dtype: torch.dtype, shape: tuple[int, ...] | None,
            ndim: int = 1) -> np.ndarray:
    t = getattr(batch, name)
    if not isinstance(t, torch.Tensor) or t.dtype != dtype or t.ndim != ndim or \
            (shape is not None and tuple(t.shape) != shape):
        what = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        want = f"{dtype} {shape}" if shape is not None else f"{ndim}-D {dtype}"
        raise InvalidArgumentError(f"PackedBatch.{name} must be a {want} tensor, got {what}")
    if name in _HOST:
        if t.device.type != "cpu":
            raise InvalidArgumentError(
                f"PackedBatch.{name} must stay on the CPU (only data and labels move), found {t.device}")
        return t.numpy()
    return np.empty(0)


def _fail(what: str, row: int) -> InvalidArgumentError:
    return InvalidArgumentError(f"PackedBatch: sample {row} of the batch: {what}")


def check_packed_batch(batch: PackedBatch) -> None:
    """Raise :class:`InvalidArgumentError` unless every field of ``batch`` is consistent."""
    try:
        q = check_bits(batch.bits)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"PackedBatch.bits: {exc}") from None
    h = _tensor(batch, "heights", torch.int64, None)
    b = h.shape[0]
    w = _tensor(batch, "widths", torch.int64, (b,))
    stored = _tensor(batch, "stored", torch.int64, (b,))
    _tensor(batch, "labels", torch.int64, (b,))
    _tensor(batch, "indices", torch.int64, (b,))
    offsets = _tensor(batch, "offsets", torch.int64, (b + 1,))
    _tensor(batch, "data", torch.uint8, None)
    pal = _tensor(batch, "palettes", torch.uint8, None, ndim=3)
    pids = _tensor(batch, "palette_ids", torch.int64, (b,))
    if pal.shape[2] not in (1, 3) or not 1 <= pal.shape[1] <= 256:
        raise InvalidArgumentError(f"PackedBatch.palettes must be [P, K <= 256, 1 or 3], got {pal.shape}")
    if b and ((h < 1).any() or (w < 1).any()):
        row = int(np.argmax((h < 1) | (w < 1)))
        raise _fail(f"size {int(h[row])}x{int(w[row])} is not positive", row)
    if offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != batch.data.numel():
        raise InvalidArgumentError(
            f"PackedBatch.offsets must rise from 0 to data's {batch.data.numel()} bytes, "
            f"got {offsets[0]}..{offsets[-1]}")
    bad = np.diff(offsets) != (stored * q + 7) // 8
    if bad.any():
        row = int(np.argmax(bad))
        raise _fail(f"holds {int(offsets[row + 1] - offsets[row])} bytes, ceil({int(stored[row])}*{q}/8) "
                    f"expected", row)
    bad = (pids < 0) | (pids >= pal.shape[0])
    if bad.any():
        row = int(np.argmax(bad))
        raise _fail(f"palette id {int(pids[row])} is outside 0..{pal.shape[0] - 1}", row)
    _check_masks(batch, h, w, stored, pal.shape[1])


def _check_masks(batch: PackedBatch, h: np.ndarray, w: np.ndarray, stored: np.ndarray, k: int) -> None:
    b = h.shape[0]
    keep = _tensor(batch, "keep", torch.uint8, None)
    ko = _tensor(batch, "keep_offsets", torch.int64, (b + 1,))
    fills = _tensor(batch, "fills", torch.uint8, None)
    fo = _tensor(batch, "fill_offsets", torch.int64, (b + 1,))
    p = batch.patch_size
    if p is None:
        if keep.size or fills.size or ko.any() or fo.any():
            raise InvalidArgumentError("PackedBatch: keep/fills given without a patch_size")
        bad = stored != h * w
        if bad.any():
            row = int(np.argmax(bad))
            raise _fail(f"stored {int(stored[row])} pixels, not H*W without patch masks", row)
        return
    try:
        p = M.check_patch_size(p)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"PackedBatch.patch_size: {exc}") from None
    if not np.array_equal(ko, M.mask_offsets(h, w, p)):
        raise InvalidArgumentError("PackedBatch.keep_offsets must be ceil(patches/8) bytes per sample")
    if keep.size != int(ko[-1]):
        raise InvalidArgumentError(f"PackedBatch.keep must hold {int(ko[-1])} bytes, got {keep.size}")
    kept_patches, kept_pixels, bad_row = M.mask_stats(keep, h, w, p)
    if bad_row >= 0:
        raise _fail("its keep mask has non-zero padding bits", bad_row)
    bad = kept_pixels != stored
    if bad.any():
        row = int(np.argmax(bad))
        raise _fail(f"stored {int(stored[row])} pixels, its keep mask keeps {int(kept_pixels[row])}", row)
    dropped = (-(-h // p)) * (-(-w // p)) - kept_patches
    if fo[0] != 0 or not np.array_equal(np.diff(fo), dropped) or fills.size != int(fo[-1]):
        raise InvalidArgumentError("PackedBatch.fill_offsets must give one fill per dropped patch")
    if fills.size and int(fills.max()) >= k:
        row = int(np.searchsorted(fo, int(np.argmax(fills >= k)), side="right") - 1)
        raise _fail(f"a fill index is >= palette_size {k}", row)
