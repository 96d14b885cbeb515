"""Checks on HDF5 objects made before h5py reads any of their data (spec §10 items 4, 5, 9).

- :func:`check_links`: every link in the file is a hard link. External, soft and user-defined
  links would make a reader follow names into other files (an external link to a FIFO blocks
  ``open`` forever) or to other objects than the ones validated; they are refused, by path,
  before anything follows one.
- :func:`dataset` / :func:`check_storage`: a dataset's data lies, complete, inside this file
  (no external storage, no virtual layout, no declared-but-unstored data, no chunked data
  declaring more than 1100 times its stored bytes), so a tiny file cannot make a reader read
  other files or allocate gigabytes.
- :func:`read_array`, :func:`read_json`: a dataset of the expected dtype and shape, read and
  checked against its ``crc32`` attribute.
- :func:`numeric_attribute`: an attribute's value when it is a small numeric array; anything
  else (a string, a variable-length or compound type, a huge shape) is refused unread, because
  HDF5 allocates a variable-length value's declared size before it checks it.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import h5py
import numpy as np

from dcqformat.errors import ChecksumMismatchError, StructureError, TruncatedFileError
from dcqformat.format import layout as L

#: deflate cannot expand data by more than about 1032:1; anything claiming more is hostile.
MAX_INFLATE = 1100
#: Most elements a numeric attribute read by the reader may hold.
MAX_ATTRIBUTE_ELEMENTS = 64

_LINK_KINDS = {h5py.h5l.TYPE_SOFT: "a soft link", h5py.h5l.TYPE_EXTERNAL: "an external link"}


def check_links(h5: h5py.File, where: str) -> None:
    """Refuse the first link of the file (in HDF5's visiting order) that is not a hard link,
    naming its path and kind; nothing is followed (``H5Lvisit`` walks hard links only)."""
    bad: list[tuple[str, int]] = []

    def visit(name: bytes, info: Any) -> int | None:
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append((name.decode("utf-8", "replace"), int(info.type)))
            return 1  # stop the walk
        return None

    h5.id.links.visit(visit, info=True)
    if bad:
        name, kind = bad[0]
        what = _LINK_KINDS.get(kind, f"a user-defined link (type {kind})")
        raise StructureError(f"{where}: '/{name}' is {what}; a .dcq file holds hard links only "
                             "(a reader never follows names into other files or objects)")


def check_storage(ds: h5py.Dataset, where: str, file_size: int) -> None:
    """Refuse a dataset whose data does not lie, complete, inside this file (checked before any
    of its data is read)."""
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
        if nbytes > MAX_INFLATE * max(stored, 1) or stored > file_size:
            raise StructureError(
                f"{where}: dataset {ds.name!r} declares {nbytes} bytes from {stored} stored bytes "
                f"in a file of {file_size} bytes")
    elif nbytes > 65536:  # compact data lives in the object header, at most 64 KiB
        raise StructureError(f"{where}: compact dataset {ds.name!r} declares {nbytes} bytes")


def dataset(group: h5py.Group, name: str, where: str, file_size: int) -> h5py.Dataset:
    """The dataset ``name`` of ``group`` with its storage checked (StructureError if missing or
    not a dataset)."""
    obj = group.get(name)
    path = f"{group.name.rstrip('/')}/{name}"
    if obj is None:
        raise StructureError(f"{where}: dataset {path!r} is missing")
    if not isinstance(obj, h5py.Dataset):
        raise StructureError(f"{where}: {path!r} must be a dataset, found {type(obj).__name__}")
    check_storage(obj, where, file_size)
    return obj


def numeric_attribute(obj: h5py.HLObject, name: str, where: str, what: str) -> np.ndarray | None:
    """The value of attribute ``name`` of ``obj`` as an array when its type is an integer or
    float of at most :data:`MAX_ATTRIBUTE_ELEMENTS` elements; None (nothing read) otherwise.
    StructureError when it is missing (``what`` names it in the message)."""
    if name not in obj.attrs:
        raise StructureError(f"{where}: {what} is missing")
    aid = obj.attrs.get_id(name)
    shape = aid.shape
    if aid.dtype.kind not in "iuf" or shape is None or int(np.prod(shape)) > MAX_ATTRIBUTE_ELEMENTS:
        return None
    return np.asarray(obj.attrs[name])


def describe_attribute(obj: h5py.HLObject, name: str) -> str:
    """The dtype and shape of an attribute, in words, without reading its value."""
    aid = obj.attrs.get_id(name)
    return f"a {aid.dtype} attribute of shape {aid.shape}"


def stored_crc(ds: h5py.Dataset, where: str) -> int:
    """The dataset's ``crc32`` attribute (an integer scalar), else StructureError."""
    value = numeric_attribute(ds, L.ATTR_CRC32, where, f"dataset {ds.name!r} attribute {L.ATTR_CRC32!r}")
    if value is None or value.shape != () or value.dtype.kind not in "iu":
        raise StructureError(f"{where}: {ds.name!r} attribute crc32 must be an integer, found "
                             f"{describe_attribute(ds, L.ATTR_CRC32) if value is None else repr(value)}")
    return int(value)


def check_crc(ds: h5py.Dataset, actual: int, where: str) -> None:
    """ChecksumMismatchError unless ``actual`` equals the dataset's ``crc32`` attribute."""
    stored = stored_crc(ds, where)
    if stored != actual:
        raise ChecksumMismatchError(
            f"{where}: dataset {ds.name!r} has CRC-32 {actual:#010x}, the file records {stored:#010x}")


def read_array(group: h5py.Group, name: str, where: str, dtype: np.dtype,
               shape: tuple[int, ...] | None, sections: dict[str, int], file_size: int) -> np.ndarray:
    """Dataset ``name`` of ``group``: dtype and shape checked before reading, the values checked
    against their CRC-32; its storage size is recorded in ``sections``."""
    ds = dataset(group, name, where, file_size)
    path = ds.name
    if ds.dtype != dtype:
        raise StructureError(f"{where}: dataset {path!r} must have dtype {dtype.str}, found {ds.dtype.str}")
    if shape is not None and ds.shape != shape:
        raise StructureError(f"{where}: dataset {path!r} must have shape {shape}, found {ds.shape}")
    values = ds[()]
    check_crc(ds, zlib.crc32(np.ascontiguousarray(values).tobytes()) & 0xFFFFFFFF, where)
    sections[path] = ds.id.get_storage_size()
    return np.asarray(values)


def read_json(group: h5py.Group, name: str, where: str, sections: dict[str, int],
              file_size: int) -> dict[str, Any]:
    """A 1-D ``u1`` dataset holding a UTF-8 JSON object (CRC checked)."""
    path = f"{group.name.rstrip('/')}/{name}"
    blob = read_array(group, name, where, np.dtype("u1"), None, sections, file_size)
    if blob.ndim != 1:
        raise StructureError(f"{where}: dataset {path!r} must be 1-D, found shape {blob.shape}")
    try:
        value = json.loads(blob.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, huge integers, deep nesting
        raise StructureError(f"{where}: dataset {path!r} is not UTF-8 JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict):
        raise StructureError(f"{where}: dataset {path!r} must hold a JSON object, found {type(value).__name__}")
    return value
