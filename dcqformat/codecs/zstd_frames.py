"""Structural checks of Zstandard frames (RFC 8878 §3.1.1) without decompressing them.

A ``zstd`` payload stores every sample as exactly one frame that declares its content size
(spec ``dcq-v1.md`` §6). :func:`check_frames` walks the frame header and the block headers of
many samples in one Numba call and reports, per sample, whether the stored bytes are exactly
one such frame of the expected size; only then are they handed to libzstd (python-zstandard's
batch API, which itself accepts bytes after a frame). The walk reads only bytes inside each
sample's range, and every loop advances by at least 3 bytes, so it ends.

Status codes: ``FRAME_OK`` = 0, ``NOT_A_FRAME`` (no frame magic), ``BAD_HEADER`` (reserved bit
set, or a dictionary id: v1 uses none), ``NO_CONTENT_SIZE``, ``WRONG_CONTENT_SIZE``,
``FRAME_TRUNCATED``, ``RESERVED_BLOCK`` (block type 3), ``FRAME_TRAILING`` (bytes after the
frame). :func:`dcqformat.codecs.zstd_reference.frame_walk_ref` is the plain-Python reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcqformat.errors import InvalidArgumentError

FRAME_OK, NOT_A_FRAME, BAD_HEADER, NO_CONTENT_SIZE, WRONG_CONTENT_SIZE, FRAME_TRUNCATED, \
    RESERVED_BLOCK, FRAME_TRAILING = range(8)
FRAME_STATUS_TEXT = {
    NOT_A_FRAME: "not a zstd frame (no frame magic)",
    BAD_HEADER: "the zstd frame header sets a reserved bit or names a dictionary",
    NO_CONTENT_SIZE: "the zstd frame does not declare its content size",
    WRONG_CONTENT_SIZE: "the zstd frame declares another content size than the map needs",
    FRAME_TRUNCATED: "the zstd frame is incomplete (truncated)",
    RESERVED_BLOCK: "the zstd frame holds a block of the reserved type 3",
    FRAME_TRAILING: "bytes follow the zstd frame (the stored bytes must be exactly one frame)",
}

__all__ = ["FRAME_OK", "FRAME_STATUS_TEXT", "check_frames", "frame_status"]


@njit(cache=True, nogil=True)
def frame_status(data, start, length, expected):  # type: ignore[no-untyped-def]
    """Status of ``data[start:start + length]`` as one frame of content size ``expected``
    (the caller guarantees the range lies inside ``data``)."""
    end = start + length
    if length < 4 or data[start] != 0x28 or data[start + 1] != 0xB5 or data[start + 2] != 0x2F or data[start + 3] != 0xFD:
        return NOT_A_FRAME
    if length < 5:
        return FRAME_TRUNCATED
    fhd = data[start + 4]
    if fhd & 0x08 or fhd & 0x03:
        return BAD_HEADER
    single = (fhd >> 5) & 1
    fcs_flag = fhd >> 6
    pos = start + 5 + (1 - single)  # the Window_Descriptor when not single-segment
    fcs_size = 1 if (fcs_flag == 0 and single) else (0 if fcs_flag == 0 else (1 << fcs_flag))
    if fcs_size == 0:
        return NO_CONTENT_SIZE
    if pos + fcs_size > end:
        return FRAME_TRUNCATED
    size = np.int64(0)
    for j in range(fcs_size):
        size |= np.int64(data[pos + j]) << (8 * j)
    if fcs_size == 2:
        size += 256
    if size != expected:  # an 8-byte size >= 2**63 reads negative here: also refused
        return WRONG_CONTENT_SIZE
    pos += fcs_size
    while True:
        if pos + 3 > end:
            return FRAME_TRUNCATED
        head = np.int64(data[pos]) | (np.int64(data[pos + 1]) << 8) | (np.int64(data[pos + 2]) << 16)
        pos += 3
        kind = (head >> 1) & 3
        if kind == 3:
            return RESERVED_BLOCK
        pos += 1 if kind == 1 else head >> 3
        if pos > end:
            return FRAME_TRUNCATED
        if head & 1:
            break
    if (fhd >> 2) & 1:
        pos += 4
        if pos > end:
            return FRAME_TRUNCATED
    return FRAME_OK if pos == end else FRAME_TRAILING


@njit(cache=True, nogil=True)
def _frames_kernel(data, starts, lengths, expected, status):  # type: ignore[no-untyped-def]
    """Fill ``status`` for every sample; returns the first sample not OK, or -1."""
    first = -1
    for b in range(starts.shape[0]):
        status[b] = frame_status(data, starts[b], lengths[b], expected[b])
        if status[b] != FRAME_OK and first < 0:
            first = b
    return first


def check_frames(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                 expected: np.ndarray) -> tuple[int, int]:
    """Check that ``data[starts[b]:starts[b] + lengths[b]]`` is exactly one frame declaring
    ``expected[b]`` bytes, for every b. Returns ``(-1, FRAME_OK)`` or the first failing
    ``(b, status)``. Every range must lie inside ``data`` (checked here)."""
    s = np.ascontiguousarray(starts, dtype=np.int64)
    n = np.ascontiguousarray(lengths, dtype=np.int64)
    e = np.ascontiguousarray(expected, dtype=np.int64)
    if not (s.shape == n.shape == e.shape) or (s.size and (s.min() < 0 or n.min() < 0
                                                           or int((s + n).max()) > data.size)):
        raise InvalidArgumentError("frame ranges must lie inside the data")
    status = np.empty(s.size, np.int8)
    first = _frames_kernel(data, s, n, e, status)
    return (-1, FRAME_OK) if first < 0 else (int(first), int(status[first]))
