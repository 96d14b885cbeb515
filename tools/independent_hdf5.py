"""Byte-level checks of the containers a .dcq file is made of, for
``tools/independent_reader.py``: the HDF5 superblock's end-of-file address, the loops
spec/dcq-v1.md §10.14 forbids (found before HDF5 walks them), and a Zstandard frame's
declared content size. Written from the HDF5 file format spec, RFC 8878 and the .dcq spec
alone: the standard library only, never dcqformat.
"""

from __future__ import annotations

import mmap
import struct

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZSTD_MAGIC = 0xFD2FB528


def hdf5_eof_address(head: bytes) -> int | None:
    """The end-of-file address recorded in the HDF5 superblock (HDF5 file format spec,
    superblock versions 0-3), or None if ``head`` is too short to hold it."""
    if len(head) < 9:
        return None
    version = head[8]
    if version in (0, 1):
        if len(head) < 24:
            return None
        size_of_offsets = head[13]
        fixed = 24 + (4 if version == 1 else 0)  # v1 adds indexed-storage K + reserved
        pos = fixed + 2 * size_of_offsets  # base address, free-space info address
    elif version in (2, 3):
        if len(head) < 12:
            return None
        size_of_offsets = head[9]
        pos = 12 + 2 * size_of_offsets  # base address, superblock extension address
    else:
        return None
    if size_of_offsets not in (2, 4, 8) or len(head) < pos + size_of_offsets:
        return None
    return int.from_bytes(head[pos:pos + size_of_offsets], "little")


def zstd_declared_size(frame: bytes) -> int | None:
    """Frame_Content_Size of a Zstandard frame header (RFC 8878 §3.1.1.1), None if absent.

    Raises ValueError if ``frame`` does not start with a complete frame header.
    """
    if len(frame) < 5 or struct.unpack_from("<I", frame)[0] != ZSTD_MAGIC:
        raise ValueError("no Zstandard frame magic")
    fhd = frame[4]
    fcs_flag, single_segment, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    if fhd & 0x08:
        raise ValueError("reserved bit set in the frame header descriptor")
    pos = 5 + (0 if single_segment else 1)  # Window_Descriptor
    pos += (0, 1, 2, 4)[dict_flag]
    fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if len(frame) < pos + fcs_size:
        raise ValueError("truncated frame header")
    if fcs_size == 0:
        return None
    value = int.from_bytes(frame[pos:pos + fcs_size], "little")
    return value + 256 if fcs_size == 2 else value


UNDEF = 2**64 - 1


def _tree_node(data: bytes | mmap.mmap, at: int) -> tuple[int, int, int, int] | None:
    """§10.14: (type, level, entries used, right sibling) of a v1 B-tree node at ``at``."""
    if at == UNDEF or at + 24 > len(data) or data[at:at + 4] != b"TREE" or data[at + 4] > 1:
        return None
    used, _left, right = struct.unpack_from("<HQQ", data, at + 6)
    return data[at + 4], data[at + 5], used, right


def endless_hdf5_walk(data: bytes | mmap.mmap) -> str | None:
    """§10.14 and §10.10: what in the file HDF5 would walk without end (a looping local heap
    free list, a looping B-tree sibling chain, a B-tree child not one level down, a global heap
    object that does not advance its collection's walk), or None. The whole file
    is searched, before HDF5 opens it (the spec allows that)."""
    at = data.find(b"HEAP\x00\x00\x00\x00")
    while at >= 0:
        if at + 32 <= len(data):
            size, offset, seg = struct.unpack_from("<QQQ", data, at + 8)
            visited: set[int] = set()
            while seg + size <= len(data) and offset != UNDEF and offset + 16 <= size:
                if offset in visited:
                    return f"the free list of the local heap at byte {at} loops"
                visited.add(offset)
                offset = struct.unpack_from("<Q", data, seg + offset)[0]
        at = data.find(b"HEAP\x00\x00\x00\x00", at + 1)
    at = data.find(b"TREE")
    while at >= 0:
        node = _tree_node(data, at)
        if node is not None:
            kind, level, used, right = node
            chain = {at}
            while (nxt := _tree_node(data, right)) is not None:
                if right in chain:
                    return f"the right-sibling chain of the B-tree node at byte {at} loops"
                chain.add(right)
                right = nxt[3]
            if level > 0 and used > 0:
                keys = [8] if kind == 0 else [16 + 8 * r for r in range(1, 33)]
                if not any(at + 24 + (used + 1) * k + 8 * used <= len(data) and all(
                        (c := _tree_node(data, struct.unpack_from("<Q", data, at + 24 + k + i * (k + 8))[0]))
                        is not None and c[:2] == (kind, level - 1) for i in range(used)) for k in keys):
                    return f"the B-tree node at byte {at} (level {level}) has children that are not level {level - 1} nodes"
        at = data.find(b"TREE", at + 1)
    return stuck_global_heap(data)


def stuck_global_heap(data: bytes | mmap.mmap) -> str | None:
    """§10.10: the first HDF5 global heap collection whose object walk would not advance, or
    None. A collection (HDF5 file format, "Global Heap") is "GCOL", version 1, three reserved
    bytes, its size (8 bytes, header included), then objects: index (2 bytes), reference count
    (2), reserved (4), data size (8), data padded to 8 bytes; the object of index 0 is free
    space and its size counts its own header. An object that moves the walk by 0 bytes makes
    HDF5 loop for ever."""
    at = data.find(b"GCOL\x01\x00\x00\x00")
    while at >= 0:
        if at + 16 <= len(data):
            end = min(at + struct.unpack_from("<Q", data, at + 8)[0], len(data))
            p = at + 16
            while p + 16 <= end:
                index = struct.unpack_from("<H", data, p)[0]
                size = struct.unpack_from("<Q", data, p + 8)[0]
                step = size if index == 0 else 16 + (size + 7) // 8 * 8
                if step == 0:
                    return (f"the global heap collection at byte {at}: object {index} at byte {p} "
                            f"has size 0, which does not advance the object walk")
                p += step
        at = data.find(b"GCOL\x01\x00\x00\x00", at + 1)
    return None
