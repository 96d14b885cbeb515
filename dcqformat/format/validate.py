"""Reading and validating the metadata of a .dcq file.

:func:`read_metadata` enforces every rule of ``spec/dcq-v1.md`` that can be checked without
reading the payload -- magic, version, must-understand features, hard links only, the storage,
dtype and shape of every field, metadata checksums, class names, and the ranges of every
per-sample value -- and returns a :class:`FileMetadata`. Further checks over a
:class:`FileMetadata` are :func:`check_samples` and :func:`check_pixel_limit` (the reader's
decompression-bomb guard). Nothing here lets an exception other than a DcqError escape for a
bad file; the payload checks of a verifier are in :mod:`dcqformat.format.verify`.

Order matters: links are refused before any object is opened by name, the global heaps are
walked before any string is read, and no variable-length value ever goes through HDF5's
conversion (see :mod:`dcqformat.format.vlen`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from dcqformat.errors import (
    DcqError,
    NotADcqFileError,
    PixelLimitError,
    StructureError,
    TruncatedFileError,
    UnsupportedVersionError,
)
from dcqformat.format import h5checks as H
from dcqformat.format import layout as L
from dcqformat.format.btree1 import check_v1_btrees
from dcqformat.format.gheap import Objects, global_heaps
from dcqformat.format.lheap import check_local_heaps, check_root_heap
from dcqformat.format.original_sizes import read_original_sizes
from dcqformat.format.source import Source
from dcqformat.format.vlen import StringAttributes, read_string_dataset


@dataclass
class FileMetadata:
    """Everything about a file except the payload bytes, validated."""

    version: tuple[int, int]
    bits: int
    channels: int
    palette_size: int
    num_samples: int
    payload_encoding: str
    created_by: str
    classes: list[str]
    palettes: np.ndarray
    height: np.ndarray
    width: np.ndarray
    label: np.ndarray
    cluster: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    crc32: np.ndarray
    payload_offset: int
    payload_size: int
    payload_crc32: int
    file_size: int
    provenance: dict[str, Any]
    source_paths: list[str] | None = None
    source_sizes: np.ndarray | None = None
    selections: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: Any = None  # a dcqformat.format.masks.MaskTable for a file with patch masks (spec §13)
    ctx: Any = None  # a dcqformat.format.ctx.CtxSection for a ctx-encoded file (spec §14)
    original_height: np.ndarray | None = None  # spec §15: sizes before the writer downscaled
    original_width: np.ndarray | None = None
    section_bytes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Context:
    """What every check of one open file needs."""

    h5: h5py.File
    where: str
    file_size: int
    source: Source
    heaps: dict[int, Objects]
    sections: dict[str, int] = field(default_factory=dict)

    @property
    def strings(self) -> StringAttributes:
        """The bounded reader of this file's string attributes."""
        return StringAttributes(self.source.mm, self.heaps, self.file_size, self.where)


def read_metadata(source: Source) -> FileMetadata:
    """Validate the structure of the open file ``source`` and return its metadata."""
    where = str(source.path)
    file_size = source.identity.size
    fo = source.file_object()
    try:
        try:
            h5 = h5py.File(fo, "r")
        except OSError as exc:
            text = str(exc)
            if "truncated" in text.lower() or "eof" in text.lower():
                raise TruncatedFileError(f"{where}: the HDF5 file is truncated ({text})") from None
            raise NotADcqFileError(f"{where}: HDF5 cannot open it ({text})") from None
        with h5:
            # A looping local heap free list or B-tree hangs HDF5 in any group walk
            # (lheap.py, btree1.py): the root's heap first (the payload is found by name).
            check_root_heap(source.mm, file_size, where)
            skip = _payload_range(h5)
            check_local_heaps(source.mm, file_size, where, skip)
            check_v1_btrees(source.mm, file_size, where, skip)  # loops of group/chunk indexes
            H.check_links(h5, where)  # before any other object is opened by name
            # Before anything reads a string: a damaged global heap can hang HDF5 (gheap.py).
            heaps = global_heaps(source.mm, file_size, where, skip)
            return _read(_Context(h5, where, file_size, source, heaps))
    except DcqError:
        raise
    except Exception as exc:  # h5py/HDF5 errors on corrupt metadata: name them, never leak
        raise StructureError(f"{where}: corrupt HDF5 structure ({type(exc).__name__}: {exc})") from None
    finally:
        fo.close()


