"""Find the attribute message HDF5 itself would read, without asking HDF5 to read it.

:mod:`dcqformat.format.vlen` needs the raw bytes of a variable-length string attribute (its
16-byte descriptors) because HDF5 allocates a descriptor's declared length before checking it.
This module walks the same structures HDF5 walks to open an attribute by name (HDF5 file format
specification, version 3; ``H5Oattribute.c``, ``H5Adense.c``) and returns the exact encoded
attribute message, never a stale copy left by an edit:

- the object header (version 1, or version 2 ``OHDR`` with ``OCHK`` continuation chunks);
- *compact* storage: the attribute messages (type 12) in the header's chunks;
- *dense* storage (an Attribute Info message, type 21, with a fractal heap): the name index, a
  version 2 B-tree (``BTHD`` / ``BTLF`` / ``BTIN``, record type 8) of depth 0 or 1, whose record
  with the name's lookup3 hash holds the heap ID of the message; the fractal heap (``FRHP``,
  unfiltered, 8-byte heap IDs) with a direct root block or a root indirect block of direct blocks.

Anything else (filtered or deeper heaps, shared or huge messages, other address sizes) raises
:class:`~dcqformat.errors.StructureError`: the reader then cannot bound the value, so it refuses
the file. Every read is bounded by the file.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator

from dcqformat.errors import StructureError

Buffer = bytes | mmap.mmap
UNDEFINED = (1 << 64) - 1
_ATTRIBUTE, _CONTINUATION, _SYMBOL_TABLE, _ATTRIBUTE_INFO = 0x000C, 0x0010, 0x0011, 0x0015
_MAX_CHUNKS = 256
_NAME_RECORD = 17  # heap ID (8), message flags (1), creation order (4), name hash (4)


class Bytes:
    """Bounds-checked little-endian reads of the file."""

    def __init__(self, buf: Buffer, size: int, where: str) -> None:
        self.buf, self.size, self.where = buf, size, where

    def take(self, pos: int, n: int, what: str) -> bytes:
        """The ``n`` bytes at ``pos``; StructureError when they do not lie inside the file."""
        if pos < 0 or n < 0 or pos + n > self.size:
            raise StructureError(f"{self.where}: {what} at byte {pos} ({n} bytes) lies outside the "
                                 f"file of {self.size} bytes")
        return bytes(self.buf[pos:pos + n])

    def uint(self, pos: int, n: int, what: str) -> int:
        """The ``n``-byte little-endian unsigned integer at ``pos`` (checked as :meth:`take`)."""
        return int.from_bytes(self.take(pos, n, what), "little")


def _enc_size(n: int) -> int:
    """Bytes HDF5 uses to encode values up to ``n`` (``H5VM_limit_enc_size``)."""
    return (max(n, 1).bit_length() - 1) // 8 + 1


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def lookup3(key: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle`` (HDF5's ``H5_checksum_lookup3``)."""
    m = 0xFFFFFFFF
    a = b = c = (0xDEADBEEF + len(key) + initval) & m
    k, n = key, len(key)
    while n > 12:
        a = (a + int.from_bytes(k[0:4], "little")) & m
        b = (b + int.from_bytes(k[4:8], "little")) & m
        c = (c + int.from_bytes(k[8:12], "little")) & m
        a = (a - c) & m; a ^= _rot(c, 4); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= _rot(a, 6); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 8); b = (b + a) & m  # noqa: E702
        a = (a - c) & m; a ^= _rot(c, 16); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= _rot(a, 19); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rot(b, 4); b = (b + a) & m  # noqa: E702
        k, n = k[12:], n - 12
    if n == 0:
        return c
    tail = k + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    c ^= b; c = (c - _rot(b, 14)) & m  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & m  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & m  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & m  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & m  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & m  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & m  # noqa: E702
    return c


def check_superblock(f: Bytes) -> None:
    """Refuse files whose addresses or lengths are not 8 bytes or that have a base address."""
    version = f.uint(8, 1, "the superblock version")
    if version in (0, 1):
        offsets, lengths, base_at = f.uint(13, 1, "superblock"), f.uint(14, 1, "superblock"), 24
    elif version in (2, 3):
        offsets, lengths, base_at = f.uint(9, 1, "superblock"), f.uint(10, 1, "superblock"), 12
    else:
        raise StructureError(f"{f.where}: HDF5 superblock version {version} is not known")
    if offsets != 8 or lengths != 8:
        raise StructureError(f"{f.where}: HDF5 addresses of {offsets} and lengths of {lengths} bytes; "
                             "this reader reads files with 8-byte addresses and lengths")
    if f.uint(base_at, 8, "the base address") != 0:
        raise StructureError(f"{f.where}: the HDF5 base address is not 0")


