"""The error tree of dcqformat.

Every failure the library reports is a :class:`DcqError` (itself a ``ValueError``), so
``except DcqError`` catches all of them. Each subclass names one family of failures; the
message says *what* went wrong, *where* (file, section, sample index) and *what was found*.
"""

from __future__ import annotations


class DcqError(ValueError):
    """Base class of every error dcqformat raises on purpose."""


class NotADcqFileError(DcqError):
    """The file is empty, not HDF5, or an HDF5 file that is not a .dcq container."""


class TruncatedFileError(DcqError):
    """The file ends before the data its structure describes."""


class UnsupportedVersionError(DcqError):
    """The file's major version, or a must-understand feature, is unknown to this reader."""


class StructureError(DcqError):
    """A field is missing, has the wrong dtype or shape, or holds an impossible value
    (offsets past the payload, cluster ids >= C, labels >= number of classes, ...)."""


class ChecksumMismatchError(DcqError):
    """A section's stored checksum does not match its bytes."""


class PayloadError(DcqError):
    """A sample's payload bytes cannot be decoded (bad zstd frame, index >= K, wrong length)."""


class PixelLimitError(DcqError):
    """A sample has more pixels than the reader's ``max_pixels`` guard allows (a
    decompression-bomb guard, like Pillow's ``MAX_IMAGE_PIXELS``); raise the limit to read it."""


class FileChangedError(DcqError):
    """The file was replaced or modified after it was opened and validated; reopen it."""


class InputImageError(DcqError):
    """A source image cannot be read or converted (corrupt, zero-size, unsupported mode)."""


class InvalidArgumentError(DcqError):
    """A caller passed an argument outside its allowed range or of the wrong kind."""


class WriteError(DcqError):
    """An output cannot be written: a writer used out of order (sample after close, missing
    palettes, ...), a target that exists, a full disk or a folder without write permission."""


class ShardMismatchError(InvalidArgumentError):
    """The files given to a merge are not the shards of one conversion."""


class RankFailedError(DcqError):
    """Another rank of a torch.distributed job failed; this rank stopped at the next check."""


class BatchTransportError(DcqError):
    """A batch a DataLoader worker sent cannot be rebuilt in the receiving process (its shared
    memory never arrived there; see :mod:`dcqformat.torch.batch_arena`)."""


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM; the command line turns it into this so that it takes Ctrl-C's
    clean-up path (a KeyboardInterrupt, not a DcqError: it is no failure of the input)."""


__all__ = [
    "DcqError",
    "NotADcqFileError",
    "TruncatedFileError",
    "UnsupportedVersionError",
    "StructureError",
    "ChecksumMismatchError",
    "PayloadError",
    "PixelLimitError",
    "FileChangedError",
    "InputImageError",
    "InvalidArgumentError",
    "WriteError",
    "ShardMismatchError",
    "RankFailedError",
    "BatchTransportError",
    "Terminated",
]
