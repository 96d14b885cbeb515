"""Batched decodes of unmasked samples split over threads (:mod:`dcqformat.format.threadpool`).

:func:`pixels_batch` and :func:`packed_batch` take what :class:`~dcqformat.format.payload.
PayloadDecoder`'s methods of the same names take, plus a thread count. With one thread they
are those methods (one compiled call per step). With more, the batch is cut into contiguous
chunks of about equal pixel count and every chunk is decoded by the same compiled calls the
single-threaded path makes, each writing its own samples' places of one preallocated buffer:

- ``ctx``: one rANS batch kernel call per chunk (pixels or packed maps), straight into the
  output at the chunk's offsets;
- ``zstd``: one frame check and one python-zstandard batch call per chunk (each chunk but the
  calling thread's on its own copy of the decoder: no zstd context is shared), then one palette
  kernel call into the output; packed maps are the chunks' buffers one after another;
- ``raw``: one palette kernel call per chunk over the payload itself (packed maps: one copy,
  never split);
- with the decoded-index cache: the samples not cached yet are decoded first (split as
  above; only the calling thread writes the cache), then the palette kernel runs per chunk
  over the cache (packed maps: one copy out of the cache).

Patch-masked samples are never split here: :meth:`DCQFile.decode_batch` decodes them sample
by sample, and their packed maps (ctx: per sample) are decoded in one call in this thread.

A failing sample raises the :class:`~dcqformat.errors.PayloadError` the single-threaded path
raises for it, naming the sample; when several chunks fail, the first chunk's error (in batch
order) is raised, so with several damaged samples the one named can differ from the one the
single-threaded path names (it checks every zstd frame header before decompressing any).
"""

from __future__ import annotations

import copy

import numpy as np

from dcqformat.errors import InvalidArgumentError
from dcqformat.format import ctx as C
from dcqformat.format.cache import take
from dcqformat.format.payload import MODE_CHW, MODE_HWC, MODE_PACKED, PayloadDecoder
from dcqformat.format.threadpool import resolve_threads, run_chunks, split_by_pixels

__all__ = ["thread_count", "decode_unmasked", "output_array", "pixels_batch", "packed_batch"]


def thread_count(codec: PayloadDecoder, idx: np.ndarray, threads: int | None, packed: bool) -> int:
    """The ``threads`` argument resolved for decoding samples ``idx`` (to packed maps or to
    pixels): validated, or the automatic count for the work it takes (entropy decoding of
    ``ctx`` or ``zstd`` samples not in the cache, else only the palette kernel)."""
    cached = codec.cache is not None and bool(codec.cache.filled[idx].all())
    work = "palette" if codec.encoding == "raw" or cached else codec.encoding
    pixels = codec.stored_pixels[idx] if packed else codec.heights[idx] * codec.widths[idx]
    return resolve_threads(threads, int(pixels.sum()), work)


def _thread_copy(codec: PayloadDecoder, first: bool) -> PayloadDecoder:
    """The decoder for one chunk: ``codec`` itself for the first (the calling thread's) when it
    has no cache, else a shallow copy with its own (lazily made) zstd context and no cache."""
    if first and codec.cache is None:
        return codec
    own = copy.copy(codec)  # __getstate__ leaves the zstd context out
    own.cache = None
    return own


def _uncached_packed(codec: PayloadDecoder, payload: np.ndarray, idx: np.ndarray,
                     threads: int) -> tuple[np.ndarray, np.ndarray]:
    """The packed maps of samples ``idx`` decoded from their stored bytes (never from or into
    the cache): split for unmasked ctx and zstd samples, else one call in this thread."""
    split = codec.masks is None and codec.encoding in (C.ENCODING, "zstd")
    chunks = split_by_pixels(codec.stored_pixels[idx], threads) if split else [(0, idx.size)]
    if len(chunks) == 1:
        return _thread_copy(codec, True).packed_batch(payload, idx)
    offsets = np.zeros(idx.size + 1, np.int64)
    np.cumsum(codec.packed_sizes[idx], out=offsets[1:])
    if codec.encoding == C.ENCODING:
        out = np.empty(int(offsets[-1]), np.uint8)
        run_chunks(lambda s, e: codec.ctx_into(payload, idx[s:e], out, offsets[s:e], MODE_PACKED), chunks)
        return out, offsets
    parts = run_chunks(lambda s, e: _thread_copy(codec, s == 0).packed_batch(payload, idx[s:e])[0],
                       chunks)
    return np.concatenate(parts), offsets


def _fill_cache(codec: PayloadDecoder, payload: np.ndarray, idx: np.ndarray, threads: int) -> None:
    """Decode the samples of ``idx`` not in the cache yet (on ``threads`` threads) into it."""
    assert codec.cache is not None
    todo = codec.cache.missing(idx)
    if todo.size:
        data, offsets = _uncached_packed(codec, payload, todo, threads)
        codec.cache.put_batch(todo, data, offsets)  # in this thread only


