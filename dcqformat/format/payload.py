"""Decoding the stored bytes of samples, for every payload encoding (spec ``dcq-v1.md`` §6,
§13, §14): the reader's hot path, per sample and batched.

:class:`PayloadDecoder` holds the per-sample tables of an open file and turns stored bytes into
packed q-bit maps (:meth:`~PayloadDecoder.packed`, :meth:`~PayloadDecoder.packed_batch`), into
index maps (:meth:`~PayloadDecoder.indices`) or straight into pixels
(:meth:`~PayloadDecoder.pixels_batch`). A batch is one compiled call per step whatever its
size: for ``zstd`` one Numba walk over every frame header (exactly one frame of the right size
each) and one python-zstandard ``multi_decompress_to_buffer``; for ``ctx`` one rANS kernel call.
Every offset and length was validated at open, so the kernels only see ranges inside the payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import zstandard

from dcqformat.codecs.bitpack import pack_indices, unpack_indices
from dcqformat.codecs.ctx import batch_status, status_error
from dcqformat.codecs.ctx_context import NUM_CONTEXTS
from dcqformat.codecs.ctx_decode import ctx_decode_pixels_kernel
from dcqformat.codecs.ctx_rans import OK
from dcqformat.codecs.palette import decode_many_kernel
from dcqformat.codecs.zstd_frames import FRAME_OK, FRAME_STATUS_TEXT, check_frames, frame_status
from dcqformat.errors import PayloadError
from dcqformat.format import ctx as C
from dcqformat.format.cache import PackedCache, take
from dcqformat.format.validate import FileMetadata

__all__ = ["PayloadDecoder"]

#: decode_batch modes of the ctx kernel.
MODE_PACKED, MODE_HWC, MODE_CHW = 0, 1, 2


class PayloadDecoder:
    """Decoding of one open file's stored sample bytes (picklable: the zstd context is made
    lazily in each process)."""

    def __init__(self, meta: FileMetadata, where: str, stored_pixels: np.ndarray) -> None:
        self.where = where
        self.encoding = meta.payload_encoding
        self.bits = meta.bits
        self.offsets = meta.offset.astype(np.int64)
        self.lengths = meta.length.astype(np.int64)
        self.heights = meta.height.astype(np.int64)
        self.widths = meta.width.astype(np.int64)
        self.clusters = meta.cluster.astype(np.int64)
        self.stored_pixels = np.asarray(stored_pixels, dtype=np.int64)
        self.packed_sizes = (self.stored_pixels * self.bits + 7) // 8
        self.masks = meta.masks
        self.ctx: C.CtxSection | None = meta.ctx
        self.model_ids = None if self.ctx is None else self.ctx.model_ids(self.clusters)
        self.model_bases = None if self.model_ids is None else self.model_ids * NUM_CONTEXTS
        self.palettes = meta.palettes
        self.palette_size = meta.palette_size
        self.cache: PackedCache | None = None  # opt-in (enable_cache)
        self._dctx: zstandard.ZstdDecompressor | None = None

    def enable_cache(self) -> PackedCache | None:
        """Keep every decoded packed map in RAM from now on (no-op for ``raw``: its bytes are
        the packed maps already); returns the cache."""
        if self.cache is None and self.encoding != "raw":
            self.cache = PackedCache(self.packed_sizes)
        return self.cache

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_dctx"] = None
        return state

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        if self._dctx is None:
            self._dctx = zstandard.ZstdDecompressor()
        return self._dctx

    # -- one sample ---------------------------------------------------------------------
    def rects(self, i: int) -> np.ndarray:
        """The rectangles sample ``i``'s stored pixels are coded in (§14.2): the image, or
        its kept patches."""
        h, w = int(self.heights[i]), int(self.widths[i])
        if self.masks is None:
            return np.array([[h, w]], np.int64)
        return C.kept_rects(h, w, self.masks.patch_size, self.masks.grid(i, h, w))

    def _stored(self, payload: np.ndarray, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        return payload[start:start + int(self.lengths[i])]

    def _zstd_packed(self, payload: np.ndarray, i: int) -> np.ndarray:
        expected = int(self.packed_sizes[i])
        # offset + length were checked against the payload at open
        status = frame_status(payload, self.offsets[i], self.lengths[i], expected)
        if status != FRAME_OK:
            raise PayloadError(f"{self.where}: sample {i}: {FRAME_STATUS_TEXT[status]}")
        try:
            raw = self._decompressor().decompress(self._stored(payload, i).data)
        except zstandard.ZstdError as exc:
            raise PayloadError(f"{self.where}: sample {i}: corrupt zstd frame ({exc})") from None
        if len(raw) != expected:
            raise PayloadError(
                f"{self.where}: sample {i}: zstd frame decoded to {len(raw)} bytes, expected {expected}")
        return np.frombuffer(raw, dtype=np.uint8)

    def _ctx_indices(self, payload: np.ndarray, i: int) -> np.ndarray:
        assert self.ctx is not None and self.model_ids is not None
        return C.sample_indices(self.ctx, self._stored(payload, i), i, int(self.model_ids[i]),
                                self.rects(i), self.where)

    def indices(self, payload: np.ndarray, i: int) -> np.ndarray:
        """Sample ``i``'s stored indices (uint8 [stored pixels]): raster order, or §13 patch
        order in a masked file."""
        if self.encoding == C.ENCODING and self.cache is None:
            return self._ctx_indices(payload, i)
        return unpack_indices(self.packed(payload, i), int(self.stored_pixels[i]), self.bits)

    def packed(self, payload: np.ndarray, i: int) -> np.ndarray:
        """Sample ``i``'s packed q-bit map of its stored pixels (§5): a view for ``raw``, from
        (and into) the cache when one is enabled."""
        if self.encoding == "raw":
            return self._stored(payload, i)
        if self.cache is not None:
            hit = self.cache.get(i)
            if hit is not None:
                return hit
        if self.encoding == "zstd":
            packed = self._zstd_packed(payload, i)
        else:
            packed = pack_indices(self._ctx_indices(payload, i), self.bits)
        if self.cache is not None:
            self.cache.put(i, packed)
        return packed

    def pixels(self, payload: np.ndarray, i: int, palette: np.ndarray, out: np.ndarray,
               planar: bool) -> bool:
        """Decode an unmasked ctx sample straight to pixels (one kernel call); False when the
        file is not such a file (the caller then decodes from :meth:`packed`)."""
        if self.encoding != C.ENCODING or self.masks is not None or self.cache is not None:
            return False
        assert self.ctx is not None and self.model_bases is not None
        model = self.ctx.model  # one kernel call, no Python in between (the hot path)
        status = ctx_decode_pixels_kernel(payload, self.offsets[i], self.lengths[i], self.heights[i],
                                          self.widths[i], model.entry, self.model_bases[i],
                                          model.cum_flat, model.k, palette,
                                          out if out.ndim == 1 else out.reshape(-1), planar)
        if status != OK:
            raise status_error(f"{self.where}: sample {i}", status)
        return True

    # -- batches ------------------------------------------------------------------------
    def _zstd_batch(self, payload: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b, status = check_frames(payload, self.offsets[idx], self.lengths[idx], self.packed_sizes[idx])
        if b >= 0:
            raise PayloadError(f"{self.where}: sample {int(idx[b])}: {FRAME_STATUS_TEXT[status]}")
        sizes = self.packed_sizes[idx]
        offsets = np.zeros(idx.size + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        # python-zstandard's batch call crashes on an empty batch (SIGFPE) and on frames of
        # content size 0 (double free): those (masked samples with every patch dropped) are
        # decompressed one by one, and the batch call only ever sees non-empty frames.
        empty = sizes == 0
        for j in idx[empty].tolist():
            self._zstd_packed(payload, int(j))
        full = idx[~empty]
        if full.size == 0:
            return np.empty(0, np.uint8), offsets
        segments = np.stack([self.offsets[full], self.lengths[full]], axis=1).astype(np.uint64)
        frames = zstandard.BufferWithSegments(payload.data, segments.tobytes())
        try:
            result = self._decompressor().multi_decompress_to_buffer(
                frames, decompressed_sizes=sizes[~empty].astype(np.uint64).tobytes(), threads=0)
        except zstandard.ZstdError as exc:
            bad = self._first_bad_frame(payload, full)
            raise PayloadError(f"{self.where}: sample {bad}: corrupt zstd frame ({exc})") from None
        data = np.frombuffer(b"".join(result), dtype=np.uint8)  # type: ignore[arg-type]
        if data.size != offsets[-1]:
            raise PayloadError(f"{self.where}: a zstd batch decoded to {data.size} bytes, "
                               f"expected {int(offsets[-1])}")
        return data, offsets

    def _first_bad_frame(self, payload: np.ndarray, idx: np.ndarray) -> int:
        for j in idx.tolist():  # error path only: find which sample is corrupt
            try:
                self._zstd_packed(payload, int(j))
            except PayloadError:
                return int(j)
        return int(idx[0])

    def ctx_into(self, payload: np.ndarray, idx: np.ndarray, out: np.ndarray,
                 out_offsets: np.ndarray, mode: int) -> None:
        """One ctx batch kernel call: samples ``idx`` (unmasked) into ``out`` at ``out_offsets``
        (``mode``: MODE_PACKED, MODE_HWC or MODE_CHW); PayloadError naming a bad sample."""
        assert self.ctx is not None and self.model_ids is not None
        b, status = batch_status(payload, self.offsets[idx], self.lengths[idx], self.heights[idx],
                                 self.widths[idx], self.model_ids[idx], self.ctx.model, self.bits,
                                 self.palettes, self.clusters[idx], out, out_offsets, mode)
        if b >= 0:
            raise status_error(f"{self.where}: sample {int(idx[b])}", status)

    def palette_into(self, data: np.ndarray, starts: np.ndarray, idx: np.ndarray,
                     out: np.ndarray, out_offsets: np.ndarray, planar: bool) -> None:
        """One palette kernel call: the packed maps of samples ``idx`` at ``data[starts[b]:]``
        into ``out`` at ``out_offsets``; PayloadError naming a sample with an index >= K."""
        bad = decode_many_kernel(data, starts, self.stored_pixels[idx], self.clusters[idx],
                                 self.palettes, self.bits, out, out_offsets, planar)
        if bad >= 0:
            raise PayloadError(
                f"{self.where}: sample {int(idx[bad])} holds a palette index >= palette_size "
                f"{self.palette_size} (payload bytes at offset {int(self.offsets[idx[bad]])})")

    def _ctx_batch(self, payload: np.ndarray, idx: np.ndarray, mode: int,
                   sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        offsets = np.zeros(idx.size + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        out = np.empty(int(offsets[-1]), np.uint8)
        self.ctx_into(payload, idx, out, offsets[:-1], mode)
        return out, offsets

    def _uncached_batch(self, payload: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.encoding == "raw":
            return take(payload, self.offsets[idx], self.lengths[idx])
        if self.encoding == "zstd":
            return self._zstd_batch(payload, idx)
        if self.masks is None:
            return self._ctx_batch(payload, idx, MODE_PACKED, self.packed_sizes[idx])
        parts: Sequence[np.ndarray] = [self.packed(payload, int(j)) for j in idx]
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum([p.size for p in parts], out=offsets[1:])
        return (np.concatenate(parts) if parts else np.empty(0, np.uint8)), offsets

    def packed_batch(self, payload: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The packed maps of samples ``idx`` in one buffer: ``(data, offsets [B + 1])``; one
        compiled call per step (a masked ctx file decodes sample by sample)."""
        cache = self.cache
        if cache is None:
            return self._uncached_batch(payload, idx)
        todo = cache.missing(idx)
        if todo.size:
            data, offsets = self._uncached_batch(payload, todo)
            cache.put_batch(todo, data, offsets)
        return take(cache.data, cache.offsets[idx], self.packed_sizes[idx])

    def pixels_batch(self, payload: np.ndarray, idx: np.ndarray, channels: int, planar: bool,
                     out_offsets: np.ndarray, out: np.ndarray) -> None:
        """Pixels of the unmasked samples ``idx`` into the flat uint8 buffer ``out`` (sample
        b at ``out_offsets[b]``, H×W×ch, HWC or CHW): one ctx kernel call, or the packed maps
        (the payload itself for raw, the cache, or one batch decode) through one palette
        kernel call."""
        if self.encoding == C.ENCODING and self.cache is None:
            self.ctx_into(payload, idx, out, out_offsets, MODE_CHW if planar else MODE_HWC)
            return
        if self.encoding == "raw":
            data, starts = payload, self.offsets[idx]
        elif self.cache is not None:
            todo = self.cache.missing(idx)
            if todo.size:
                packed, offsets = self._uncached_batch(payload, todo)
                self.cache.put_batch(todo, packed, offsets)
            data, starts = self.cache.data, self.cache.offsets[idx]
        else:
            data, offsets = self._uncached_batch(payload, idx)
            starts = offsets[:-1]
        self.palette_into(data, starts, idx, out, out_offsets, planar)