def signature_positions(buf: Buffer, signature: bytes, file_size: int,
                        skip: tuple[int, int] | None = None) -> Iterator[int]:
    """Every position of ``signature`` in the file outside ``skip`` (start, end: the payload,
    whose bytes are never HDF5 structure), in file order: how the heap and B-tree pre-checks
    find the structures they walk."""
    regions = [(0, file_size)] if skip is None else [(0, skip[0]), (skip[1], file_size)]
    for lo, hi in regions:
        pos = buf.find(signature, lo, hi)
        while pos >= 0:
            yield pos
            pos = buf.find(signature, pos + 1, hi)


def root_header_address(f: Bytes) -> int:
    """The address of the root group's object header, from the superblock (at byte 0), read
    without HDF5: asking HDF5 for the object's info loads the group's heaps."""
    check_superblock(f)
    version = f.uint(8, 1, "the superblock version")
    if version in (2, 3):
        return f.uint(36, 8, "the superblock's root group address")
    entry = 56 if version == 0 else 60  # the root group's symbol table entry
    return f.uint(entry + 8, 8, "the superblock's root group entry")


def root_symbol_table(f: Bytes) -> tuple[int, int] | None:
    """(v1 B-tree address, local heap address) of the root group when it is an old-style group
    (a symbol table message, type 17, in its object header), else None."""
    for mtype, _flags, body, size in object_messages(f, root_header_address(f)):
        if mtype == _SYMBOL_TABLE and size >= 16:
            return f.uint(body, 8, "the root group's symbol table"), f.uint(body + 8, 8, "the root group's symbol table")
    return None


def _chunk_messages(f: Bytes, start: int, end: int, v2: bool, corder: bool
                    ) -> list[tuple[int, int, int, int]]:
    """(type, flags, body start, body size) of the messages of one header chunk."""
    out = []
    head = (6 if corder else 4) if v2 else 8
    p = start
    while p + head <= end:
        if v2:
            mtype, size, flags = f.uint(p, 1, "message"), f.uint(p + 1, 2, "message"), f.uint(p + 3, 1, "message")
        else:
            mtype, size, flags = f.uint(p, 2, "message"), f.uint(p + 2, 2, "message"), f.uint(p + 4, 1, "message")
        body = p + head
        if body + size > end:
            raise StructureError(f"{f.where}: an object header message at byte {p} runs past its chunk")
        out.append((mtype, flags, body, size))
        p = body + size
    return out


def object_messages(f: Bytes, addr: int) -> list[tuple[int, int, int, int]]:
    """Every message of the object header at ``addr``, continuation chunks included."""
    if f.take(addr, 4, "an object header") == b"OHDR":
        if f.uint(addr + 4, 1, "object header") != 2:
            raise StructureError(f"{f.where}: object header at byte {addr} has an unknown version")
        flags = f.uint(addr + 5, 1, "object header")
        p = addr + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        chunks, v2, corder = [(p + width, p + width + f.uint(p, width, "object header"))], True, bool(flags & 0x04)
    elif f.uint(addr, 1, "object header") == 1:
        chunks, v2, corder = [(addr + 16, addr + 16 + f.uint(addr + 8, 4, "object header"))], False, False
    else:
        raise StructureError(f"{f.where}: no object header at byte {addr}")
    messages: list[tuple[int, int, int, int]] = []
    seen: set[int] = set()
    while chunks:
        start, end = chunks.pop(0)
        if start in seen or len(seen) >= _MAX_CHUNKS:
            raise StructureError(f"{f.where}: object header at byte {addr} has looping or too many chunks")
        seen.add(start)
        f.take(start, end - start, "an object header chunk")
        for m in _chunk_messages(f, start, end, v2, corder):
            messages.append(m)
            if m[0] == _CONTINUATION:
                off, length = f.uint(m[2], 8, "continuation"), f.uint(m[2] + 8, 8, "continuation")
                if v2:
                    if f.take(off, 4, "a continuation chunk") != b"OCHK" or length < 8:
                        raise StructureError(f"{f.where}: bad continuation chunk at byte {off}")
                    chunks.append((off + 4, off + length - 4))
                else:
                    chunks.append((off, off + length))
    return messages