def pixels_batch(codec: PayloadDecoder, payload: np.ndarray, idx: np.ndarray, channels: int,
                 planar: bool, out_offsets: np.ndarray, out: np.ndarray, threads: int) -> None:
    """:meth:`PayloadDecoder.pixels_batch` on ``threads`` threads (see the module docstring):
    the pixels of the unmasked samples ``idx`` into the flat uint8 buffer ``out``, sample b at
    ``out_offsets[b]``."""
    chunks = split_by_pixels(codec.heights[idx] * codec.widths[idx], threads)
    if len(chunks) == 1:
        codec.pixels_batch(payload, idx, channels, planar, out_offsets, out)
        return
    if codec.encoding == C.ENCODING and codec.cache is None:
        mode = MODE_CHW if planar else MODE_HWC
        run_chunks(lambda s, e: codec.ctx_into(payload, idx[s:e], out, out_offsets[s:e], mode),
                   chunks)
        return
    if codec.encoding == "zstd" and codec.cache is None:
        def zstd_chunk(s: int, e: int) -> None:
            data, offsets = _thread_copy(codec, s == 0).packed_batch(payload, idx[s:e])
            codec.palette_into(data, offsets[:-1], idx[s:e], out, out_offsets[s:e], planar)
        run_chunks(zstd_chunk, chunks)
        return
    if codec.cache is not None:
        _fill_cache(codec, payload, idx, threads)
        data, starts = codec.cache.data, codec.cache.offsets[idx]
    else:  # raw: the payload holds the packed maps
        data, starts = payload, codec.offsets[idx]
    run_chunks(lambda s, e: codec.palette_into(data, starts[s:e], idx[s:e], out, out_offsets[s:e], planar), chunks)


def output_array(out: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``out`` once checked to be a writable C-contiguous uint8 array of ``shape`` (what
    :meth:`DCQFile.decode_batch` decodes into), or a new array of ``shape`` when None."""
    if out is None:
        return np.empty(shape, np.uint8)
    if not isinstance(out, np.ndarray):
        raise InvalidArgumentError(f"decode_batch: out must be a numpy uint8 array of shape {shape}, "
                                   f"got {type(out).__name__}")
    problem = ("dtype " + str(out.dtype) if out.dtype != np.uint8 else
               "shape " + str(tuple(out.shape)) if tuple(out.shape) != shape else
               "a non-contiguous array" if not out.flags.c_contiguous else
               "a read-only array" if not out.flags.writeable else None)
    if problem is not None:
        raise InvalidArgumentError(f"decode_batch: out must be a writable C-contiguous uint8 array "
                                   f"of shape {shape}, got {problem}")
    return out


def decode_unmasked(codec: PayloadDecoder, payload: np.ndarray, idx: np.ndarray, channels: int,
                    layout: str, threads: int, out: np.ndarray | None = None
                    ) -> np.ndarray | list[np.ndarray]:
    """What :meth:`DCQFile.decode_batch` returns for the unmasked samples ``idx`` (non-empty):
    one array [B, ...] when they share a shape (``out`` when given, :func:`output_array`),
    else a list of views of one buffer (``out`` must then be None)."""
    hs, ws = codec.heights[idx], codec.widths[idx]
    sizes = hs * ws * channels
    out_offsets = np.zeros(idx.size, dtype=np.int64)
    np.cumsum(sizes[:-1], out=out_offsets[1:])
    planar = layout == "chw"
    if bool((hs == hs[0]).all() and (ws == ws[0]).all()):
        h, w = int(hs[0]), int(ws[0])
        batch = output_array(out, (idx.size, channels, h, w) if planar else (idx.size, h, w, channels))
        pixels_batch(codec, payload, idx, channels, planar, out_offsets, batch.reshape(-1), threads)
        return batch
    if out is not None:
        raise InvalidArgumentError("decode_batch: out needs samples of one size; these have "
                                   f"{len(set(zip(hs.tolist(), ws.tolist(), strict=True)))} different sizes")
    flat = np.empty(int(sizes.sum()), dtype=np.uint8)
    pixels_batch(codec, payload, idx, channels, planar, out_offsets, flat, threads)
    return [flat[o:o + s].reshape((channels, int(h), int(w)) if planar else (int(h), int(w), channels))
            for o, s, h, w in zip(out_offsets.tolist(), sizes.tolist(), hs.tolist(), ws.tolist(),
                                  strict=True)]


def packed_batch(codec: PayloadDecoder, payload: np.ndarray, idx: np.ndarray,
                 threads: int) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`PayloadDecoder.packed_batch` on ``threads`` threads: ``(data, offsets [B + 1])``.
    The decoding of unmasked ctx and zstd samples (into the cache, when there is one) is
    split; a raw batch and the copy out of the cache are one call."""
    if threads == 1 or codec.encoding == "raw":
        return codec.packed_batch(payload, idx)
    if codec.cache is None:
        return _uncached_packed(codec, payload, idx, threads)
    _fill_cache(codec, payload, idx, threads)
    return take(codec.cache.data, codec.cache.offsets[idx], codec.packed_sizes[idx])
