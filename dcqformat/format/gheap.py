"""A pre-check of HDF5 global heap collections, done before HDF5 reads any of them.

Variable-length strings (the class names, string attributes) live in HDF5 *global heap
collections* (signature ``GCOL``). HDF5 2.0.0 walks a collection's objects when it first
reads one of its strings, and a damaged object size can make that walk stop advancing: an
object of index 0 and size 0 sends it into an endless loop inside C code, which no Python
signal interrupts. So before anything reads variable-length data, :func:`global_heaps` finds
every collection outside the payload and walks it the way HDF5 does (``H5HGcache.c``), raising
:class:`~dcqformat.errors.StructureError` on an object that does not advance or that overruns
its collection. The objects it finds are what :mod:`dcqformat.format.vlen` reads strings from
(HDF5 itself never converts a variable-length value for the reader).

Layout walked (HDF5 file format spec, "Global Heap"; 8-byte lengths, which .dcq writers use):
``"GCOL"``, version 1, 3 reserved bytes, collection size (8 bytes, the whole collection); then
objects: index (2), reference count (2), reserved (4), size (8), data padded to 8 bytes. Index
0 is the free-space object, whose size covers its own header.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from dcqformat.errors import StructureError
from dcqformat.format.h5attrs import signature_positions

_SIGNATURE = b"GCOL"
_HEADER = 16  # signature, version, reserved, collection size
_OBJECT_HEADER = 16  # index, reference count, reserved, size
_MIN_COLLECTION = 4096  # H5HG_MINSIZE


def _align8(n: int) -> int:
    return (n + 7) & ~7


#: Live objects of one collection: object index -> (first data byte in the file, size).
Objects = dict[int, tuple[int, int]]


def read_collection(buf: bytes | mmap.mmap, start: int, file_size: int, where: str
                    ) -> tuple[int, Objects]:
    """Walk the collection at byte ``start`` of ``buf``: (its size, its live objects), or raise
    StructureError on an object that does not advance the walk or overruns the collection."""
    size = struct.unpack_from("<Q", buf, start + 8)[0]
    if size < _MIN_COLLECTION or start + size > file_size:
        raise StructureError(
            f"{where}: HDF5 global heap collection at byte {start} declares {size} bytes "
            f"(at least {_MIN_COLLECTION}, ending inside the file of {file_size} bytes)")
    end = start + size
    objects: Objects = {}
    p = start + _HEADER
    while p < end:
        if p + _OBJECT_HEADER > end:  # a tail too short for an object header is free space
            break
        index, _refs, _reserved, obj_size = struct.unpack_from("<HHIQ", buf, p)
        need = obj_size if index == 0 else _OBJECT_HEADER + _align8(obj_size)
        if need <= 0 or p + need > end:
            raise StructureError(
                f"{where}: HDF5 global heap collection at byte {start}: object {index} at byte "
                f"{p} has size {obj_size}, which "
                + ("does not advance the object walk" if need <= 0 else
                   f"runs past the collection's end at byte {end}"))
        if index != 0:
            objects[index] = (p + _OBJECT_HEADER, obj_size)
        p += need
    return size, objects


def walk_collection(buf: bytes | mmap.mmap, start: int, file_size: int, where: str) -> int:
    """Walk the collection at byte ``start`` of ``buf``; return its size or raise StructureError."""
    return read_collection(buf, start, file_size, where)[0]


def global_heaps(buf: bytes | mmap.mmap, file_size: int, where: str,
                 skip: tuple[int, int] | None = None) -> dict[int, Objects]:
    """Walk every global heap collection of the file outside ``skip`` (start, end): the payload.

    Returns collection address -> its live objects (what a variable-length descriptor may point
    at). A ``GCOL`` signature not followed by version 1 and three zero bytes is not a collection
    header (it can occur by chance in compressed bytes) and is ignored.
    """
    heaps: dict[int, Objects] = {}
    if file_size < _HEADER:
        return heaps
    for pos in signature_positions(buf, _SIGNATURE, file_size, skip):
        if pos + _HEADER <= file_size and buf[pos + 4:pos + 8] == b"\x01\x00\x00\x00":
            heaps[pos] = read_collection(buf, pos, file_size, where)[1]
    return heaps


def check_global_heaps(path: Path, file_size: int, skip: tuple[int, int] | None = None) -> int:
    """Walk every global heap collection of the file at ``path`` outside ``skip``; return how
    many were checked (see :func:`global_heaps`)."""
    if file_size < _HEADER:
        return 0
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return len(global_heaps(mm, file_size, str(path), skip))
