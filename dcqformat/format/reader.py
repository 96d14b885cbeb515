"""Random-access reader of .dcq v1 files.

Opening a file maps it read-only, reads and validates all metadata (a few dozen bytes per
sample) through h5py from that same open file and closes the HDF5 handle again. Per-sample
reads then go through the map, so they read the very file that was validated even if the path
is replaced meanwhile (:mod:`dcqformat.format.source`). ``fork`` workers inherit the map; a
``DCQFile`` pickled into ``spawn`` workers carries no handle and maps the path again there,
refusing (:class:`~dcqformat.errors.FileChangedError`) a path that names another file by then.
Every offset, length, cluster id and label is checked before any Numba kernel sees it.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from dcqformat.checks import (
    check_int,
    check_path,
    check_ratio,
    check_sample_index,
    check_sample_indices,
)
from dcqformat.codecs.palette import decode_into, decode_kernel
from dcqformat.errors import ChecksumMismatchError, InvalidArgumentError, PayloadError
from dcqformat.format import batch_threads
from dcqformat.format import layout as L
from dcqformat.format import masks as _masks
from dcqformat.format.payload import PayloadDecoder
from dcqformat.format.source import MappedPayload, open_source
from dcqformat.format.validate import FileMetadata, check_pixel_limit, read_metadata

LAYOUTS = ("hwc", "chw")


def _check_layout(layout: Any) -> None:
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise InvalidArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")


class DCQFile(MappedPayload):
    """A .dcq file opened for random access.

    ``len(f)`` is the number of samples; ``f[i]`` returns ``(pixels, label)`` with pixels a
    uint8 array H×W×C. Construction validates the whole structure (see ``spec/dcq-v1.md``,
    "What a reader MUST reject") and raises a :class:`~dcqformat.errors.DcqError` subclass
    naming the file, the section and what was found.

    Parameters
    ----------
    path:
        The .dcq file.
    check_crc:
        Check each sample's CRC-32 as it is read (about 0.9 µs per KiB of stored bytes,
        a third of the decode time of a 224 px image at q = 8). Off by default: memory safety
        never depends on it (every offset, length and id is validated at open and every index
        is checked against K), and :meth:`verify` / ``dcqformat verify`` check every checksum.
    fill:
        For a file with patch masks (spec §13): what dropped patches decode to, ``"stored"``
        (each patch's stored fill colour, default) or ``"zero"``. ``fill`` says which one a
        decode used; :meth:`patch_mask` / :meth:`pixel_mask` give the masks.
    max_pixels:
        The decompression-bomb guard: a file holding a sample of more pixels than this is
        refused at open with a :class:`~dcqformat.errors.PixelLimitError` naming the sample.
        Default :data:`~dcqformat.format.layout.DEFAULT_MAX_PIXELS` (89,478,485, Pillow's
        ``MAX_IMAGE_PIXELS``: 268 MB of RGB per image); None for no limit beyond the format's
        2**28 pixels per sample.
    """

    def __init__(self, path: str | os.PathLike[str], *, check_crc: bool = False,
                 fill: str = "stored", max_pixels: int | None = L.DEFAULT_MAX_PIXELS) -> None:
        self.path = check_path(path, "path")
        self.fill = _masks.check_fill(fill)
        self.check_crc = bool(check_crc)
        self.max_pixels = None if max_pixels is None else check_int(max_pixels, "max_pixels", minimum=1)
        source = open_source(self.path)
        try:
            self._meta: FileMetadata = read_metadata(source)
            check_pixel_limit(self._meta, self.max_pixels, str(self.path))
        except BaseException:
            source.mm.close()
            raise
        finally:
            source.release_fd()
        # Every payload read goes through the map of the validated file (see the module doc).
        MappedPayload.__init__(self, self.path, source, self._meta.payload_offset,
                               self._meta.payload_size)
        m = self._meta
        self._n_pixels = m.height.astype(np.int64) * m.width.astype(np.int64)
        self._offsets = m.offset.astype(np.int64)
        self._lengths = m.length.astype(np.int64)
        self._clusters = m.cluster.astype(np.int64)
        self._crcs = m.crc32.astype(np.int64)
        self._masks: _masks.MaskTable | None = m.masks
        # Pixels each sample's payload holds: H*W, or the kept pixels of a masked sample.
        self._stored_pixels = self._n_pixels if m.masks is None else m.masks.kept_pixels
        # One C-contiguous palette view per cluster, so the hot path does no slicing.
        self._palette_list = [np.ascontiguousarray(p) for p in m.palettes]
        # Stored bytes -> packed maps, indices or pixels, per sample and batched (payload.py).
        self._codec = PayloadDecoder(self._meta, str(self.path), self._stored_pixels)

    # -- metadata ---------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        """Class names; a label is a position in this list."""
        return list(self._meta.classes)

    @property
    def bits(self) -> int:
        """Bits per stored palette index (1..8)."""
        return self._meta.bits

    @property
    def channels(self) -> int:
        """Channels of a decoded image: 1 (grey) or 3 (RGB)."""
        return self._meta.channels

    @property
    def palette_size(self) -> int:
        """Colours per palette, K."""
        return self._meta.palette_size

    @property
    def num_clusters(self) -> int:
        """Number of palettes, C."""
        return self._meta.palettes.shape[0]

    @property
    def palettes(self) -> np.ndarray:
        """All palettes, uint8 [C, K, channels] (a read-only view)."""
        return self._meta.palettes

    @property
    def labels(self) -> np.ndarray:
        """Label of every sample, int64 [N]."""
        return self._meta.label.astype(np.int64)

    @property
    def clusters(self) -> np.ndarray:
        """Palette (cluster) id of every sample, int64 [N]."""
        return self._clusters

    @property
    def heights(self) -> np.ndarray:
        """Height of every sample, int64 [N]."""
        return self._meta.height.astype(np.int64)

    @property
    def widths(self) -> np.ndarray:
        """Width of every sample, int64 [N]."""
        return self._meta.width.astype(np.int64)

    @property
    def payload_encoding(self) -> str:
        """``"raw"``, ``"zstd"`` or ``"ctx"`` (spec §6, §14)."""
        return self._meta.payload_encoding

    @property
    def version(self) -> tuple[int, int]:
        """The file's (major, minor) format version."""
        return self._meta.version

    @property
    def provenance(self) -> dict[str, Any]:
        """Provenance recorded by the writer (parameters, seed, tool, model, sources hash)."""
        return dict(self._meta.provenance)

    @property
    def source_paths(self) -> list[str] | None:
        """Source path of every sample as recorded at write time, or None."""
        return None if self._meta.source_paths is None else list(self._meta.source_paths)

    @property
    def source_sizes(self) -> np.ndarray | None:
        """Bytes of every source file (-1 unknown), or None when not recorded."""
        return self._meta.source_sizes

    @property
    def selections(self) -> dict[str, dict[str, Any]]:
        """Named selections: name -> {"ranking", "selected", "attrs"}."""
        return {k: dict(v) for k, v in self._meta.selections.items()}

    @property
    def patch_size(self) -> int | None:
        """Patch size P of a file with patch masks (spec §13), else None."""
        return None if self._masks is None else self._masks.patch_size

    @property
    def thetas(self) -> np.ndarray | None:
        """Drop ratio θ the encoder recorded for every sample (float32 [N]), or None."""
        return None if self._masks is None else self._masks.theta

    def patch_mask(self, i: int) -> np.ndarray:
        """Boolean keep grid ``[ceil(H/P), ceil(W/P)]`` of sample ``i`` (all True without masks:
        then a single patch covering the image, ``[1, 1]``)."""
        i = self._index(i)
        if self._masks is None:
            return np.ones((1, 1), bool)
        return self._masks.grid(i, int(self._meta.height[i]), int(self._meta.width[i]))

    def patch_fills(self, i: int) -> np.ndarray:
        """Fill palette index of every dropped patch of sample ``i`` (uint8, patches in raster
        order, spec §13; a read-only view, empty without masks)."""
        i = self._index(i)
        return np.zeros(0, np.uint8) if self._masks is None else self._masks.sample_fills(i)

    def index_map(self, i: int) -> np.ndarray:
        """Palette indices of sample ``i``, uint8 ``[H, W]``; in a file with patch masks the
        dropped patches hold their fill index (``fill="stored"``) or 0 (``fill="zero"``)."""
        h, w, _ = self.shape(i)
        i = self._index(i)
        kept = self._codec.indices(self._checked_payload(i), i)
        if self._masks is None:
            return kept.reshape(h, w)
        t = self._masks
        return _masks.scatter_kept(kept, h, w, t.patch_size, t.sample_keep(i),
                                   t.sample_fills(i) if self.fill == "stored" else None)

    def pixel_mask(self, i: int) -> np.ndarray:
        """Boolean ``[H, W]`` of sample ``i``: True where the pixel was stored (kept patch)."""
        i = self._index(i)
        h, w, _ = self.shape(i)
        if self._masks is None:
            return np.ones((h, w), bool)
        return _masks.pixel_mask(self.patch_mask(i), h, w, self._masks.patch_size)

    def shape(self, i: int) -> tuple[int, int, int]:
        """(H, W, C) of sample ``i``."""
        i = self._index(i)
        return int(self._meta.height[i]), int(self._meta.width[i]), self._meta.channels

    def original_shape(self, i: int) -> tuple[int, int, int]:
        """(H, W, C) sample ``i`` had before it was stored smaller (spec §15); its stored
        shape when the file records no original sizes."""
        i = self._index(i)
        m = self._meta
        if m.original_height is None or m.original_width is None:
            return self.shape(i)
        return int(m.original_height[i]), int(m.original_width[i]), m.channels

    def __len__(self) -> int:
        return self._meta.num_samples

    def __repr__(self) -> str:
        m = self._meta
        return (f"DCQFile({str(self.path)!r}, samples={m.num_samples}, bits={m.bits}, "
                f"channels={m.channels}, clusters={m.palettes.shape[0]}, classes={len(m.classes)}, "
                f"encoding={m.payload_encoding!r})")

    # -- decoding ---------------------------------------------------------------------
    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        i = self._index(i)
        m = self._meta
        flat = np.empty(int(self._n_pixels[i]) * m.channels, dtype=np.uint8)
        self._decode(i, flat, planar=False)
        return flat.reshape(int(m.height[i]), int(m.width[i]), m.channels), int(m.label[i])

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i in range(len(self)):
            yield self[i]

    def decode(self, i: int, layout: str = "hwc") -> np.ndarray:
        """Decode sample ``i`` to a new uint8 array, H×W×C (``"hwc"``) or C×H×W (``"chw"``)."""
        i = self._index(i)
        _check_layout(layout)
        h, w, c = self.shape(i)
        out = np.empty((h, w, c) if layout == "hwc" else (c, h, w), dtype=np.uint8)
        self.decode_into(i, out, layout=layout)
        return out

    def decode_into(self, i: int, out: np.ndarray, *, layout: str = "hwc",
                    palette: np.ndarray | None = None) -> np.ndarray:
        """Decode sample ``i`` into the preallocated C-contiguous uint8 array ``out``.

        ``palette`` (uint8 ``[K', channels]``), when given, replaces the sample's stored cluster
        palette (palette-space colour transforms); an index >= K' is a :class:`PayloadError`.
        """
        i = self._index(i)
        pal = None if palette is None else self._check_palette(palette)
        _check_layout(layout)
        h, w, c = self.shape(i)
        want = (h, w, c) if layout == "hwc" else (c, h, w)
        if not isinstance(out, np.ndarray):
            raise InvalidArgumentError(
                f"out must be a numpy array of shape {want}, got {type(out).__name__}")
        if out.dtype != np.uint8 or not out.flags.c_contiguous or out.size != h * w * c:
            raise InvalidArgumentError(
                f"out must be a C-contiguous uint8 array of {want}, got {out.dtype} {out.shape}")
        if not out.flags.writeable:
            raise InvalidArgumentError(f"out must be writable, got a read-only array of {out.shape}")
        self._decode(i, out, planar=layout == "chw", palette=pal)
        return out

    def _check_palette(self, palette: Any) -> np.ndarray:
        c = self._meta.channels
        pal = np.asarray(palette)
        if pal.dtype != np.uint8 or pal.ndim != 2 or pal.shape[1] != c or pal.shape[0] < 1:
            raise InvalidArgumentError(
                f"palette must be uint8 [K, {c}] for {str(self.path)!r}, got {pal.dtype} {pal.shape}")
        return np.ascontiguousarray(pal)

    def packed(self, i: int) -> np.ndarray:
        """The q-bit packed palette indices of sample ``i``'s stored pixels (spec §5): for a
        raw payload a read-only view of the file's bytes, for an entropy-coded one the decoded
        bytes. With patch masks only the kept pixels are stored (:meth:`stored_pixels`)."""
        return self._packed_bytes(self._index(i))

    def packed_batch(self, indices: Sequence[int] | np.ndarray, *, threads: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """The :meth:`packed` bytes of many samples in one buffer: ``(data, offsets)`` with
        ``data`` uint8 and ``offsets`` int64 ``[B + 1]``, sample ``b`` at
        ``data[offsets[b]:offsets[b + 1]]``. A zstd or ctx batch is decoded in one compiled
        call (no per-sample Python work) per thread; ``threads`` as in :meth:`decode_batch`
        (split only for unmasked zstd and ctx samples outside the cache)."""
        idx = self._indices(indices)
        n = batch_threads.thread_count(self._codec, idx, threads, packed=True)
        return batch_threads.packed_batch(self._codec, self._batch_payload(idx), idx, n)

    def enable_cache(self) -> DCQFile:
        """Keep every sample's decoded packed map in RAM (q bits per pixel, at most the raw
        payload's size) so that reading it again decodes at ``raw`` speed: for zstd and ctx
        files, whose first read must entropy-decode. No-op for raw files. Returns self."""
        self._codec.enable_cache()
        return self

    def fill_cache(self, batch: int = 4096) -> DCQFile:
        """:meth:`enable_cache` and decode every sample into it now, ``batch`` at a time (do it
        before forking DataLoader workers: they then share the filled cache)."""
        batch = check_int(batch, "batch", minimum=1)  # range() step: 0 was a ValueError
        if self._codec.enable_cache() is not None:
            for start in range(0, len(self), batch):
                self.packed_batch(np.arange(start, min(start + batch, len(self))))
        return self

    def stored_pixels(self, i: int) -> int:
        """How many pixels sample ``i``'s payload holds: H*W, or its kept pixels under patch
        masks (spec §13)."""
        return int(self._stored_pixels[self._index(i)])

    @property
    def metadata(self) -> FileMetadata:
        """Everything read and validated at open (see :class:`FileMetadata`); read-only use."""
        return self._meta

    def decode_batch(self, indices: Sequence[int] | np.ndarray, layout: str = "chw", *,
                     threads: int | None = None, out: np.ndarray | None = None
                     ) -> np.ndarray | list[np.ndarray]:
        """Decode many samples at once.

        Returns one stacked uint8 array [B, ...] when all samples share a shape, else a list
        of arrays. Without patch masks the batch is one compiled call per step and thread for
        every encoding (raw: one Numba call; zstd: one frame check, one batched decompression,
        one Numba call; ctx: one Numba call) on ``threads`` threads: None (default) for this
        process's CPUs (at most 8; fewer for small batches, see ``threadpool``), or an int >=
        1. Each thread decodes a contiguous chunk of about equal pixel count into its place
        of the output (:mod:`~dcqformat.format.batch_threads`). With patch masks it decodes
        sample by sample in the calling thread (``threads`` is validated, not used).
        ``out``: a writable C-contiguous uint8 array of the stacked result's shape to decode
        into (e.g. shared or pinned memory) and return; the samples must then share a shape
        (after a PayloadError its content is undefined)."""
        _check_layout(layout)
        idx = self._indices(indices)
        n_threads = batch_threads.thread_count(self._codec, idx, threads, packed=False)
        if idx.size == 0:
            return [] if out is None else batch_threads.output_array(out, (0, *np.shape(out)[1:]))
        if self._masks is None:
            return batch_threads.decode_unmasked(self._codec, self._batch_payload(idx), idx,
                                                 self._meta.channels, layout, n_threads, out)
        hs, ws, c = self._meta.height[idx], self._meta.width[idx], self._meta.channels
        if bool((hs == hs[0]).all() and (ws == ws[0]).all()):
            h, w = int(hs[0]), int(ws[0])
            batch = batch_threads.output_array(out, (idx.size, h, w, c) if layout == "hwc" else (idx.size, c, h, w))
            for b, j in enumerate(idx.tolist()):
                self._decode(j, batch[b], planar=layout == "chw")
            return batch
        if out is not None:
            raise InvalidArgumentError("decode_batch: out needs samples of one size")
        return [self.decode(int(j), layout) for j in idx]

    def _indices(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Sample indices as validated int64 (negative ones counted from the end)."""
        return check_sample_indices(indices, self._meta.num_samples, str(self.path))

    def _batch_payload(self, idx: np.ndarray) -> np.ndarray:
        """The payload view, after the per-sample CRC-32 checks of ``idx`` if ``check_crc``."""
        payload = self.payload_view()
        if self.check_crc:
            for j in idx.tolist():
                self._check_sample_crc(int(j), payload)
        return payload

    def _decode(self, i: int, out: np.ndarray, planar: bool,
                palette: np.ndarray | None = None) -> None:
        # Everything the kernels rely on was validated at open (offsets and lengths inside
        # the payload, cluster < C, raw length == ceil(H*W*q/8)) or is checked on the way
        # (zstd frames, ctx streams, ``out`` by the callers).
        m = self._meta
        pal = self._palette_list[self._clusters[i]] if palette is None else palette
        if (palette is None or palette.shape[0] >= m.palette_size) and \
                self._codec.pixels(self._checked_payload(i), i, pal, out, planar):
            return
        packed = self._packed_bytes(i)
        if self._masks is not None:
            _masks.decode_sample(self._masks, i, packed, m.bits, int(m.height[i]),
                                 int(m.width[i]), pal, out, planar, self.fill, str(self.path))
            return
        if palette is not None and palette.shape[0] < m.palette_size:
            bad = decode_into(packed, m.bits, int(self._n_pixels[i]), pal, out, planar)
            if bad:
                raise PayloadError(f"{self.path}: sample {i} holds {bad} palette index(es) >= "
                                   f"the given palette's {palette.shape[0]} colours")
            return
        bad = decode_kernel(packed, m.bits, self._n_pixels[i], pal, out.reshape(-1), planar)
        if bad:
            raise self._bad_index_error(i)

    def _bad_index_error(self, i: int) -> PayloadError:
        return PayloadError(
            f"{self.path}: sample {i} holds a palette index >= palette_size "
            f"{self._meta.palette_size} (payload bytes at offset {int(self._offsets[i])})")

    def _checked_payload(self, i: int) -> np.ndarray:
        """The payload view, after sample ``i``'s CRC-32 check if ``check_crc``."""
        payload = self.payload_view()
        if self.check_crc:
            start = self._offsets[i]
            if zlib.crc32(payload[start:start + self._lengths[i]]) != self._crcs[i]:  # type: ignore[arg-type]
                self._check_sample_crc(i, payload)
        return payload

    def _packed_bytes(self, i: int) -> np.ndarray:
        return self._codec.packed(self._checked_payload(i), i)

    def _check_sample_crc(self, i: int, payload: np.ndarray) -> None:
        start, length = int(self._offsets[i]), int(self._lengths[i])
        crc = zlib.crc32(payload[start:start + length].data) & 0xFFFFFFFF
        if crc != int(self._meta.crc32[i]):
            raise ChecksumMismatchError(
                f"{self.path}: sample {i}: payload CRC-32 is {crc:#010x}, "
                f"the file records {int(self._meta.crc32[i]):#010x}")

    def stored(self, i: int) -> np.ndarray:
        """The stored bytes of sample ``i`` (``payload[offset:offset+length]``, what
        ``/samples/crc32`` covers; spec §8), a read-only view."""
        i = self._index(i)
        start = int(self._offsets[i])
        return self.payload_view()[start:start + int(self._lengths[i])]

    def _index(self, i: int) -> int:
        return check_sample_index(i, self._meta.num_samples, str(self.path))

    # -- reports ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """A storage report: where every byte of the file went, and what it holds."""
        from dcqformat.format.info import storage_report
        return storage_report(self)

    def verify(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Check every checksum and structural rule and decode every sample; raise a DcqError
        on the first failure. ``progress(done, total)`` is called as samples are checked."""
        from dcqformat.format.verify import verify_file
        verify_file(self, progress)

    def selection_indices(self, name: str, fraction: float | None = None) -> np.ndarray:
        """Sample indices of the stored selection ``name``, or a class-balanced nested prefix
        of its ranking holding ``fraction`` of all samples."""
        sel = self._meta.selections.get(name) if isinstance(name, str) else None
        if sel is None:
            raise InvalidArgumentError(
                f"{self.path}: no selection named {name!r}; stored: {sorted(self._meta.selections)}")
        if fraction is None:
            return np.asarray(sel["selected"])
        fraction = check_ratio(fraction, "fraction")
        ranking = np.asarray(sel["ranking"])
        count = max(1, int(round(fraction * len(self))))
        return np.sort(ranking[:count])

    def _attrs_json(self) -> str:
        return json.dumps(self._meta.provenance)
