"""Public entry points of the ``ctx`` coder (spec ``dcq-v1.md`` §14): encode one sample's index
map with a :class:`~dcqformat.codecs.ctx_model.CtxModel`, decode it again, decode many at once.

Every function validates its arguments in Python, then calls one kernel of
:mod:`dcqformat.codecs.ctx_rans`; a kernel status other than OK becomes a
:class:`~dcqformat.errors.PayloadError` whose message starts with ``where`` (the caller names
the file and the sample there).
"""

from __future__ import annotations

import numpy as np

from dcqformat.codecs.ctx_context import NUM_CONTEXTS
from dcqformat.codecs.ctx_decode import (
    ctx_decode_batch_kernel,
    ctx_decode_kernel,
    ctx_decode_pixels_kernel,
)
from dcqformat.codecs.ctx_model import CtxModel
from dcqformat.codecs.ctx_rans import OK, STATE_BYTES, STATUS_TEXT, ctx_encode_kernel
from dcqformat.errors import InvalidArgumentError, PayloadError

__all__ = ["batch_status", "decode_indices", "decode_pixels", "encode_indices", "status_error"]


def status_error(where: str, status: int) -> PayloadError:
    """The PayloadError of kernel status ``status`` for the sample named by ``where``."""
    return PayloadError(f"{where}: ctx stream: {STATUS_TEXT.get(status, f'status {status}')}")


def _check_model_id(model: CtxModel, model_id: int) -> int:
    if not 0 <= model_id < model.num_models:
        raise InvalidArgumentError(f"model {model_id} does not exist ({model.num_models} models)")
    return int(model_id) * NUM_CONTEXTS


def encode_indices(values: np.ndarray, rect_h: np.ndarray, rect_w: np.ndarray, model: CtxModel,
                   model_id: int = 0) -> np.ndarray:
    """The ctx stream (uint8) of one sample: ``values`` its stored indices (the rectangles'
    pixels one after another), ``rect_h``/``rect_w`` int64 rectangle sizes.

    Raises InvalidArgumentError when the sizes disagree, an index is >= K, or the model has no
    row or a zero frequency for a pixel of this map (a model must be fitted on what it codes)."""
    vals = np.ascontiguousarray(values, dtype=np.uint8).reshape(-1)
    rh = np.ascontiguousarray(rect_h, dtype=np.int64)
    rw = np.ascontiguousarray(rect_w, dtype=np.int64)
    if rh.shape != rw.shape or (rh < 1).any() or (rw < 1).any() or int((rh * rw).sum()) != vals.size:
        raise InvalidArgumentError(f"rectangles {rh.tolist()}x{rw.tolist()} do not cover {vals.size} pixels")
    if vals.size and int(vals.max()) >= model.k:
        raise InvalidArgumentError(f"index {int(vals.max())} >= K = {model.k}")
    base = _check_model_id(model, model_id)
    n = vals.size
    out = np.empty(2 * n + 2 * STATE_BYTES, np.uint8)
    start, status = ctx_encode_kernel(vals, rh, rw, model.row_of, base, model.freq, model.cum,
                                   np.empty(n, np.int32), np.empty(n, np.int32), out)
    if status != OK:
        raise InvalidArgumentError(f"the model cannot code this map: {STATUS_TEXT[status]}")
    return out[start:].copy()


def decode_indices(stream: np.ndarray, rect_h: np.ndarray, rect_w: np.ndarray, model: CtxModel,
                   model_id: int = 0, where: str = "sample") -> np.ndarray:
    """Decode one sample's stream (uint8 1-D) to its stored indices, uint8 [sum(h*w)]."""
    rh = np.ascontiguousarray(rect_h, dtype=np.int64)
    rw = np.ascontiguousarray(rect_w, dtype=np.int64)
    if rh.shape != rw.shape or (rh < 1).any() or (rw < 1).any():
        raise InvalidArgumentError(f"bad rectangles {rh.tolist()}x{rw.tolist()}")
    base = _check_model_id(model, model_id)
    out = np.empty(int((rh * rw).sum()), np.uint8)
    status = ctx_decode_kernel(stream, 0, stream.size, rh, rw, model.entry, base, model.cum_flat,
                               model.k, out)
    if status != OK:
        raise status_error(where, status)
    return out


def decode_pixels(stream: np.ndarray, start: int, length: int, h: int, w: int, model: CtxModel,
                  model_id: int, palette: np.ndarray, out: np.ndarray, planar: bool,
                  where: str = "sample") -> None:
    """Decode an unmasked H x W sample from ``stream[start:start + length]`` straight to pixels
    in the flat uint8 ``out`` (H*W*ch, HWC or planar CHW). The caller has checked that the range
    lies inside ``stream``, ``out`` has the right size and ``palette`` holds K colours."""
    status = ctx_decode_pixels_kernel(stream, start, length, h, w, model.entry,
                                      model_id * NUM_CONTEXTS, model.cum_flat, model.k, palette,
                                      out, planar)
    if status != OK:
        raise status_error(where, status)


def batch_status(stream: np.ndarray, starts: np.ndarray, lengths: np.ndarray, heights: np.ndarray,
                 widths: np.ndarray, model_ids: np.ndarray, model: CtxModel, bits: int,
                 palettes: np.ndarray, clusters: np.ndarray, out: np.ndarray,
                 out_offsets: np.ndarray, mode: int) -> tuple[int, int]:
    """Decode many unmasked samples in one kernel call (mode 0: packed maps, 1: HWC pixels,
    2: CHW pixels) into ``out`` at ``out_offsets``; everything validated by the caller.

    Returns ``(-1, OK)`` or ``(position in the batch, status)`` of the first failure."""
    code = ctx_decode_batch_kernel(stream, starts, lengths, heights, widths,
                                   model_ids * NUM_CONTEXTS, model.entry, model.cum_flat, model.k,
                                   bits, palettes, clusters, out, out_offsets, mode)
    if code < 0:
        return -1, OK
    return int(code) // 8, int(code) % 8
