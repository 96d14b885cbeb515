"""The ``ctx`` payload encoding of the .dcq format, reading side (spec ``dcq-v1.md`` §14,
version 1.2, feature ``ctx-payload``).

A ctx file stores every sample's index map as its own rANS stream (random access stays) coded
with probability models stored once in the group ``/ctx``: one model for the file, or one per
cluster. This module defines the names, validates ``/ctx`` at open (:func:`read_ctx`) and
decodes a sample's indices (:func:`sample_indices`; the reader's pixel paths call the kernels
through :mod:`dcqformat.format.payload`); the coder itself lives
in :mod:`dcqformat.codecs.ctx` and the writing side in :mod:`dcqformat.format.ctx_writer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dcqformat.codecs.ctx import decode_indices
from dcqformat.codecs.ctx_model import MAX_MODEL_SLOTS, PROB_BITS, CtxModel, ModelError
from dcqformat.codecs.ctx_rans import STATE_BYTES
from dcqformat.errors import StructureError

if TYPE_CHECKING:
    import h5py

    from dcqformat.format.validate import FileMetadata
    from dcqformat.format.vlen import StringAttributes

#: Most frequencies (rows x K) a file's models may hold: 32 MiB stored, 64 MiB of tables.
MAX_MODEL_ENTRIES = 1 << 24
FEATURE = "ctx-payload"
ENCODING = "ctx"
GROUP = "ctx"
ATTR_MODELS = "models"  # "file" or "cluster"
ATTR_CONTEXT = "context"
ATTR_PROB_BITS = "prob_bits"
CONTEXT_NAME = "neighbours-10"  # §14.2: the ten-bit equality context of eight neighbours
MODEL_KINDS = ("file", "cluster")
DS_ROWS = "rows"
DS_FREQ = "freq"

__all__ = ["ENCODING", "FEATURE", "CtxSection", "ctx_report", "kept_rects", "read_ctx",
           "sample_indices"]


@dataclass
class CtxSection:
    """The validated ``/ctx`` group of an open file: the models and how samples pick one."""

    kind: str  # "file" or "cluster"
    model: CtxModel
    stored_bytes: int = 0

    def model_ids(self, clusters: np.ndarray) -> np.ndarray:
        """The model of each sample (int64): 0, or the sample's cluster."""
        c = np.asarray(clusters, dtype=np.int64)
        return c if self.kind == "cluster" else np.zeros_like(c)


def kept_rects(h: int, w: int, p: int, keep: np.ndarray) -> np.ndarray:
    """The (height, width) int64 [n, 2] of the kept patches of an ``h``×``w`` sample at patch
    size ``p`` (``keep`` boolean grid [gh, gw]), in increasing patch number (§13 order)."""
    gh, gw = keep.shape
    r, c = np.nonzero(keep)
    heights = np.minimum(p, h - r.astype(np.int64) * p)
    widths = np.minimum(p, w - c.astype(np.int64) * p)
    assert gh >= 1 and gw >= 1
    return np.stack([heights, widths], axis=1).astype(np.int64).reshape(-1, 2)


