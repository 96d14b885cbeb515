"""A pre-check of HDF5 local heaps, done before HDF5 walks any group.

An old-style HDF5 group (a *symbol table*: what ``libver="earliest"`` writes) keeps its link
names in a *local heap* (signature ``HEAP``). When HDF5 loads one it reads the heap's free list
by following each free block's "next" offset until the end marker (``H5HLcache.c``); it checks
that every offset lies inside the heap but not that the list ends, so a free block that points
at itself -- one edited address or offset -- loops forever inside C code, which no Python signal
interrupts, allocating as it goes. Found by fuzzing (``tools/fuzz_reader.py``, seed 20261206,
case 39620: a heap's data address moved onto bytes that read as such a block).

So before anything traverses a group, :func:`check_root_heap` walks the root group's heap (found
through its object header's symbol table message, as HDF5 finds it) and :func:`check_local_heaps`
every ``HEAP`` outside the payload, each free list bounded, raising
:class:`~dcqformat.errors.StructureError` on a list that loops. Anything else wrong with a heap
(out-of-range offsets, a data segment outside the file) HDF5 refuses with an error of its own,
and a ``HEAP`` signature that occurs by chance is never read by HDF5, so only a loop is refused.

Layout (HDF5 file format spec, "Local Heap"; 8-byte lengths and addresses, which the reader
requires): ``"HEAP"``, version 0, 3 reserved bytes, data segment size (8), offset of the first
free block or the end marker 2**64 - 1 (8), data segment address (8). A free block: offset of
the next free block or the end marker (8), its size (8).
"""

from __future__ import annotations

import mmap
import struct

from dcqformat.errors import StructureError
from dcqformat.format.h5attrs import UNDEFINED, Bytes, root_symbol_table, signature_positions

__all__ = ["check_local_heap", "check_local_heaps", "check_root_heap"]

_SIGNATURE = b"HEAP\x00\x00\x00\x00"  # with version 0 and the reserved bytes
_HEADER = 32
_FREE_BLOCK = 16


def check_local_heap(buf: bytes | mmap.mmap, pos: int, file_size: int, where: str) -> None:
    """Walk the free list of the local heap whose header is at byte ``pos``; StructureError
    when it loops. A list that leaves the heap is left for HDF5 to refuse (it checks that)."""
    if pos + _HEADER > file_size:
        return
    size, offset, data = struct.unpack_from("<QQQ", buf, pos + 8)
    if data > file_size or size > file_size - data:
        return  # not a heap HDF5 could load: it refuses it itself
    seen: set[int] = set()
    while offset != UNDEFINED:
        if offset in seen:
            raise StructureError(f"{where}: the free list of the HDF5 local heap at byte {pos} "
                                 f"loops (free block at offset {offset} again, after "
                                 f"{len(seen)} blocks); HDF5 would never finish reading it")
        if offset + _FREE_BLOCK > size:
            return  # HDF5 refuses it ("bad heap free list")
        seen.add(offset)
        offset = struct.unpack_from("<Q", buf, data + offset)[0]


def check_root_heap(buf: bytes | mmap.mmap, file_size: int, where: str) -> None:
    """Check the root group's local heap, if it is an old-style group, before any name in it
    is looked up (the payload's location is found by name). The root's object header is found
    from the superblock: HDF5's object info would load the heap."""
    f = Bytes(buf, file_size, where)
    table = root_symbol_table(f)
    if table is not None:
        heap = table[1]
        if f.take(heap, 8, "the root group's local heap") != _SIGNATURE:
            raise StructureError(f"{where}: the root group's local heap at byte {heap} has no "
                                 "HEAP header")
        check_local_heap(buf, heap, file_size, where)


def check_local_heaps(buf: bytes | mmap.mmap, file_size: int, where: str,
                      skip: tuple[int, int] | None = None) -> int:
    """Check every local heap outside ``skip`` (start, end: the payload); how many were found."""
    found = 0
    for pos in signature_positions(buf, _SIGNATURE, file_size, skip):
        check_local_heap(buf, pos, file_size, where)
        found += 1
    return found
