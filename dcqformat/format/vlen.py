"""Variable-length strings read without letting HDF5 convert them.

HDF5 stores a variable-length (vlen) value as a 16-byte *descriptor* -- its length (4 bytes), the
address of a global heap collection (8) and an object index there (4) -- and the bytes in that
heap object. When HDF5 converts such a value it allocates (and zeroes) a buffer of the declared
length *before* it looks at the heap object: four edited bytes in a 20 KB file make it allocate
4 GB (spec §10). So dcqformat never hands a vlen value to HDF5's conversion. It reads the
descriptors itself and takes the bytes from the heap objects :mod:`dcqformat.format.gheap`
walked, so every string is bounded by an object that lies inside the file:

- :func:`read_string_dataset` for ``/classes``: the descriptors are the dataset's raw bytes,
  which a contiguous layout without filters puts at a known offset (spec §4);
- :func:`read_string_attribute` for string attributes (the root's, ``/ctx``'s): the descriptors
  sit in the attribute message that :mod:`dcqformat.format.h5attrs` locates exactly as HDF5 does (object
  header, or the dense storage's name index and fractal heap).

A descriptor must point at a live object of a walked collection whose size equals its declared
length; the lengths together must fit in the file.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from dcqformat.errors import StructureError
from dcqformat.format.gheap import Objects
from dcqformat.format.h5attrs import attribute_message, vlen_string_descriptors

_DESCRIPTOR = struct.Struct("<IQI")  # length, collection address, object index
#: Most elements a string attribute may hold (must_understand lists a few feature names).
MAX_ATTRIBUTE_STRINGS = 4096
#: Most bytes a fixed-length string attribute may hold in all.
MAX_FIXED_STRING_BYTES = 1 << 16

Buffer = bytes | mmap.mmap


def resolve(buf: Buffer, descriptors: Sequence[tuple[int, int, int]], heaps: dict[int, Objects],
            budget: int, what: str) -> list[bytes]:
    """The bytes each ``(length, collection, index)`` descriptor names; StructureError when one
    points at no walked object, at an object of another size, or when the lengths together
    exceed ``budget`` bytes."""
    total = sum(d[0] for d in descriptors)
    if total > budget:
        raise StructureError(f"{what}: variable-length strings declare {total} bytes, more than "
                             f"the file's {budget}")
    values = []
    for j, (length, address, index) in enumerate(descriptors):
        if address == 0 and length == 0:  # HDF5's nil value
            values.append(b"")
            continue
        obj = heaps.get(address, {}).get(index)
        if obj is None:
            raise StructureError(f"{what}: string {j} points at global heap object {index} of a "
                                 f"collection at byte {address}, which the file does not hold")
        start, size = obj
        if size != length:
            raise StructureError(f"{what}: string {j} declares {length} bytes but its global heap "
                                 f"object holds {size}")
        values.append(bytes(buf[start:start + size]))
    return values


def descriptors(raw: bytes, count: int) -> list[tuple[int, int, int]]:
    """The ``count`` 16-byte descriptors at the start of ``raw``."""
    return [_DESCRIPTOR.unpack_from(raw, 16 * j) for j in range(count)]


def _is_vlen_string(dtype: np.dtype) -> bool:
    info = h5py.check_string_dtype(dtype)
    return info is not None and info.length is None


def read_string_dataset(ds: h5py.Dataset, buf: Buffer, heaps: dict[int, Objects], file_size: int,
                        where: str) -> list[bytes]:
    """The raw bytes of every string of the 1-D vlen string dataset ``ds`` (contiguous, no
    filters), read from its descriptors and the global heap, never through HDF5."""
    if ds.ndim != 1 or not _is_vlen_string(ds.dtype):
        raise StructureError(f"{where}: dataset {ds.name!r} must be a 1-D variable-length string "
                             f"array, found {ds.dtype} {ds.shape}")
    dcpl = ds.id.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters():
        raise StructureError(f"{where}: dataset {ds.name!r} must use contiguous storage without "
                             "filters")
    n = int(ds.shape[0])
    if n == 0:
        return []
    offset, stored = ds.id.get_offset(), int(ds.id.get_storage_size())
    if offset is None or stored != 16 * n or int(offset) + stored > file_size:
        raise StructureError(f"{where}: dataset {ds.name!r} of {n} strings stores {stored} bytes "
                             f"at {offset}, expected {16 * n} inside the file")
    raw = bytes(buf[int(offset):int(offset) + stored])
    return resolve(buf, descriptors(raw, n), heaps, file_size, f"{where}: dataset {ds.name!r}")


def read_string_attribute(obj: h5py.HLObject, name: str, buf: Buffer, heaps: dict[int, Objects],
                          file_size: int, where: str) -> list[bytes]:
    """The raw bytes of the vlen string attribute ``name`` of ``obj`` (a scalar: one value), from
    the attribute message HDF5 would read (:func:`~dcqformat.format.h5attrs.attribute_message`),
    never through HDF5's conversion."""
    what = f"{where}: attribute {name!r}"
    shape = obj.attrs.get_id(name).shape
    count = int(np.prod(shape)) if shape is not None else 0
    if count > MAX_ATTRIBUTE_STRINGS:
        raise StructureError(f"{what} holds {count} strings, more than {MAX_ATTRIBUTE_STRINGS}")
    header = int(h5py.h5o.get_info(obj.id).addr)
    start, length = attribute_message(buf, file_size, header, name, where)
    found = vlen_string_descriptors(buf, file_size, start, length, count, where)
    return resolve(buf, found, heaps, file_size, what)


@dataclass(frozen=True)
class StringAttributes:
    """Reads the string attributes of one open file, never trusting HDF5 with a declared size:
    a variable-length value through :func:`read_string_attribute`, a fixed-length one only when
    its shape and item size bound it (an attribute's dataspace is in its header: damaged, it can
    declare billions of elements, which HDF5 would allocate before reading)."""

    buf: Buffer
    heaps: dict[int, Objects]
    file_size: int
    where: str

    def values(self, obj: h5py.HLObject, name: str, what: str) -> tuple[list[str], tuple[int, ...] | None]:
        """The values of string attribute ``name`` of ``obj`` (UTF-8, NULs stripped) and its
        shape; StructureError naming ``what`` when it is missing, not a string or too large."""
        if name not in obj.attrs:
            raise StructureError(f"{self.where}: {what} is missing")
        aid = obj.attrs.get_id(name)
        info = h5py.check_string_dtype(aid.dtype)
        if info is None:
            raise StructureError(f"{self.where}: {what} must be a string, found a {aid.dtype} "
                                 f"attribute of shape {aid.shape}")
        if info.length is None:
            raw = read_string_attribute(obj, name, self.buf, self.heaps, self.file_size, self.where)
        else:
            count = int(np.prod(aid.shape)) if aid.shape is not None else 0
            if count * aid.dtype.itemsize > MAX_FIXED_STRING_BYTES:
                raise StructureError(f"{self.where}: {what} holds {count} strings of "
                                     f"{aid.dtype.itemsize} bytes")
            raw = [bytes(v) for v in np.asarray(obj.attrs[name], dtype=aid.dtype).ravel()]
        return [v.rstrip(b"\0").decode("utf-8", "replace") for v in raw], aid.shape

    def one(self, obj: h5py.HLObject, name: str, what: str) -> str:
        """The value of scalar string attribute ``name`` of ``obj``."""
        values, shape = self.values(obj, name, what)
        if shape != ():
            raise StructureError(f"{self.where}: {what} must be one string, found shape {shape}")
        return values[0]
