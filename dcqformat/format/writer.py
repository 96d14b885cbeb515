"""Streaming writer of .dcq v1 files.

Samples are appended one at a time; their packed bytes go to a spool file beside the
target, their small metadata stays in memory (a few dozen bytes per sample). ``close``
builds the HDF5 container in a second temporary file, copies the payload in bounded
chunks, writes the checksums, fsyncs and only then publishes it under the target name
(:mod:`dcqformat.format.publish`): without replacing an existing file unless
``overwrite=True``, with mode ``0o666 & ~umask``. The temporary files have no name where the
system allows it (``O_TMPFILE``), so even a killed writer leaves nothing behind; an exception
inside the ``with`` block, or :meth:`DCQWriter.abort`, discards them, and a failed write never
leaves anything under the target name.
"""

from __future__ import annotations

import json
import os
import zlib
from array import array
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from dcqformat._version import __version__
from dcqformat.checks import check_choice, check_int, check_path
from dcqformat.codecs.bitpack import pack_indices
from dcqformat.errors import InvalidArgumentError, WriteError
from dcqformat.format import ctx as C
from dcqformat.format import ctx_writer as CW
from dcqformat.format import layout as L
from dcqformat.format.masks import FEATURE, MaskWriter
from dcqformat.format.original_sizes import MINOR_VERSION as ORIGINAL_SIZES_MINOR
from dcqformat.format.original_sizes import OriginalSizeWriter
from dcqformat.format.publish import TempFile, check_replaceable, publish_error, remove_stale
from dcqformat.format.spool import PayloadSpool
from dcqformat.format.write_checks import (
    check_class_names,
    checked_int,
    crc32_of,
    deflate_options,
    utf8_text,
)

_COPY_CHUNK = 16 << 20