def _payload_range(h5: h5py.File) -> tuple[int, int] | None:
    """Bytes of the contiguous ``/payload`` dataset, skipped by the global heap scan."""
    if not isinstance(h5.get(L.DS_PAYLOAD, getlink=True), h5py.HardLink):
        return None  # absent, or a link check_links refuses next: never followed here
    ds = h5.get(L.DS_PAYLOAD)
    if not isinstance(ds, h5py.Dataset):
        return None
    offset = ds.id.get_offset()
    if offset is None:
        return None
    return int(offset), int(offset) + int(ds.id.get_storage_size())


def _int_attr(ctx: _Context, name: str, lo: int, hi: int) -> int:
    what = f"root attribute {name!r}"
    value = H.numeric_attribute(ctx.h5, name, ctx.where, what)
    if value is None or value.shape != () or value.dtype.kind not in "iu":
        found = H.describe_attribute(ctx.h5, name) if value is None else repr(value)
        raise StructureError(f"{ctx.where}: {what} must be an integer scalar, found {found}")
    v = int(value)
    if not lo <= v <= hi:
        raise StructureError(f"{ctx.where}: {what} must be in {lo}..{hi}, found {v}")
    return v


def _strings_attr(ctx: _Context, name: str) -> tuple[list[str], tuple[int, ...] | None]:
    """The values of a root string attribute (fixed-length or variable-length) and its shape."""
    return ctx.strings.values(ctx.h5, name, f"root attribute {name!r}")


def _str_attr(ctx: _Context, name: str) -> str:
    return ctx.strings.one(ctx.h5, name, f"root attribute {name!r}")


def _check_header(ctx: _Context) -> tuple[tuple[int, int], list[str]]:
    """Magic, version and must-understand features (spec §3, §9, §10 items 1 and 3)."""
    h5, where = ctx.h5, ctx.where
    if L.ATTR_MAGIC not in h5.attrs:
        raise NotADcqFileError(
            f"{where}: an HDF5 file but not a .dcq container (root attribute {L.ATTR_MAGIC!r} missing)")
    magic = _str_attr(ctx, L.ATTR_MAGIC)
    if magic != L.MAGIC:
        raise NotADcqFileError(f"{where}: root attribute {L.ATTR_MAGIC!r} is {magic!r}, expected {L.MAGIC!r}")
    what = f"root attribute {L.ATTR_VERSION!r}"
    version = H.numeric_attribute(h5, L.ATTR_VERSION, where, what)
    if version is None or version.shape != (2,) or version.dtype.kind not in "iu":
        found = H.describe_attribute(h5, L.ATTR_VERSION) if version is None else repr(version)
        raise StructureError(f"{where}: {what} must be two integers, found {found}")
    major, minor = int(version[0]), int(version[1])
    if major != L.VERSION_MAJOR:
        raise UnsupportedVersionError(
            f"{where}: format version {major}.{minor} is not readable by this reader, which reads "
            f"version {L.VERSION_MAJOR}.x (up to {L.VERSION_MAJOR}.{L.VERSION_MINOR})")
    features, _shape = _strings_attr(ctx, L.ATTR_MUST_UNDERSTAND)
    unknown = sorted(set(features) - L.KNOWN_FEATURES)
    if unknown:
        raise UnsupportedVersionError(
            f"{where}: the file (version {major}.{minor}) needs features {unknown} that this reader "
            f"(version {L.VERSION_MAJOR}.{L.VERSION_MINOR}) does not understand")
    return (major, minor), features


