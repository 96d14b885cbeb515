"""A candidate payload being streamed to a temporary file beside the target (one per encoding
the writer tries): the stored bytes, per-sample lengths and CRC-32s, and the running CRC-32 of the
whole payload."""

from __future__ import annotations

import zlib
from array import array
from pathlib import Path

import zstandard

from dcqformat.format.publish import TempFile

__all__ = ["PayloadSpool"]


class PayloadSpool:
    """One candidate payload being streamed to a temporary file: its bytes, per-sample
    lengths and CRC-32s, and the running CRC-32 of the whole payload."""

    def __init__(self, encoding: str, target: Path, zstd_level: int) -> None:
        self.encoding = encoding  # "raw", "zstd" or "ctx" (ctx streams arrive coded)
        self.compressor = (
            zstandard.ZstdCompressor(level=zstd_level, write_content_size=True, write_checksum=False)
            if encoding == "zstd" else None)
        self.tmp = TempFile(target)
        self.file = self.tmp.file()
        self.size = 0
        self.crc = 0
        self.lengths = array("Q")
        self.crcs = array("Q")

    def append(self, packed: bytes) -> None:
        """Store one sample: its packed map (compressed here for zstd) or its coded stream."""
        stored = self.compressor.compress(packed) if self.compressor is not None else packed
        self.file.write(stored)
        self.lengths.append(len(stored))
        self.crcs.append(zlib.crc32(stored) & 0xFFFFFFFF)
        self.size += len(stored)
        self.crc = zlib.crc32(stored, self.crc)

    def finish(self) -> None:
        """Flush and close the spool file; no more samples after this."""
        self.file.flush()
        self.file.close()

    def discard(self) -> None:
        """Close and remove the spool file (idempotent)."""
        try:
            self.file.close()
        except OSError:
            pass
        self.tmp.discard()