def read_ctx(h5: h5py.File, meta: FileMetadata, strings: StringAttributes, features: list[str],
             sections: dict[str, int]) -> CtxSection | None:
    """Validate ``/ctx`` against ``meta`` (samples already range-checked); None for a file
    that does not use the ctx encoding. ``strings`` reads the file's string attributes within
    bounds. Raises StructureError naming what was found."""
    import h5py

    from dcqformat.format import h5checks as H

    where = strings.where
    listed = FEATURE in features
    if meta.payload_encoding != ENCODING:
        if listed:
            raise StructureError(f"{where}: must_understand lists {FEATURE!r} but payload_encoding "
                                 f"is {meta.payload_encoding!r}, not {ENCODING!r}")
        return None  # §9: a /ctx group in another file is a reserved path, ignored
    if not listed:
        raise StructureError(f"{where}: payload_encoding {ENCODING!r} needs must_understand to "
                             f"list {FEATURE!r}")
    group = h5.get(GROUP)
    if not isinstance(group, h5py.Group):
        raise StructureError(f"{where}: payload_encoding {ENCODING!r} needs the group '/{GROUP}'")
    kind = strings.one(group, ATTR_MODELS, f"'/{GROUP}' attribute {ATTR_MODELS!r}")
    if kind not in MODEL_KINDS:
        raise StructureError(f"{where}: '/{GROUP}' attribute {ATTR_MODELS!r} must be one of "
                             f"{MODEL_KINDS}, found {kind!r}")
    context = strings.one(group, ATTR_CONTEXT, f"'/{GROUP}' attribute {ATTR_CONTEXT!r}")
    if context != CONTEXT_NAME:
        raise StructureError(f"{where}: '/{GROUP}' attribute {ATTR_CONTEXT!r} must be "
                             f"{CONTEXT_NAME!r}, found {context!r}")
    what = f"'/{GROUP}' attribute {ATTR_PROB_BITS!r}"
    raw_bits = H.numeric_attribute(group, ATTR_PROB_BITS, where, what)
    if raw_bits is None or raw_bits.shape != () or raw_bits.dtype.kind not in "iu" or int(raw_bits) != PROB_BITS:
        found = H.describe_attribute(group, ATTR_PROB_BITS) if raw_bits is None else repr(raw_bits)
        raise StructureError(f"{where}: {what} must be {PROB_BITS}, found {found}")
    num_models = 1 if kind == "file" else int(meta.palettes.shape[0])
    if num_models * 1024 > MAX_MODEL_SLOTS:
        raise StructureError(f"{where}: {num_models} cluster models exceed the limit of "
                             f"{MAX_MODEL_SLOTS // 1024} models")
    # Shapes first, so that a hostile declared size is refused before anything is read.
    declared = [H.dataset(group, name, where, meta.file_size).shape for name in (DS_ROWS, DS_FREQ)]
    n_rows = declared[0][0] if len(declared[0]) == 1 else -1
    if not 0 <= n_rows <= num_models * 1024 or n_rows * meta.palette_size > MAX_MODEL_ENTRIES:
        raise StructureError(f"{where}: dataset '/{GROUP}/{DS_ROWS}' must be 1-D with at most "
                             f"{num_models * 1024} rows and rows x K <= {MAX_MODEL_ENTRIES}, found "
                             f"shape {declared[0]} at K = {meta.palette_size}")
    rows = H.read_array(group, DS_ROWS, where, np.dtype("<u4"), None, sections, meta.file_size)
    freq = H.read_array(group, DS_FREQ, where, np.dtype("<u2"), (rows.shape[0] * meta.palette_size,),
                        sections, meta.file_size)
    try:
        model = CtxModel.from_arrays(num_models, meta.palette_size, rows, freq)
    except ModelError as exc:
        raise StructureError(f"{where}: '/{GROUP}' model: {exc}") from None
    short = meta.length < STATE_BYTES
    if short.any():
        i = int(np.argmax(short))
        raise StructureError(f"{where}: sample {i}: ctx payload length {int(meta.length[i])} is "
                             f"shorter than the {STATE_BYTES}-byte coder state")
    stored = sum(v for k, v in sections.items() if k.startswith(f"/{GROUP}/"))
    return CtxSection(kind, model, int(stored))


def sample_indices(section: CtxSection, stream: np.ndarray, i: int, model_id: int,
                   rects: np.ndarray, where: str) -> np.ndarray:
    """Decode sample ``i``'s stored indices (uint8, its rectangles' pixels one after another)
    from its stream; ``rects`` int64 [n, 2]. PayloadError names ``where`` and the sample."""
    rects = rects.reshape(-1, 2)
    return decode_indices(np.ascontiguousarray(stream), rects[:, 0], rects[:, 1], section.model,
                          model_id, where=f"{where}: sample {i}")


def ctx_report(meta: FileMetadata) -> dict[str, Any]:
    """The ``ctx`` entry of ``dcqformat info``: model kind, rows, model and stream bytes."""
    section: CtxSection = meta.ctx
    n = max(1, meta.num_samples)
    return {
        "models": section.kind,
        "num_models": section.model.num_models,
        "model_rows": int(section.model.rows.size),
        "model_bytes": section.stored_bytes,
        "stream_bytes": meta.payload_size,
        "stream_bytes_per_image": meta.payload_size / n,
        "model_bytes_per_image": section.stored_bytes / n,
    }