def _name_of(f: Bytes, start: int, size: int) -> bytes | None:
    """The name of the attribute message at ``start`` (None when it is not one we can read)."""
    if size < 9:
        return None
    version, flags = f.uint(start, 1, "attribute"), f.uint(start + 1, 1, "attribute")
    if version not in (1, 2, 3):
        return None
    if version > 1 and flags & 0x03:
        raise StructureError(f"{f.where}: attribute message at byte {start} uses a shared "
                             "datatype or dataspace, which this reader does not read")
    name_size = f.uint(start + 2, 2, "attribute")
    at = start + (9 if version == 3 else 8)
    if name_size < 1 or at + name_size > start + size:
        return None
    return f.take(at, name_size, "an attribute name").rstrip(b"\0")


def _heap_object(f: Bytes, heap: int, heap_id: bytes) -> tuple[int, int]:
    """(file position, length) of the managed fractal heap object ``heap_id``."""
    if f.take(heap, 4, "a fractal heap") != b"FRHP" or f.uint(heap + 4, 1, "FRHP") != 0:
        raise StructureError(f"{f.where}: no fractal heap header at byte {heap}")
    if f.uint(heap + 5, 2, "FRHP") != 8 or f.uint(heap + 7, 2, "FRHP") != 0:
        raise StructureError(f"{f.where}: the fractal heap at byte {heap} has filters or heap IDs "
                             "other than 8 bytes, which this reader does not read")
    width, start_size = f.uint(heap + 110, 2, "FRHP"), f.uint(heap + 112, 8, "FRHP")
    max_direct, max_index = f.uint(heap + 120, 8, "FRHP"), f.uint(heap + 128, 2, "FRHP")
    root, rows = f.uint(heap + 132, 8, "FRHP"), f.uint(heap + 140, 2, "FRHP")
    max_man = f.uint(heap + 10, 4, "FRHP")
    if (heap_id[0] & 0xF0) != 0:
        raise StructureError(f"{f.where}: an attribute is stored as a huge or tiny heap object")
    if not (width and start_size and max_direct and max_index) or start_size & (start_size - 1) \
            or max_direct & (max_direct - 1) or width & (width - 1) or max_index > 64:
        raise StructureError(f"{f.where}: the fractal heap at byte {heap} has an impossible doubling table")
    off_size = (max_index + 7) // 8
    len_size = min((max_direct.bit_length() - 1 + 7) // 8, _enc_size(max_man))
    if 1 + off_size + len_size > 8:
        raise StructureError(f"{f.where}: the fractal heap at byte {heap} has impossible heap ID sizes")
    off = int.from_bytes(heap_id[1:1 + off_size], "little")
    length = int.from_bytes(heap_id[1 + off_size:1 + off_size + len_size], "little")
    if rows == 0:  # the root is one direct block of the starting size
        block, block_off, size = root, 0, start_size
    else:
        if f.take(root, 4, "a fractal heap block") != b"FHIB":
            raise StructureError(f"{f.where}: no fractal heap indirect block at byte {root}")
        first_row = start_size * width
        if off < first_row:
            row, col = 0, off // start_size
        else:
            row = off.bit_length() - 1 - (first_row.bit_length() - 1) + 1
            col = (off - (1 << (off.bit_length() - 1))) // (start_size << (row - 1))
        size = start_size if row == 0 else start_size << (row - 1)
        direct_rows = (max_direct.bit_length() - 1) - (start_size.bit_length() - 1) + 2
        if row >= rows or row >= direct_rows or col >= width:
            raise StructureError(f"{f.where}: an attribute lies in a fractal heap deeper than this "
                                 "reader walks")
        block_off = 0 if row == 0 else first_row << (row - 1)
        block_off += col * size
        block = f.uint(root + 5 + 8 + off_size + 8 * (row * width + col), 8, "FHIB")
    if not block_off <= off or off + length > block_off + size:
        raise StructureError(f"{f.where}: a heap object at {off} ({length} bytes) overruns its block")
    return block + (off - block_off), length


def _name_records(f: Bytes, btree: int) -> list[bytes]:
    """The records of the attribute name index (a version 2 B-tree of depth 0 or 1)."""
    if f.take(btree, 4, "a B-tree") != b"BTHD" or f.uint(btree + 5, 1, "BTHD") != 8:
        raise StructureError(f"{f.where}: no attribute name index at byte {btree}")
    node_size, rec_size = f.uint(btree + 6, 4, "BTHD"), f.uint(btree + 10, 2, "BTHD")
    depth, root, nrec = f.uint(btree + 12, 2, "BTHD"), f.uint(btree + 16, 8, "BTHD"), f.uint(btree + 24, 2, "BTHD")
    if rec_size != _NAME_RECORD or depth > 1 or node_size < 16:
        raise StructureError(f"{f.where}: an attribute name index this reader does not walk "
                             f"(record size {rec_size}, depth {depth})")
    if root == UNDEFINED or nrec == 0:
        return []

    def records(node: int, count: int, sig: bytes) -> bytes:
        if f.take(node, 4, "a B-tree node") != sig or count * rec_size > node_size:
            raise StructureError(f"{f.where}: bad B-tree node at byte {node}")
        return f.take(node + 6, count * rec_size, "B-tree records")

    if depth == 0:
        raw = records(root, nrec, b"BTLF")
        return [raw[j:j + rec_size] for j in range(0, len(raw), rec_size)]
    leaf_max = (node_size - 10) // rec_size
    width = _enc_size(leaf_max)  # bytes of a child's record count
    raw = records(root, nrec, b"BTIN")
    out = [raw[j:j + rec_size] for j in range(0, len(raw), rec_size)]
    p = root + 6 + nrec * rec_size
    for _child in range(nrec + 1):
        child, count = f.uint(p, 8, "BTIN"), f.uint(p + 8, width, "BTIN")
        leaf = records(child, count, b"BTLF")
        out += [leaf[j:j + rec_size] for j in range(0, len(leaf), rec_size)]
        p += 8 + width
    return out


def attribute_message(buf: Buffer, size: int, header: int, name: str, where: str) -> tuple[int, int]:
    """(file position, size) of the attribute message ``name`` of the object whose header is at
    ``header``, found as HDF5 finds it; StructureError when it cannot be located exactly."""
    f = Bytes(buf, size, where)
    check_superblock(f)
    key = name.encode()
    messages = object_messages(f, header)
    dense = [m for m in messages if m[0] == _ATTRIBUTE_INFO]
    if dense:
        body = dense[0][2]
        flags = f.uint(body + 1, 1, "attribute info")
        p = body + 2 + (2 if flags & 0x01 else 0)
        heap, btree = f.uint(p, 8, "attribute info"), f.uint(p + 8, 8, "attribute info")
        if heap != UNDEFINED:
            want = lookup3(key)
            found = []
            for rec in _name_records(f, btree):
                if int.from_bytes(rec[13:17], "little") != want:
                    continue
                if rec[8] & 0x02:
                    raise StructureError(f"{where}: attribute {name!r} is a shared message")
                pos, length = _heap_object(f, heap, rec[:8])
                if _name_of(f, pos, length) == key:
                    found.append((pos, length))
            if len(found) != 1:
                raise StructureError(f"{where}: attribute {name!r} is named by {len(found)} records "
                                     "of the attribute name index")
            return found[0]
    hits = [(body, length) for mtype, _flags, body, length in messages
            if mtype == _ATTRIBUTE and _name_of(f, body, length) == key]
    if len(hits) != 1:
        raise StructureError(f"{where}: attribute {name!r} has {len(hits)} messages in its object header")
    return hits[0]


def vlen_string_descriptors(buf: Buffer, size: int, start: int, length: int, count: int, where: str
                            ) -> list[tuple[int, int, int]]:
    """The ``count`` 16-byte descriptors (length, collection, index) of the attribute message at
    ``start`` (``length`` bytes), whose datatype must be a variable-length string."""
    f = Bytes(buf, size, where)
    version = f.uint(start, 1, "attribute")
    name_size, dt_size, ds_size = struct.unpack("<HHH", f.take(start + 2, 6, "attribute"))

    def pad(n: int) -> int:
        return (n + 7) & ~7 if version == 1 else n

    dt = start + (9 if version == 3 else 8) + pad(name_size)
    data = dt + pad(dt_size) + pad(ds_size)
    if f.uint(dt, 1, "datatype") & 0x0F != 9 or f.uint(dt + 1, 1, "datatype") & 0x0F != 1:
        raise StructureError(f"{where}: the attribute message at byte {start} does not hold "
                             "variable-length strings")
    if data + 16 * count > start + length:
        raise StructureError(f"{where}: the attribute message at byte {start} is too short for "
                             f"{count} strings")
    raw = f.take(data, 16 * count, "attribute data")
    return [struct.unpack_from("<IQI", raw, 16 * j) for j in range(count)]
