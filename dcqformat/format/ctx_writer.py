"""The ``ctx`` payload encoding, writing side (spec ``dcq-v1.md`` §14).

The writer never holds the index maps: while samples stream in it spools their raw packed maps
(as for the ``raw`` encoding) and adds each map's context histogram to a :class:`CtxFitter`
(1024 x K counts, per cluster while that stays small). At close, :meth:`CtxFitter.fit` builds
the model that measures smaller, one for the file or one per cluster (ideal code length plus
the model's deflated bytes), and :func:`encode_spooled` codes the spooled maps one by one in a
second streaming pass. Memory: the histograms only (at most ``MAX_TRACKED`` counts).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from dcqformat.codecs.bitpack import unpack_indices
from dcqformat.codecs.ctx import encode_indices
from dcqformat.codecs.ctx_context import NUM_CONTEXTS
from dcqformat.codecs.ctx_model import MAX_MODEL_SLOTS, PROB_BITS, CtxModel, count_contexts
from dcqformat.codecs.ctx_rans import STATE_BYTES
from dcqformat.format.ctx import (
    ATTR_CONTEXT,
    ATTR_MODELS,
    ATTR_PROB_BITS,
    CONTEXT_NAME,
    DS_FREQ,
    DS_ROWS,
    GROUP,
    CtxSection,
    kept_rects,
)
from dcqformat.format.masks import grid_shape, mask_offsets, unpack_mask

if TYPE_CHECKING:
    from dcqformat.format.masks import MaskWriter
    from dcqformat.format.spool import PayloadSpool

#: Most histogram entries the per-cluster counts may hold (8 bytes each: 32 MiB).
MAX_TRACKED = 1 << 22
_READ_CHUNK = 16 << 20

__all__ = ["CtxFitter", "code_ctx_payload", "encode_spooled", "fit_and_code",
           "model_storage_bytes", "sample_rects", "write_ctx_group"]


def sample_rects(h: int, w: int, masks: MaskWriter | None, keep_bytes: bytes | None) -> np.ndarray:
    """The rectangles (int64 [n, 2]) a sample's stored pixels are coded in: the whole H×W
    image, or the kept patches of its packed keep mask ``keep_bytes`` (§13 order)."""
    if masks is None or keep_bytes is None:
        return np.array([[h, w]], np.int64)
    gh, gw = grid_shape(h, w, masks.patch_size)
    keep = unpack_mask(np.frombuffer(keep_bytes, np.uint8), gh * gw).reshape(gh, gw)
    return kept_rects(h, w, masks.patch_size, keep)


def model_storage_bytes(model: CtxModel) -> int:
    """About what ``/ctx`` costs in the file: the shuffled, deflated rows and frequencies
    (what HDF5's shuffle + deflate filters store), plus a fixed 600 B of HDF5 headers."""
    total = 600
    for arr in (model.rows.astype("<u4"), model.stored_freq.astype("<u2")):
        raw = np.ascontiguousarray(arr).view(np.uint8).reshape(-1, arr.dtype.itemsize)
        total += len(zlib.compress(np.ascontiguousarray(raw.T).tobytes(), 6))
    return total


class CtxFitter:
    """Context histograms of every sample added: per cluster while ``clusters x 1024 x K``
    stays within ``MAX_TRACKED`` entries, for the whole file always."""

    def __init__(self, k: int) -> None:
        self.k = int(k)
        self.file_counts = np.zeros((NUM_CONTEXTS, self.k), np.int64)
        self.cluster_counts = np.zeros((0, NUM_CONTEXTS, self.k), np.int64)
        self.per_cluster = True
        self.samples = 0

    def _cluster_slot(self, cluster: int) -> np.ndarray | None:
        have = self.cluster_counts.shape[0]
        if cluster < have:
            return self.cluster_counts[cluster]
        need = cluster + 1
        if need * NUM_CONTEXTS * self.k > min(MAX_TRACKED, MAX_MODEL_SLOTS * self.k):
            self.file_counts += self.cluster_counts.sum(axis=0)
            self.cluster_counts = np.zeros((0, NUM_CONTEXTS, self.k), np.int64)
            self.per_cluster = False
            return None
        cap = min(max(need, 2 * have), MAX_TRACKED // (NUM_CONTEXTS * self.k))
        grown = np.zeros((cap, NUM_CONTEXTS, self.k), np.int64)
        grown[:have] = self.cluster_counts
        self.cluster_counts = grown
        return grown[cluster]

    def add(self, values: np.ndarray, rects: np.ndarray, cluster: int) -> None:
        """Count one sample: ``values`` its stored indices, ``rects`` int64 [n, 2]."""
        target = self._cluster_slot(int(cluster)) if self.per_cluster else None
        r = rects.reshape(-1, 2)
        count_contexts(values, np.ascontiguousarray(r[:, 0]), np.ascontiguousarray(r[:, 1]),
                       self.file_counts if target is None else target)
        self.samples += 1

    def fit(self, num_clusters: int, models: str = "auto") -> tuple[CtxSection, dict[str, float]]:
        """The model that measures smaller (stream bits + model bytes), or the kind ``models``
        names (``"file"``; ``"cluster"`` where per-cluster counts were kept), and what each
        candidate measured (``{"file": bytes, "cluster": bytes}``, estimates)."""
        total = self.file_counts + (self.cluster_counts.sum(axis=0) if self.cluster_counts.size
                                    else 0)
        file_counts = total.reshape(1, NUM_CONTEXTS, self.k)
        candidates: dict[str, tuple[CtxModel, float]] = {}
        model = CtxModel.fit(file_counts)
        candidates["file"] = (model, model.cost_bits(file_counts) / 8 + model_storage_bytes(model))
        used = self.cluster_counts.shape[0]
        if self.per_cluster and 1 < num_clusters and num_clusters * NUM_CONTEXTS <= MAX_MODEL_SLOTS \
                and used <= num_clusters:
            counts = np.zeros((num_clusters, NUM_CONTEXTS, self.k), np.int64)
            counts[:used] = self.cluster_counts
            cmodel = CtxModel.fit(counts)
            candidates["cluster"] = (cmodel, cmodel.cost_bits(counts) / 8 + model_storage_bytes(cmodel))
        kind = models if models in candidates else min(candidates, key=lambda name: candidates[name][1])
        measured = {name: float(c[1] + STATE_BYTES * self.samples) for name, c in candidates.items()}
        return CtxSection(kind, candidates[kind][0]), measured


def encode_spooled(raw_file: BinaryIO, lengths: np.ndarray, stored_pixels: np.ndarray, bits: int,
                   rects_of: Callable[[int], np.ndarray], model_ids: np.ndarray,
                   section: CtxSection) -> Iterator[bytes]:
    """The ctx stream of every sample, in order, from the raw spool ``raw_file`` (a binary file
    at position 0; sample i at the next ``lengths[i]`` bytes, ``stored_pixels[i]`` indices),
    read in bounded chunks; the file is closed at the end."""
    with raw_file as fh:
        buf = b""
        pos = 0
        for i in range(lengths.size):
            need = int(lengths[i])
            if len(buf) - pos < need:
                buf = buf[pos:] + fh.read(max(_READ_CHUNK, need))
                pos = 0
            packed = np.frombuffer(buf, np.uint8, count=need, offset=pos)
            pos += need
            values = unpack_indices(packed, int(stored_pixels[i]), bits)
            r = rects_of(i).reshape(-1, 2)
            stream = encode_indices(values, r[:, 0], r[:, 1], section.model, int(model_ids[i]))
            yield stream.tobytes()


def code_ctx_payload(raw: PayloadSpool, out: PayloadSpool, section: CtxSection,
                     heights: np.ndarray, widths: np.ndarray, clusters: np.ndarray,
                     stored_pixels: np.ndarray, bits: int, masks: MaskWriter | None) -> None:
    """Code every map of the finished ``raw`` spool into ``out`` (then finished)."""
    offsets = None if masks is None else mask_offsets(heights, widths, masks.patch_size)

    def rects_of(i: int) -> np.ndarray:
        keep = None if masks is None or offsets is None else \
            bytes(masks.keep[int(offsets[i]):int(offsets[i + 1])])
        return sample_rects(int(heights[i]), int(widths[i]), masks, keep)

    for stream in encode_spooled(raw.tmp.file(), np.frombuffer(raw.lengths, dtype=np.uint64),
                                 stored_pixels, bits, rects_of, section.model_ids(clusters), section):
        out.append(stream)
    out.finish()


def fit_and_code(fitter: CtxFitter, raw: PayloadSpool, out: PayloadSpool, num_clusters: int,
                 models: str, fields: dict[str, Any], stored_pixels: Any, bits: int,
                 masks: MaskWriter | None) -> tuple[CtxSection, dict[str, float]]:
    """Fit the model (:meth:`CtxFitter.fit`) and code the finished ``raw`` spool into ``out``;
    ``fields`` holds the writer's per-sample height, width and cluster arrays. Returns the
    section to store and what each model candidate measured."""
    section, measured = fitter.fit(num_clusters, models)
    cols = {k: np.frombuffer(fields[k], dtype=np.uint64).astype(np.int64)
            for k in ("height", "width", "cluster")}
    code_ctx_payload(raw, out, section, cols["height"], cols["width"], cols["cluster"],
                     np.frombuffer(stored_pixels, dtype=np.uint64), bits, masks)
    return section, measured


def write_ctx_group(h5: object, section: CtxSection,
                    write_array: Callable[..., None]) -> None:
    """Create ``/ctx`` (attributes and the two model datasets, each with its CRC-32)."""
    g = h5.create_group(GROUP)  # type: ignore[attr-defined]
    g.attrs[ATTR_MODELS] = section.kind
    g.attrs[ATTR_CONTEXT] = CONTEXT_NAME
    g.attrs[ATTR_PROB_BITS] = np.uint8(PROB_BITS)
    write_array(g, DS_ROWS, section.model.rows.astype("<u4"), compress=True)
    write_array(g, DS_FREQ, section.model.stored_freq.astype("<u2"), compress=True)
