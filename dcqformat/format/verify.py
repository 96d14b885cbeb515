"""The verifier (spec §8): every checksum, the zero padding of §5 and a decode of every sample.

It works through the public reader only (:class:`~dcqformat.format.reader.DCQFile`'s
``metadata``, ``payload_view``, ``stored``, ``packed``, ``stored_pixels`` and ``decode``): the
structural rules of §10 were already enforced when the file was opened.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from dcqformat.codecs.bitpack import padding_is_zero
from dcqformat.errors import ChecksumMismatchError, InvalidArgumentError, StructureError

if TYPE_CHECKING:
    from dcqformat.format.reader import DCQFile

_CRC_STEP = 16 << 20


def payload_crc32(f: DCQFile) -> int:
    """CRC-32 of the whole payload, computed in 16 MiB steps."""
    payload = f.payload_view()
    crc = 0
    for start in range(0, payload.size, _CRC_STEP):
        crc = zlib.crc32(payload[start:start + _CRC_STEP].data, crc)
    return crc & 0xFFFFFFFF


def verify_sample(f: DCQFile, i: int) -> None:
    """Sample ``i``'s CRC-32, zero padding and decode; a DcqError on the first failure."""
    m = f.metadata
    crc = zlib.crc32(f.stored(i).data) & 0xFFFFFFFF
    if crc != int(m.crc32[i]):
        raise ChecksumMismatchError(
            f"{f.path}: sample {i}: payload CRC-32 is {crc:#010x}, the file records {int(m.crc32[i]):#010x}")
    if not padding_is_zero(f.packed(i), f.stored_pixels(i), m.bits):
        raise StructureError(f"{f.path}: sample {i}: padding bits after the last pixel are not zero")
    f.decode(i)


def verify_file(f: DCQFile, progress: Callable[[int, int], None] | None = None) -> None:
    """Check that the path still names the opened file, the whole-payload checksum, and every
    sample (:func:`verify_sample`); ``progress(done, total)`` after each sample. A
    ``KeyboardInterrupt`` simply stops it (nothing is written)."""
    if progress is not None and not callable(progress):
        raise InvalidArgumentError(f"progress must be a callable or None, got {type(progress).__name__}")
    f.check_unchanged()
    m = f.metadata
    crc = payload_crc32(f)
    if crc != m.payload_crc32:
        raise ChecksumMismatchError(
            f"{f.path}: dataset '/payload' has CRC-32 {crc:#010x}, the file records {m.payload_crc32:#010x}")
    n = len(f)
    for i in range(n):
        verify_sample(f, i)
        if progress is not None:
            progress(i + 1, n)