def check_class_names(names: list[str], where: str) -> None:
    """Spec §4: class names are non-empty, unique, and hold no newline and no NUL."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if not name or "\n" in name or "\0" in name:
            raise StructureError(f"{where}: class {j} has the name {name!r}; class names must be "
                                 "non-empty without newline or NUL characters")
        if name in seen:
            raise StructureError(f"{where}: classes {seen[name]} and {j} are both named {name!r}; "
                                 "class names must be unique")
        seen[name] = j


def _classes(ctx: _Context, num_classes: int) -> list[str]:
    ds = H.dataset(ctx.h5, L.DS_CLASSES, ctx.where, ctx.file_size)
    raw = read_string_dataset(ds, ctx.source.mm, ctx.heaps, ctx.file_size, ctx.where)
    if len(raw) != num_classes:
        raise StructureError(f"{ctx.where}: dataset '/classes' must hold {num_classes} strings, "
                             f"found {len(raw)}")
    H.check_crc(ds, zlib.crc32(b"\n".join(raw)) & 0xFFFFFFFF, ctx.where)
    names = []
    for j, value in enumerate(raw):
        try:
            names.append(value.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise StructureError(f"{ctx.where}: class {j} is not UTF-8 ({exc})") from None
    check_class_names(names, ctx.where)
    ctx.sections[ds.name] = ds.id.get_storage_size()
    return names


def _contiguous(ds: h5py.Dataset, where: str) -> None:
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters():
        kind = {h5py.h5d.COMPACT: "compact", h5py.h5d.CHUNKED: "chunked"}.get(layout, f"layout {layout}")
        raise StructureError(f"{where}: dataset {ds.name!r} must use contiguous storage without "
                             f"filters, found {kind}" + (" with filters" if dcpl.get_nfilters() else ""))


def _payload(ctx: _Context) -> tuple[int, int, int]:
    """(offset in the file, size, stored CRC-32) of ``/payload`` (spec §4, §10 items 2 and 4)."""
    where = ctx.where
    payload = H.dataset(ctx.h5, L.DS_PAYLOAD, where, ctx.file_size)
    if payload.dtype != np.uint8 or payload.ndim != 1:
        raise StructureError(f"{where}: dataset '/payload' must be 1-D uint8, found {payload.dtype} {payload.shape}")
    _contiguous(payload, where)
    size = int(payload.shape[0])
    crc = H.stored_crc(payload, where)
    offset = payload.id.get_offset()
    if size and offset is None:
        raise TruncatedFileError(f"{where}: dataset '/payload' of {size} bytes has no storage in the file")
    start = int(offset or 0)
    if start + size > ctx.file_size:
        raise TruncatedFileError(
            f"{where}: the payload spans bytes {start}..{start + size} "
            f"but the file has only {ctx.file_size} bytes")
    ctx.sections["/payload"] = size
    return start, size, crc


def _sources(ctx: _Context, n: int) -> tuple[list[str] | None, np.ndarray | None]:
    h5, where = ctx.h5, ctx.where
    if L.GROUP_SOURCES not in h5:
        return None, None
    src = h5[L.GROUP_SOURCES]
    if not isinstance(src, h5py.Group):
        raise StructureError(f"{where}: '/{L.GROUP_SOURCES}' must be a group")
    blob = H.read_array(src, L.SOURCE_PATH, where, np.dtype("u1"), None, ctx.sections, ctx.file_size)
    if blob.ndim != 1:
        raise StructureError(f"{where}: dataset '/sources/path' must be 1-D, found shape {blob.shape}")
    try:
        paths = blob.tobytes().decode("utf-8").split("\n") if n else []
    except UnicodeDecodeError as exc:
        raise StructureError(f"{where}: dataset '/sources/path' is not UTF-8 ({exc})") from None
    if len(paths) != n:
        raise StructureError(f"{where}: dataset '/sources/path' holds {len(paths)} paths, expected {n}")
    sizes = H.read_array(src, "size", where, L.SOURCE_FIELDS["size"], (n,), ctx.sections, ctx.file_size)
    return paths, sizes


def _selections(ctx: _Context, n: int) -> dict[str, dict[str, Any]]:
    h5, where = ctx.h5, ctx.where
    selections: dict[str, dict[str, Any]] = {}
    if L.GROUP_SELECTIONS not in h5:
        return selections
    sel_group = h5[L.GROUP_SELECTIONS]
    if not isinstance(sel_group, h5py.Group):
        raise StructureError(f"{where}: '/{L.GROUP_SELECTIONS}' must be a group")
    for name in sel_group:
        g = sel_group[name]
        if not isinstance(g, h5py.Group):
            raise StructureError(f"{where}: selection {name!r} must be a group")
        entry: dict[str, Any] = {}
        for part in ("ranking", "selected"):
            arr = H.read_array(g, part, where, np.dtype("<i8"), None, ctx.sections, ctx.file_size)
            if arr.ndim != 1:
                raise StructureError(f"{where}: selection {name!r} {part} must be 1-D, found {arr.shape}")
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                raise StructureError(f"{where}: selection {name!r} {part} holds indices outside 0..{n - 1}")
            entry[part] = arr
        entry["attrs"] = H.read_json(g, "attrs", where, ctx.sections, ctx.file_size)
        selections[name] = entry
    return selections


def _read(ctx: _Context) -> FileMetadata:
    h5, where = ctx.h5, ctx.where
    version, features = _check_header(ctx)
    bits = _int_attr(ctx, L.ATTR_BITS, 1, 8)
    channels = _int_attr(ctx, L.ATTR_CHANNELS, 1, 3)
    if channels == 2:
        raise StructureError(f"{where}: root attribute 'channels' must be 1 or 3, found 2")
    k = _int_attr(ctx, L.ATTR_PALETTE_SIZE, 1, 1 << bits)
    n = _int_attr(ctx, L.ATTR_NUM_SAMPLES, 0, 1 << 40)
    c = _int_attr(ctx, L.ATTR_NUM_CLUSTERS, 1, 1 << 32)
    num_classes = _int_attr(ctx, L.ATTR_NUM_CLASSES, 1, 1 << 32)
    encoding = _str_attr(ctx, L.ATTR_PAYLOAD_ENCODING)
    if encoding not in L.STORED_ENCODINGS:
        raise StructureError(
            f"{where}: root attribute {L.ATTR_PAYLOAD_ENCODING!r} must be one of {L.STORED_ENCODINGS}, found {encoding!r}")
    created_by = _str_attr(ctx, L.ATTR_CREATED_BY) if L.ATTR_CREATED_BY in h5.attrs else ""
    if n > ctx.file_size:  # every sample needs at least one payload byte
        raise StructureError(f"{where}: num_samples {n} exceeds the file's {ctx.file_size} bytes")

    classes = _classes(ctx, num_classes)
    palettes_ds = H.dataset(h5, L.DS_PALETTES, where, ctx.file_size)
    _contiguous(palettes_ds, where)
    palettes = H.read_array(h5, L.DS_PALETTES, where, np.dtype("u1"), (c, k, channels),
                            ctx.sections, ctx.file_size)
    palettes.setflags(write=False)
    group = h5.get(L.GROUP_SAMPLES)
    if not isinstance(group, h5py.Group):
        raise StructureError(f"{where}: group '/{L.GROUP_SAMPLES}' is missing")
    fields = {name: H.read_array(group, name, where, dtype, (n,), ctx.sections, ctx.file_size)
              for name, dtype in L.SAMPLE_FIELDS.items()}
    payload_offset, payload_size, payload_crc = _payload(ctx)
    provenance = H.read_json(h5, L.DS_PROVENANCE, where, ctx.sections, ctx.file_size)
    source_paths, source_sizes = _sources(ctx, n)
    selections = _selections(ctx, n)

    meta = FileMetadata(
        version=version, bits=bits, channels=channels, palette_size=k, num_samples=n,
        payload_encoding=encoding, created_by=created_by, classes=classes, palettes=palettes,
        payload_offset=payload_offset, payload_size=payload_size, payload_crc32=payload_crc,
        file_size=ctx.file_size, provenance=provenance, source_paths=source_paths,
        source_sizes=source_sizes, selections=selections, section_bytes=ctx.sections,
        **fields,
    )
    masked = "patch-mask" in features  # an unlisted /masks is ignored (spec §9)
    check_samples(meta, where, num_classes, raw_lengths=not masked)
    if masked:  # lengths cover the kept pixels only: checked there
        from dcqformat.format.masks import read_masks
        meta.masks = read_masks(h5, meta, where, features, ctx.sections)
    from dcqformat.format.ctx import read_ctx
    meta.ctx = read_ctx(h5, meta, ctx.strings, features, ctx.sections)
    sizes = read_original_sizes(group, n, where, ctx.sections, ctx.file_size)
    if sizes is not None:
        meta.original_height, meta.original_width = sizes
    return meta


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def check_samples(m: FileMetadata, where: str, num_classes: int, raw_lengths: bool = True) -> None:
    """Spec §10 item 6 over the per-sample arrays: sizes, labels, clusters, payload ranges and
    (``raw_lengths``, for a file without masks) raw lengths."""
    h, w = m.height.astype(np.int64), m.width.astype(np.int64)
    for name, arr in (("height", h), ("width", w)):
        bad = (arr < 1) | (arr > L.MAX_SIDE)
        if bad.any():
            i = _first_bad(bad)
            raise StructureError(f"{where}: sample {i}: {name} {int(arr[i])} is outside 1..{L.MAX_SIDE}")
    pixels = h * w
    bad = pixels > L.MAX_PIXELS
    if bad.any():
        i = _first_bad(bad)
        raise StructureError(f"{where}: sample {i}: {int(h[i])}x{int(w[i])} exceeds {L.MAX_PIXELS} pixels")
    bad = m.label >= num_classes
    if bad.any():
        i = _first_bad(bad)
        raise StructureError(f"{where}: sample {i}: label {int(m.label[i])} is >= num_classes {num_classes}")
    c = m.palettes.shape[0]
    bad = m.cluster >= c
    if bad.any():
        i = _first_bad(bad)
        raise StructureError(f"{where}: sample {i}: cluster {int(m.cluster[i])} is >= num_clusters {c}")
    off, length = m.offset, m.length
    # uint64 arithmetic cannot overflow here: both are checked against payload_size first.
    bad = (off > m.payload_size) | (length > m.payload_size) | (off + np.minimum(length, m.payload_size) > m.payload_size)
    if bad.any():
        i = _first_bad(bad)
        raise StructureError(
            f"{where}: sample {i}: payload bytes {int(off[i])}..{int(off[i]) + int(length[i])} lie "
            f"outside the payload of {m.payload_size} bytes")
    expected = (pixels * m.bits + 7) // 8
    if m.payload_encoding == "raw" and raw_lengths:
        bad = length.astype(np.int64) != expected
        if bad.any():
            i = _first_bad(bad)
            raise StructureError(
                f"{where}: sample {i}: raw payload length {int(length[i])} != ceil(H*W*bits/8) = {int(expected[i])}")
    elif m.payload_encoding == "zstd":  # ctx: at least its 4 state bytes, checked in ctx.py
        bad = length < 1
        if bad.any():
            i = _first_bad(bad)
            raise StructureError(f"{where}: sample {i}: zstd payload length is 0")


def check_pixel_limit(m: FileMetadata, max_pixels: int | None, where: str) -> None:
    """The reader's decompression-bomb guard: PixelLimitError naming the first sample with more
    than ``max_pixels`` pixels (None: no guard beyond the format's 2**28 per sample)."""
    if max_pixels is None or m.num_samples == 0:
        return
    pixels = m.height.astype(np.int64) * m.width.astype(np.int64)
    bad = pixels > max_pixels
    if bad.any():
        i = _first_bad(bad)
        raise PixelLimitError(
            f"{where}: sample {i} is {int(m.height[i])}x{int(m.width[i])} = {int(pixels[i])} pixels, "
            f"more than the reader's limit of {max_pixels} (a guard against decompression bombs); "
            f"open it with DCQFile(path, max_pixels=None) or a larger max_pixels "
            f"(command line: --max-pixels 0) if you trust the file")
