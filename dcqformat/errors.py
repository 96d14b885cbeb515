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


class InputImageError(DcqError):
    """A source image cannot be read or converted (corrupt, zero-size, unsupported mode)."""


class InvalidArgumentError(DcqError):
    """A caller passed an argument outside its allowed range or of the wrong kind."""


class WriteError(DcqError):
    """A writer was used out of order (sample after close, missing palettes, ...)."""


class RankFailedError(DcqError):
    """Another rank of a torch.distributed job failed; this rank stopped at the next check."""


__all__ = [
    "DcqError",
    "NotADcqFileError",
    "TruncatedFileError",
    "UnsupportedVersionError",
    "StructureError",
    "ChecksumMismatchError",
    "PayloadError",
    "InputImageError",
    "InvalidArgumentError",
    "WriteError",
    "RankFailedError",
]
