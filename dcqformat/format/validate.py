"""Reading and validating the metadata of a .dcq file.

:func:`read_metadata` enforces every rule of ``spec/dcq-v1.md`` that can be checked
without reading the payload: magic, version, must-understand features, the dtype and
shape of every field, metadata checksums, and the ranges of every per-sample value.
:func:`verify_file` adds the payload checksums and a decode of every sample.
Nothing here lets an exception other than a DcqError escape for a bad file.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from dcqformat.errors import (
    ChecksumMismatchError,
    DcqError,
    NotADcqFileError,
    StructureError,
    TruncatedFileError,
    UnsupportedVersionError,
)
from dcqformat.format import layout as L
from dcqformat.format.gheap import check_global_heaps

if TYPE_CHECKING:
    from dcqformat.format.reader import DCQFile

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


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
    section_bytes: dict[str, int] = field(default_factory=dict)


def read_metadata(path: Path) -> FileMetadata:
    """Open ``path``, validate its structure and return its metadata (handle closed again)."""
    where = str(path)
    try:
        file_size = os.path.getsize(path)
    except FileNotFoundError:
        raise NotADcqFileError(f"{where}: no such file") from None
    except OSError as exc:
        raise NotADcqFileError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if os.path.isdir(path):
        raise NotADcqFileError(f"{where}: is a directory, not a .dcq file")
    if file_size == 0:
        raise NotADcqFileError(f"{where}: the file is empty (0 bytes), expected an HDF5 .dcq file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != _HDF5_SIGNATURE:
        raise NotADcqFileError(
            f"{where}: not an HDF5 file (first bytes {head!r}, expected the HDF5 signature "
            f"{_HDF5_SIGNATURE!r})")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower() or "eof" in text.lower():
            raise TruncatedFileError(f"{where}: the HDF5 file is truncated ({text})") from None
        raise NotADcqFileError(f"{where}: HDF5 cannot open it ({text})") from None
    try:
        with h5:
            # Before HDF5 reads any variable-length data (class names, string attributes):
            # a damaged global heap can hang HDF5 itself (see gheap.py).
            check_global_heaps(path, file_size, _payload_range(h5))
            return _read(h5, where, file_size)
    except DcqError:
        raise
    except Exception as exc:  # h5py/HDF5 errors on corrupt metadata: name them, never leak
        raise StructureError(f"{where}: corrupt HDF5 structure ({type(exc).__name__}: {exc})") from None


def _payload_range(h5: h5py.File) -> tuple[int, int] | None:
    """Bytes of the contiguous ``/payload`` dataset, skipped by the global heap scan."""
    ds = h5.get(L.DS_PAYLOAD)
    if not isinstance(ds, h5py.Dataset):
        return None
    offset = ds.id.get_offset()
    if offset is None:
        return None
    return int(offset), int(offset) + int(ds.id.get_storage_size())


def _attr(h5: h5py.File, name: str, where: str) -> Any:
    if name not in h5.attrs:
        raise StructureError(f"{where}: root attribute {name!r} is missing")
    return h5.attrs[name]


def _int_attr(h5: h5py.File, name: str, where: str, lo: int, hi: int) -> int:
    value = _attr(h5, name, where)
    arr = np.asarray(value)
    if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
        raise StructureError(f"{where}: root attribute {name!r} must be an integer scalar, found {value!r}")
    v = int(arr)
    if not lo <= v <= hi:
        raise StructureError(f"{where}: root attribute {name!r} must be in {lo}..{hi}, found {v}")
    return v


def _str_attr(h5: h5py.File, name: str, where: str) -> str:
    value = _attr(h5, name, where)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise StructureError(f"{where}: root attribute {name!r} must be a string, found {value!r}")
    return value


def _dataset(group: h5py.Group, name: str, where: str) -> h5py.Dataset:
    obj = group.get(name)
    path = f"{group.name.rstrip('/')}/{name}"
    if obj is None:
        raise StructureError(f"{where}: dataset {path!r} is missing")
    if not isinstance(obj, h5py.Dataset):
        raise StructureError(f"{where}: {path!r} must be a dataset, found {type(obj).__name__}")
    _check_storage(obj, where)
    return obj


#: deflate cannot expand data by more than about 1032:1; anything claiming more is hostile.
_MAX_INFLATE = 1100


def _check_storage(ds: h5py.Dataset, where: str) -> None:
    """Refuse a dataset whose data does not lie, complete, inside this file.

    External storage and virtual layouts would make the reader open other files; a declared
    shape without stored data (HDF5 then returns fill values) would make a tiny file ask for
    gigabytes of memory. Checked before any of the dataset's data is read.
    """
    dcpl = ds.id.get_create_plist()
    if dcpl.get_external_count() > 0:
        raise StructureError(
            f"{where}: dataset {ds.name!r} keeps its data in external files; a .dcq file must hold "
            "all of its data itself")
    layout = dcpl.get_layout()
    if layout not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED, h5py.h5d.COMPACT):
        kind = "virtual" if layout == h5py.h5d.VIRTUAL else f"layout {layout}"
        raise StructureError(f"{where}: dataset {ds.name!r} has a {kind} layout; only contiguous, "
                             "chunked and compact datasets are allowed")
    file_size = int(ds.file.id.get_filesize())
    variable = h5py.check_vlen_dtype(ds.dtype) is not None or ds.dtype.kind == "O"
    nbytes = int(ds.size) * int(ds.dtype.itemsize)
    stored = int(ds.id.get_storage_size())
    if ds.size == 0:
        return
    if layout == h5py.h5d.CONTIGUOUS:
        offset = ds.id.get_offset()
        if offset is None or stored == 0:
            raise TruncatedFileError(
                f"{where}: dataset {ds.name!r} declares {ds.shape} {ds.dtype} but has no storage "
                "in the file")
        if not variable and stored != nbytes:
            raise StructureError(
                f"{where}: dataset {ds.name!r} stores {stored} bytes, its shape {ds.shape} "
                f"and dtype {ds.dtype.str} need {nbytes}")
        if int(offset) + stored > file_size:
            raise TruncatedFileError(
                f"{where}: dataset {ds.name!r} spans bytes {int(offset)}..{int(offset) + stored} "
                f"but the file has only {file_size} bytes")
    elif layout == h5py.h5d.CHUNKED:
        chunks = ds.chunks or ds.shape
        expected = int(np.prod([-(-s // c) for s, c in zip(ds.shape, chunks, strict=True)]))
        have = int(ds.id.get_num_chunks())
        if have != expected:
            raise StructureError(
                f"{where}: dataset {ds.name!r} has {have} of its {expected} chunks stored")
        if nbytes > _MAX_INFLATE * max(stored, 1) or stored > file_size:
            raise StructureError(
                f"{where}: dataset {ds.name!r} declares {nbytes} bytes from {stored} stored bytes "
                f"in a file of {file_size} bytes")


def _array(group: h5py.Group, name: str, where: str, dtype: np.dtype, shape: tuple[int, ...] | None,
           sections: dict[str, int]) -> np.ndarray:
    ds = _dataset(group, name, where)
    path = ds.name
    if ds.dtype != dtype:
        raise StructureError(f"{where}: dataset {path!r} must have dtype {dtype.str}, found {ds.dtype.str}")
    if shape is not None and ds.shape != shape:
        raise StructureError(f"{where}: dataset {path!r} must have shape {shape}, found {ds.shape}")
    values = ds[()]
    _check_crc(ds, zlib.crc32(np.ascontiguousarray(values).tobytes()) & 0xFFFFFFFF, where)
    sections[path] = ds.id.get_storage_size()
    return np.asarray(values)


def checked_array(group: h5py.Group, name: str, where: str, dtype: np.dtype,
                  shape: tuple[int, ...] | None, sections: dict[str, int]) -> np.ndarray:
    """A dataset's values after the storage, dtype, shape and CRC-32 checks of §4 (for the
    sections other modules read: ``/ctx``); its storage size is recorded in ``sections``."""
    return _array(group, name, where, dtype, shape, sections)


def _stored_crc(ds: h5py.Dataset, where: str) -> int:
    if L.ATTR_CRC32 not in ds.attrs:
        raise StructureError(f"{where}: dataset {ds.name!r} has no {L.ATTR_CRC32!r} attribute")
    value = np.asarray(ds.attrs[L.ATTR_CRC32])
    if value.shape != () or not np.issubdtype(value.dtype, np.integer):
        raise StructureError(f"{where}: {ds.name!r} attribute crc32 must be an integer, found {value!r}")
    return int(value)


def _check_crc(ds: h5py.Dataset, actual: int, where: str) -> None:
    stored = _stored_crc(ds, where)
    if stored != actual:
        raise ChecksumMismatchError(
            f"{where}: dataset {ds.name!r} has CRC-32 {actual:#010x}, the file records {stored:#010x}")


def _strings(group: h5py.Group, name: str, where: str, count: int | None,
             sections: dict[str, int]) -> list[str]:
    ds = _dataset(group, name, where)
    if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None:
        raise StructureError(f"{where}: dataset {ds.name!r} must be a 1-D string array, found {ds.dtype} {ds.shape}")
    if count is not None and ds.shape[0] != count:
        raise StructureError(f"{where}: dataset {ds.name!r} must hold {count} strings, found {ds.shape[0]}")
    values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in ds[()]]
    _check_crc(ds, zlib.crc32("\n".join(values).encode()) & 0xFFFFFFFF, where)
    sections[ds.name] = ds.id.get_storage_size()
    return values


def _json_blob(group: h5py.Group, name: str, where: str, sections: dict[str, int]) -> dict[str, Any]:
    path = f"{group.name.rstrip('/')}/{name}"
    blob = _array(group, name, where, np.dtype("u1"), None, sections)
    if blob.ndim != 1:
        raise StructureError(f"{where}: dataset {path!r} must be 1-D, found shape {blob.shape}")
    try:
        value = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StructureError(f"{where}: dataset {path!r} is not UTF-8 JSON ({exc})") from None
    if not isinstance(value, dict):
        raise StructureError(f"{where}: dataset {path!r} must hold a JSON object, found {type(value).__name__}")
    return value


def _read(h5: h5py.File, where: str, file_size: int) -> FileMetadata:
    if L.ATTR_MAGIC not in h5.attrs:
        raise NotADcqFileError(
            f"{where}: an HDF5 file but not a .dcq container (root attribute {L.ATTR_MAGIC!r} missing)")
    magic = _str_attr(h5, L.ATTR_MAGIC, where)
    if magic != L.MAGIC:
        raise NotADcqFileError(f"{where}: root attribute {L.ATTR_MAGIC!r} is {magic!r}, expected {L.MAGIC!r}")
    version = np.asarray(_attr(h5, L.ATTR_VERSION, where))
    if version.shape != (2,) or not np.issubdtype(version.dtype, np.integer):
        raise StructureError(f"{where}: root attribute {L.ATTR_VERSION!r} must be two integers, found {version!r}")
    major, minor = int(version[0]), int(version[1])
    if major != L.VERSION_MAJOR:
        raise UnsupportedVersionError(
            f"{where}: format version {major}.{minor} is not readable by this reader, which reads "
            f"version {L.VERSION_MAJOR}.x (up to {L.VERSION_MAJOR}.{L.VERSION_MINOR})")
    must = np.asarray(_attr(h5, L.ATTR_MUST_UNDERSTAND, where)).ravel()
    features = [m.decode() if isinstance(m, bytes) else str(m) for m in must]
    unknown = sorted(set(features) - L.KNOWN_FEATURES)
    if unknown:
        raise UnsupportedVersionError(
            f"{where}: the file (version {major}.{minor}) needs features {unknown} that this reader "
            f"(version {L.VERSION_MAJOR}.{L.VERSION_MINOR}) does not understand")

    bits = _int_attr(h5, L.ATTR_BITS, where, 1, 8)
    channels = _int_attr(h5, L.ATTR_CHANNELS, where, 1, 3)
    if channels == 2:
        raise StructureError(f"{where}: root attribute 'channels' must be 1 or 3, found 2")
    k = _int_attr(h5, L.ATTR_PALETTE_SIZE, where, 1, 1 << bits)
    n = _int_attr(h5, L.ATTR_NUM_SAMPLES, where, 0, 1 << 40)
    c = _int_attr(h5, L.ATTR_NUM_CLUSTERS, where, 1, 1 << 32)
    num_classes = _int_attr(h5, L.ATTR_NUM_CLASSES, where, 1, 1 << 32)
    encoding = _str_attr(h5, L.ATTR_PAYLOAD_ENCODING, where)
    if encoding not in L.STORED_ENCODINGS:
        raise StructureError(
            f"{where}: root attribute {L.ATTR_PAYLOAD_ENCODING!r} must be one of {L.STORED_ENCODINGS}, found {encoding!r}")
    created_by = _str_attr(h5, L.ATTR_CREATED_BY, where) if L.ATTR_CREATED_BY in h5.attrs else ""
    if n > file_size:  # every sample needs at least one payload byte
        raise StructureError(f"{where}: num_samples {n} exceeds the file's {file_size} bytes")
    sections: dict[str, int] = {}

    classes = _strings(h5, L.DS_CLASSES, where, num_classes, sections)
    palettes = _array(h5, L.DS_PALETTES, where, np.dtype("u1"), (c, k, channels), sections)
    palettes.setflags(write=False)

    group = h5.get(L.GROUP_SAMPLES)
    if not isinstance(group, h5py.Group):
        raise StructureError(f"{where}: group '/{L.GROUP_SAMPLES}' is missing")
    fields = {name: _array(group, name, where, dtype, (n,), sections)
              for name, dtype in L.SAMPLE_FIELDS.items()}

    payload = _dataset(h5, L.DS_PAYLOAD, where)
    if payload.dtype != np.uint8 or payload.ndim != 1:
        raise StructureError(f"{where}: dataset '/payload' must be 1-D uint8, found {payload.dtype} {payload.shape}")
    if payload.chunks is not None or payload.compression is not None:
        raise StructureError(f"{where}: dataset '/payload' must use contiguous layout without filters")
    payload_size = int(payload.shape[0])
    payload_crc = _stored_crc(payload, where)
    offset = payload.id.get_offset()
    if payload_size and offset is None:
        raise TruncatedFileError(f"{where}: dataset '/payload' of {payload_size} bytes has no storage in the file")
    payload_offset = int(offset or 0)
    if payload_offset + payload_size > file_size:
        raise TruncatedFileError(
            f"{where}: the payload spans bytes {payload_offset}..{payload_offset + payload_size} "
            f"but the file has only {file_size} bytes")
    sections["/payload"] = payload_size

    provenance = _json_blob(h5, L.DS_PROVENANCE, where, sections)

    source_paths = source_sizes = None
    if L.GROUP_SOURCES in h5:
        src = h5[L.GROUP_SOURCES]
        if not isinstance(src, h5py.Group):
            raise StructureError(f"{where}: '/{L.GROUP_SOURCES}' must be a group")
        blob = _array(src, L.SOURCE_PATH, where, np.dtype("u1"), None, sections)
        if blob.ndim != 1:
            raise StructureError(f"{where}: dataset '/sources/path' must be 1-D, found shape {blob.shape}")
        try:
            source_paths = blob.tobytes().decode("utf-8").split("\n") if n else []
        except UnicodeDecodeError as exc:
            raise StructureError(f"{where}: dataset '/sources/path' is not UTF-8 ({exc})") from None
        if len(source_paths) != n:
            raise StructureError(
                f"{where}: dataset '/sources/path' holds {len(source_paths)} paths, expected {n}")
        source_sizes = _array(src, "size", where, L.SOURCE_FIELDS["size"], (n,), sections)

    selections: dict[str, dict[str, Any]] = {}
    if L.GROUP_SELECTIONS in h5:
        sel_group = h5[L.GROUP_SELECTIONS]
        if not isinstance(sel_group, h5py.Group):
            raise StructureError(f"{where}: '/{L.GROUP_SELECTIONS}' must be a group")
        for name in sel_group:
            g = sel_group[name]
            if not isinstance(g, h5py.Group):
                raise StructureError(f"{where}: selection {name!r} must be a group")
            entry: dict[str, Any] = {}
            for part in ("ranking", "selected"):
                arr = _array(g, part, where, np.dtype("<i8"), None, sections)
                if arr.ndim != 1:
                    raise StructureError(f"{where}: selection {name!r} {part} must be 1-D, found {arr.shape}")
                if arr.size and (arr.min() < 0 or arr.max() >= n):
                    raise StructureError(
                        f"{where}: selection {name!r} {part} holds indices outside 0..{n - 1}")
                entry[part] = arr
            entry["attrs"] = _json_blob(g, "attrs", where, sections)
            selections[name] = entry

    meta = FileMetadata(
        version=(major, minor), bits=bits, channels=channels, palette_size=k, num_samples=n,
        payload_encoding=encoding, created_by=created_by, classes=classes, palettes=palettes,
        payload_offset=payload_offset, payload_size=payload_size, payload_crc32=payload_crc,
        file_size=file_size, provenance=provenance, source_paths=source_paths,
        source_sizes=source_sizes, selections=selections, section_bytes=sections,
        **fields,
    )
    masked = "patch-mask" in features  # an unlisted /masks is ignored (spec §9)
    _check_samples(meta, where, num_classes, raw_lengths=not masked)
    if masked:  # lengths cover the kept pixels only: checked there
        from dcqformat.format.masks import read_masks
        meta.masks = read_masks(h5, meta, where, features, sections)
    from dcqformat.format.ctx import read_ctx
    meta.ctx = read_ctx(h5, meta, where, features, sections)
    return meta


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _check_samples(m: FileMetadata, where: str, num_classes: int, raw_lengths: bool = True) -> None:
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
    elif m.payload_encoding == "zstd":
        bad = length < 1
        if bad.any():
            i = _first_bad(bad)
            raise StructureError(f"{where}: sample {i}: zstd payload length is 0")


def verify_file(f: DCQFile) -> None:
    """Check the whole-payload checksum, every sample's checksum and decode every sample."""
    from dcqformat.codecs.bitpack import padding_is_zero

    m = f._meta
    payload = f._payload_view()
    crc = 0
    step = 16 << 20
    for start in range(0, m.payload_size, step):
        crc = zlib.crc32(payload[start:start + step].data, crc)
    if (crc & 0xFFFFFFFF) != m.payload_crc32:
        raise ChecksumMismatchError(
            f"{f.path}: dataset '/payload' has CRC-32 {crc & 0xFFFFFFFF:#010x}, the file records {m.payload_crc32:#010x}")
    saved = f.check_crc
    f.check_crc = True
    try:
        for i in range(len(f)):
            packed = f._packed_bytes(i)
            n_pixels = int(f._stored_pixels[i])  # the kept pixels of a masked sample
            if not padding_is_zero(packed, n_pixels, m.bits):
                raise StructureError(f"{f.path}: sample {i}: padding bits after the last pixel are not zero")
            f.decode(i)
    finally:
        f.check_crc = saved