class DCQWriter:
    """Write a .dcq file sample by sample.

    Parameters
    ----------
    path:
        Target file. It appears only when the writer closes successfully, with mode
        ``0o666 & ~umask``.
    bits:
        Bits per pixel index, 1..8.
    channels:
        1 (grey) or 3 (RGB).
    classes:
        Class names; a sample's label is a position in this list.
    palette_size:
        Colours per palette K, 1..2**bits (default ``2**bits``).
    payload_encoding:
        ``"raw"`` (bit-packed bytes, fastest), ``"zstd"`` (each sample one zstd frame),
        ``"ctx"`` (each sample one rANS stream under context models stored once in the file,
        spec §14: the smallest, version 1.2) or ``"auto"`` (all three, keep the smallest,
        counting the ctx models; raw, then zstd, on a tie). After closing,
        ``payload_encoding`` names the one chosen and ``payload_sizes`` what each candidate
        cost (ctx: streams + models); ``ctx_models`` the ctx model candidates measured.
    zstd_level:
        Compression level when ``payload_encoding="zstd"``.
    ctx_models:
        ctx models: ``"auto"`` (one for the file or one per cluster, whichever measures
        smaller), ``"file"`` or ``"cluster"`` (if its histograms fit in memory, else file).
    patch_size:
        Store patch masks (spec §13, feature ``patch-mask``, version 1.1) with this patch size
        P: :meth:`add_sample` then takes ``keep_mask``, ``fills`` and ``theta``. None (default):
        a plain version 1.0 file.
    overwrite:
        Replace ``path`` if it exists. False (default): an existing ``path`` is refused at
        construction (InvalidArgumentError), and a file that appears there while writing is
        never replaced (``close`` raises WriteError and leaves it as it is).

    Use it as a context manager::

        with DCQWriter("out.dcq", bits=2, channels=3, classes=["cat", "dog"]) as w:
            w.set_palettes(palettes)             # uint8 [C, K, channels]
            w.add_sample(indices, cluster=0, label=1)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        bits: int,
        channels: int,
        classes: Sequence[str],
        *,
        palette_size: int | None = None,
        payload_encoding: str = "raw",
        zstd_level: int = L.ZSTD_DEFAULT_LEVEL,
        patch_size: int | None = None,
        overwrite: bool = False,
        ctx_models: str = "auto",
    ) -> None:
        bits = check_int(bits, "bits", minimum=1, maximum=8)
        channels = check_int(channels, "channels", minimum=1, maximum=3)
        if channels == 2:
            raise InvalidArgumentError("channels must be 1 or 3, got 2")
        classes = check_class_names(classes)
        k = (1 << bits) if palette_size is None else check_int(
            palette_size, f"palette_size (for bits={bits})", minimum=1, maximum=1 << bits)
        check_choice(payload_encoding, "payload_encoding", L.PAYLOAD_ENCODINGS)
        check_choice(ctx_models, "ctx_models", ("auto", *C.MODEL_KINDS))
        zstd_level = check_int(zstd_level, "zstd_level", minimum=-(1 << 17), maximum=22)
        self.path = check_path(path, "path")
        if self.path.is_dir():
            raise InvalidArgumentError(f"output path {str(self.path)!r} is a directory")
        if not self.path.parent.is_dir():
            raise InvalidArgumentError(
                f"output folder {str(self.path.parent)!r} does not exist"
            )
        self.overwrite = bool(overwrite)
        if not self.overwrite and os.path.lexists(self.path):
            raise InvalidArgumentError(
                f"output {str(self.path)!r} exists (pass overwrite=True / --force to replace it)")
        check_replaceable(self.path)  # no file where /dev/null was, before any work
        remove_stale(self.path.parent, self.path.name)  # what killed writers left, if any
        self.bits = int(bits)
        self.channels = int(channels)
        self.classes = classes
        self.palette_size = int(k)
        self.payload_encoding = payload_encoding
        self._palettes: np.ndarray | None = None
        self._provenance: dict[str, Any] = {}
        self._selections: dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
        self._masks = None if patch_size is None else MaskWriter(patch_size)
        self._fields = {name: array("Q") for name in ("height", "width", "label", "cluster")}
        self._original = OriginalSizeWriter()
        self._source_paths: list[str] = []
        self._source_sizes = array("q")
        self._any_source = False
        self._closed = False
        self._h5_tmp: TempFile | None = None
        # ctx codes the spooled raw maps in a second pass at close (ctx_writer.py).
        encodings = {"auto": ("raw", "zstd"), "ctx": ("raw",)}.get(payload_encoding, (payload_encoding,))
        self._ctx_models = ctx_models
        self._fitter = CW.CtxFitter(self.palette_size) if payload_encoding in ("ctx", "auto") else None
        self._ctx: C.CtxSection | None = None
        self._stored_pixels = array("Q")
        self._spools: list[PayloadSpool] = []
        try:
            for enc in encodings:
                self._spools.append(PayloadSpool(enc, self.path, zstd_level))
        except OSError as exc:
            for spool in self._spools:
                spool.discard()
            self._closed = True
            raise WriteError(
                f"cannot create a temporary file beside {str(self.path)!r}: "
                f"{exc.strerror or exc}") from None

    # -- building ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._fields["height"])

    def set_palettes(self, palettes: np.ndarray) -> None:
        """Set the palettes, a uint8 array [C, K, channels] (any time before close)."""
        self._check_open()
        pal = np.asarray(palettes)
        expected = f"[C, {self.palette_size}, {self.channels}]"
        if pal.dtype != np.uint8:
            raise InvalidArgumentError(f"palettes must be uint8 {expected}, got dtype {pal.dtype}")
        if pal.ndim != 3 or pal.shape[1:] != (self.palette_size, self.channels) or pal.shape[0] < 1:
            raise InvalidArgumentError(f"palettes must have shape {expected}, got {pal.shape}")
        self._palettes = np.ascontiguousarray(pal)

    def set_provenance(self, mapping: Mapping[str, Any]) -> None:
        """Record provenance (parameters, seed, model identity, source listing hash, ...).

        The mapping must be JSON-serialisable; it is merged into what was set before.
        """
        self._check_open()
        try:
            json.dumps(dict(mapping), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"provenance must be JSON-serialisable: {exc}") from exc
        self._provenance.update(mapping)

    def add_selection(self, name: str, ranking: np.ndarray, selected: np.ndarray,
                      attrs: Mapping[str, Any]) -> None:
        """Store a named selection: a best-first ``ranking`` and the ``selected`` set.

        Both are indices into the samples of this file; ``attrs`` (JSON-serialisable)
        records the method, parameters, seed, model identity and per-class counts.
        """
        self._check_open()
        if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", ".."):
            raise InvalidArgumentError(
                f"selection name must be a non-empty string without '/' or NUL, not '.' or '..', got {name!r}")
        utf8_text(name, "selection name")
        try:
            json.dumps(dict(attrs), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"selection attrs must be JSON-serialisable: {exc}") from exc
        rank_arr = _selection_indices(ranking, name, "ranking")
        sel_arr = _selection_indices(selected, name, "selected")
        if sel_arr.size > 1 and not (np.diff(sel_arr) > 0).all():
            raise InvalidArgumentError(f"selection {name!r}: selected must be sorted ascending without repeats")
        if np.unique(rank_arr).size != rank_arr.size:
            raise InvalidArgumentError(f"selection {name!r}: ranking repeats a sample index")
        self._selections[name] = (rank_arr, sel_arr, dict(attrs))

    def add_sample(
        self,
        indices: np.ndarray,
        cluster: int,
        label: int,
        *,
        source_path: str | None = None,
        source_size: int | None = None,
        keep_mask: np.ndarray | None = None,
        fills: np.ndarray | None = None,
        theta: float | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> int:
        """Append one image given as its palette-index map (uint8 [H, W], values < K).

        ``original_size`` ``(H0, W0)``: the image's size before it was stored smaller (spec
        §15; None: the stored size).

        In a writer opened with ``patch_size``: ``keep_mask`` is the boolean patch grid
        ``[ceil(H/P), ceil(W/P)]`` (None: all kept), ``fills`` one palette index per dropped
        patch in raster order (None: each patch's most common index), ``theta`` the drop ratio
        recorded (None: the dropped fraction). Only the kept patches' indices are stored.

        Returns the sample's position in the file.
        """
        self._check_open()
        path_text = "" if source_path is None else utf8_text(str(source_path), f"sample {len(self)}: source_path")
        if "\n" in path_text:
            raise InvalidArgumentError(f"sample {len(self)}: source_path must not contain a newline")
        idx = np.asarray(indices)
        if idx.ndim != 2 or idx.shape[0] < 1 or idx.shape[1] < 1:
            raise InvalidArgumentError(f"indices must be a non-empty 2-D [H, W] array, got shape {idx.shape}")
        h, w = idx.shape
        if h > L.MAX_SIDE or w > L.MAX_SIDE or h * w > L.MAX_PIXELS:
            raise InvalidArgumentError(f"image of {h}x{w} pixels exceeds the format's limits")
        if idx.dtype != np.uint8:
            if not np.issubdtype(idx.dtype, np.integer):
                raise InvalidArgumentError(f"indices must be integers, got dtype {idx.dtype}")
            if idx.min() < 0 or idx.max() > 255:
                raise InvalidArgumentError("indices must lie in 0..255")
            idx = idx.astype(np.uint8)
        top = int(idx.max())
        if top >= self.palette_size:
            raise InvalidArgumentError(
                f"sample {len(self)}: index {top} is >= palette_size {self.palette_size}"
            )
        # Every argument is checked before any state changes, so a refused sample leaves the
        # writer exactly as it was.
        cluster = checked_int("cluster", cluster, 0, L.MAX_CLUSTER, len(self))
        label = checked_int("label", label, 0, len(self.classes) - 1, len(self))
        size_value = -1 if source_size is None else checked_int(
            "source_size", source_size, -1, L.MAX_SOURCE_SIZE, len(self))
        original = self._original.check(original_size, (h, w), len(self))
        prepared = None
        if self._masks is not None:
            prepared = self._masks.prepare(idx, keep_mask, fills, theta, self.palette_size, len(self))
            idx = prepared.kept
        elif keep_mask is not None or fills is not None or theta is not None:
            raise InvalidArgumentError(
                f"sample {len(self)}: keep_mask/fills/theta need a writer opened with patch_size")
        packed = pack_indices(idx, self.bits).tobytes()
        if self._fitter is not None:
            keep = None if prepared is None else prepared.keep_bytes
            self._fitter.add(idx.reshape(-1), CW.sample_rects(h, w, self._masks, keep), cluster)
        try:
            for spool in self._spools:
                spool.append(packed)
        except OSError as exc:  # the spools now disagree: the writer cannot go on
            self.abort()
            raise WriteError(f"cannot write the payload of {str(self.path)!r}: "
                             f"{exc.strerror or exc}") from exc
        f = self._fields
        f["height"].append(h)
        f["width"].append(w)
        f["label"].append(label)
        f["cluster"].append(cluster)
        self._stored_pixels.append(int(idx.size))
        self._original.add(original, (h, w))
        if prepared is not None and self._masks is not None:
            self._masks.commit(prepared)
        if source_path is not None or source_size is not None:
            self._any_source = True
        self._source_paths.append(path_text)
        self._source_sizes.append(size_value)
        return len(self) - 1

    # -- finishing --------------------------------------------------------------------
    def close(self) -> None:
        """Finish the file and move it onto the target name (idempotent)."""
        if self._closed:
            return
        try:
            self._finish()
        except OSError as exc:  # disk full, permissions, a target that appeared: a DcqError
            self.abort()
            raise publish_error(self.path, exc) from exc
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Discard everything written so far; nothing appears under the target name."""
        self._closed = True
        for spool in getattr(self, "_spools", []):
            spool.discard()
        tmp = getattr(self, "_h5_tmp", None)
        if tmp is not None:
            tmp.discard()
            self._h5_tmp = None

    def __enter__(self) -> DCQWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # a writer dropped without close() leaves no temp files
        if not getattr(self, "_closed", True):
            self.abort()

    def _check_open(self) -> None:
        if self._closed:
            raise WriteError(f"writer for {str(self.path)!r} is already closed")

    def _finish(self) -> None:
        if self._palettes is None:
            raise WriteError(f"no palettes were set for {str(self.path)!r}; call set_palettes()")
        n = len(self)
        num_clusters = self._palettes.shape[0]
        clusters = np.frombuffer(self._fields["cluster"], dtype=np.uint64)
        if n and int(clusters.max()) >= num_clusters:
            bad = int(np.argmax(clusters >= num_clusters))
            raise WriteError(
                f"sample {bad} uses cluster {int(clusters[bad])} but only {num_clusters} palettes were set"
            )
        for name, (ranking, selected, _) in self._selections.items():
            for what, arr in (("ranking", ranking), ("selected", selected)):
                if arr.size and (arr.min() < 0 or arr.max() >= n):
                    raise WriteError(f"selection {name!r}: {what} holds an index outside 0..{n - 1}")
        for spool in self._spools:
            spool.finish()
        costs = {sp.encoding: sp.size for sp in self._spools}
        if self._fitter is not None:
            costs["ctx"] = self._add_ctx_spool(num_clusters)
        order = L.STORED_ENCODINGS
        wanted = [sp for sp in self._spools if self.payload_encoding in ("auto", sp.encoding)]
        chosen = min(wanted, key=lambda sp: (costs[sp.encoding], order.index(sp.encoding)))
        self._h5_tmp = TempFile(self.path)
        with self._h5_tmp.file() as fo, h5py.File(fo, "w", libver=("v110", "v110")) as h5:
            self._write_container(h5, n, num_clusters, chosen)
        self._h5_tmp.publish(self.overwrite)  # fsync, then link / rename (never replacing unless asked)
        self._h5_tmp = None
        self.payload_encoding = chosen.encoding
        self.payload_sizes = costs
        for spool in self._spools:
            spool.discard()

    def _add_ctx_spool(self, num_clusters: int) -> int:
        """Fit the ctx model and code every spooled raw map into a new ``ctx`` spool (spec
        §14); returns what the ctx payload costs: its streams plus the model's bytes."""
        assert self._fitter is not None and self._spools[0].encoding == "raw"
        spool = PayloadSpool("ctx", self.path, 0)
        self._spools.append(spool)  # discarded with the others on any failure
        self._ctx, self.ctx_models = CW.fit_and_code(
            self._fitter, self._spools[0], spool, num_clusters, self._ctx_models, self._fields,
            self._stored_pixels, self.bits, self._masks)
        return spool.size + CW.model_storage_bytes(self._ctx.model)

    def _write_container(self, h5: h5py.File, n: int, num_clusters: int, chosen: PayloadSpool) -> None:
        a = h5.attrs
        a[L.ATTR_MAGIC] = L.MAGIC
        # Files without masks or ctx stay version 1.0 (spec §13, §14); masks alone give 1.1.
        masked = self._masks is not None
        coded = chosen.encoding == C.ENCODING
        features = [FEATURE] * masked + [C.FEATURE] * coded
        minor = max(2 * coded, int(masked), ORIGINAL_SIZES_MINOR * self._original.differs)
        a[L.ATTR_VERSION] = np.array([L.VERSION_MAJOR, minor], dtype="<u4")
        a.create(L.ATTR_MUST_UNDERSTAND, data=np.array(features, dtype=object),
                 dtype=h5py.string_dtype("utf-8"))
        a[L.ATTR_BITS] = np.uint8(self.bits)
        a[L.ATTR_CHANNELS] = np.uint8(self.channels)
        a[L.ATTR_PALETTE_SIZE] = np.uint16(self.palette_size)
        a[L.ATTR_NUM_SAMPLES] = np.uint64(n)
        a[L.ATTR_NUM_CLUSTERS] = np.uint32(num_clusters)
        a[L.ATTR_NUM_CLASSES] = np.uint32(len(self.classes))
        a[L.ATTR_PAYLOAD_ENCODING] = chosen.encoding
        a[L.ATTR_CREATED_BY] = f"dcqformat {__version__}"

        str_dt = h5py.string_dtype("utf-8")
        ds = h5.create_dataset(L.DS_CLASSES, data=np.array(self.classes, dtype=object), dtype=str_dt)
        ds.attrs[L.ATTR_CRC32] = np.uint32(zlib.crc32("\n".join(self.classes).encode()) & 0xFFFFFFFF)
        palettes = self._palettes if self._palettes is not None else np.zeros((0, 0, 0), np.uint8)
        self._write_array(h5, L.DS_PALETTES, palettes)

        group = h5.create_group(L.GROUP_SAMPLES)
        lengths = np.frombuffer(chosen.lengths, dtype=np.uint64)
        offsets = np.zeros_like(lengths)
        np.cumsum(lengths[:-1], out=offsets[1:])
        columns = {name: np.frombuffer(self._fields[name], dtype=np.uint64) for name in self._fields}
        columns.update(offset=offsets, length=lengths, crc32=np.frombuffer(chosen.crcs, dtype=np.uint64))
        for name, dtype in L.SAMPLE_FIELDS.items():
            self._write_array(group, name, columns[name].astype(dtype), compress=True)
        self._original.write(group, self._write_array)

        payload = h5.create_dataset(L.DS_PAYLOAD, shape=(chosen.size,), dtype=np.uint8)
        payload.attrs[L.ATTR_CRC32] = np.uint32(chosen.crc & 0xFFFFFFFF)
        with chosen.tmp.file() as spool:
            pos = 0
            while chunk := spool.read(_COPY_CHUNK):
                payload[pos:pos + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                pos += len(chunk)

        if self._any_source:
            src = h5.create_group(L.GROUP_SOURCES)
            blob = np.frombuffer("\n".join(self._source_paths).encode("utf-8"), dtype=np.uint8)
            self._write_array(src, L.SOURCE_PATH, blob, compress=True)
            self._write_array(src, "size", np.frombuffer(self._source_sizes, dtype=np.int64).astype("<i8"),
                              compress=True)

        prov = dict(self._provenance)
        prov.setdefault("tool", f"dcqformat {__version__}")
        blob = np.frombuffer(json.dumps(prov, sort_keys=True).encode("utf-8"), dtype=np.uint8)
        self._write_array(h5, L.DS_PROVENANCE, blob)

        if self._masks is not None:
            self._masks.write(h5, self._write_array)
        if coded and self._ctx is not None:
            CW.write_ctx_group(h5, self._ctx, self._write_array)

        if self._selections:
            sel_group = h5.create_group(L.GROUP_SELECTIONS)
            for name, (ranking, selected, attrs) in sorted(self._selections.items()):
                g = sel_group.create_group(name)
                self._write_array(g, "ranking", ranking)
                self._write_array(g, "selected", selected)
                blob = np.frombuffer(json.dumps(attrs, sort_keys=True).encode("utf-8"), dtype=np.uint8)
                self._write_array(g, "attrs", blob)

    @staticmethod
    def _write_array(group: h5py.Group, name: str, values: np.ndarray, compress: bool = False) -> None:
        values = np.ascontiguousarray(values)
        ds = group.create_dataset(name, data=values, **(deflate_options(values.shape[0]) if compress else {}))
        ds.attrs[L.ATTR_CRC32] = np.uint32(crc32_of(values))


def _selection_indices(values: Any, name: str, what: str) -> np.ndarray:
    """``values`` as int64 [n]: integers only (a float such as 1.5 or NaN was cast silently, a
    bool is no sample number), each below 2**63."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"selection {name!r}: {what} must be integers ({exc})") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"selection {name!r}: {what} must be integers, got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) >= 2**63:
        raise InvalidArgumentError(f"selection {name!r}: {what} holds {int(arr.max())}, not a sample index")
    return arr.astype("<i8").ravel()
