"""Pure-Python reference of the Zstandard frame walk of :mod:`dcqformat.codecs.zstd_frames`,
written field by field from RFC 8878 §3.1.1 (Frame_Header, Block_Header, Content_Checksum).

A reader walks the stored bytes front to back and reports the first rule they break:

1. fewer than 4 bytes, or not the magic number ``28 B5 2F FD``: ``NOT_A_FRAME``;
2. the Frame_Header_Descriptor (one byte; missing: ``FRAME_TRUNCATED``) sets its reserved bit 3
   or a Dictionary_ID_flag (bits 0-1; v1 files use no dictionary): ``BAD_HEADER``;
3. the descriptor declares no Frame_Content_Size (FCS flag 0 without Single_Segment):
   ``NO_CONTENT_SIZE``;
4. the Window_Descriptor (when not single-segment) and the Frame_Content_Size field (1, 2, 4 or
   8 bytes little-endian; 2 bytes add 256) must be there, else ``FRAME_TRUNCATED``; a size
   other than the expected one: ``WRONG_CONTENT_SIZE``;
5. blocks: a 3-byte header (bit 0 Last_Block, bits 1-2 Block_Type, bits 3-23 Block_Size), then
   Block_Size bytes (Raw, Compressed) or 1 byte (RLE); type 3: ``RESERVED_BLOCK``; a header or
   content past the end: ``FRAME_TRUNCATED``; until a block marked last;
6. the 4-byte Content_Checksum when bit 2 of the descriptor asks for it (``FRAME_TRUNCATED``
   when missing);
7. any byte after that: ``FRAME_TRAILING``; else ``FRAME_OK``.

Structure only: no block is decompressed and no checksum is verified (libzstd does both).
"""

from __future__ import annotations

from dcqformat.codecs.zstd_frames import (
    BAD_HEADER,
    FRAME_OK,
    FRAME_TRAILING,
    FRAME_TRUNCATED,
    NO_CONTENT_SIZE,
    NOT_A_FRAME,
    RESERVED_BLOCK,
    WRONG_CONTENT_SIZE,
)

MAGIC = b"\x28\xb5\x2f\xfd"
#: Frame_Content_Size field bytes by FCS flag (flag 0: 1 byte only when single-segment).
FCS_BYTES = (0, 2, 4, 8)
RAW, RLE, COMPRESSED, RESERVED = range(4)

__all__ = ["frame_walk_ref", "frames_ref"]


class _Short(Exception):
    """A field runs past the end of the stored bytes."""


class _Reader:
    """The stored bytes of one sample, read front to back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes; :class:`_Short` when fewer are left."""
        if self.pos + n > len(self.data):
            raise _Short
        part = self.data[self.pos:self.pos + n]
        self.pos += n
        return part

    def integer(self, n: int) -> int:
        """The next ``n`` bytes as a little-endian unsigned integer."""
        return int.from_bytes(self.take(n), "little")


def _walk(r: _Reader, expected: int) -> int:
    descriptor = r.integer(1)
    fcs_flag = descriptor >> 6
    single_segment = (descriptor >> 5) & 1
    reserved_bit = (descriptor >> 3) & 1
    checksum_flag = (descriptor >> 2) & 1
    dictionary_flag = descriptor & 3
    if reserved_bit or dictionary_flag:
        return BAD_HEADER
    fcs_bytes = 1 if (fcs_flag == 0 and single_segment) else FCS_BYTES[fcs_flag]
    if fcs_bytes == 0:
        return NO_CONTENT_SIZE
    if not single_segment:
        r.take(1)  # Window_Descriptor
    content_size = r.integer(fcs_bytes) + (256 if fcs_bytes == 2 else 0)
    if content_size != expected:
        return WRONG_CONTENT_SIZE
    last = False
    while not last:
        header = r.integer(3)
        last = bool(header & 1)
        block_type = (header >> 1) & 3
        block_size = header >> 3
        if block_type == RESERVED:
            return RESERVED_BLOCK
        r.take(1 if block_type == RLE else block_size)
    if checksum_flag:
        r.take(4)
    return FRAME_OK if r.pos == len(r.data) else FRAME_TRAILING


def frame_walk_ref(stored: bytes, expected: int) -> int:
    """The status of ``stored`` (one sample's bytes) as exactly one frame of content size
    ``expected``: the first rule of the module docstring it breaks, or ``FRAME_OK``."""
    stored = bytes(stored)
    if len(stored) < 4 or stored[:4] != MAGIC:
        return NOT_A_FRAME
    r = _Reader(stored)
    r.take(4)
    try:
        return _walk(r, expected)
    except _Short:
        return FRAME_TRUNCATED


def frames_ref(data: bytes, starts: list[int], lengths: list[int], expected: list[int]
               ) -> tuple[list[int], int]:
    """Every sample's status (:func:`frame_walk_ref` of ``data[start:start + length]``) and the
    first sample not OK (or -1)."""
    status = [frame_walk_ref(data[s:s + n], e) for s, n, e in zip(starts, lengths, expected, strict=True)]
    first = next((b for b, v in enumerate(status) if v != FRAME_OK), -1)
    return status, first
