"""The file a reader validated, held open so that it keeps reading those bytes.

:func:`open_source` opens the path once (non-blocking, so a FIFO cannot stall it), refuses what
is not a regular, non-empty HDF5 file, records the file's identity (device, inode, size,
modification time) and maps it read-only. Validation then reads the metadata through that open
descriptor (h5py's file-object driver) and the heap scans read the map, so the structure checked
and the bytes later decoded are one file even when the path is replaced meanwhile (``convert
--force`` publishes by rename). The map survives ``fork`` (DataLoader workers inherit it); a
process that unpickles a reader (``spawn`` workers) maps the path again with
:func:`map_again`, which raises :class:`~dcqformat.errors.FileChangedError` unless the path still
names the file with the recorded identity.
"""

from __future__ import annotations

import io
import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dcqformat.errors import FileChangedError, NotADcqFileError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = TypeVar("_M", bound="MappedPayload")


@dataclass(frozen=True)
class FileIdentity:
    """What tells one file (and one version of it) from another: ``os.stat`` fields."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        """The identity of a ``stat`` result."""
        return cls(int(st.st_dev), int(st.st_ino), int(st.st_size), int(st.st_mtime_ns))

    def difference(self, other: FileIdentity) -> str:
        """Words for how ``other`` differs from this identity ("" when it does not)."""
        if (self.device, self.inode) != (other.device, other.inode):
            return f"it is another file now (inode {self.inode} -> {other.inode})"
        if self.size != other.size:
            return f"its size changed ({self.size} -> {other.size} bytes)"
        if self.mtime_ns != other.mtime_ns:
            return "it was modified (its modification time changed)"
        return ""


@dataclass
class Source:
    """An open, mapped, regular file: ``fd`` (closed by :meth:`release_fd` once validation is
    done), ``mm`` (the whole file, read-only) and its ``identity``."""

    path: Path
    fd: int
    mm: mmap.mmap
    identity: FileIdentity

    def file_object(self) -> io.BufferedReader:
        """A new file object over the open descriptor (for h5py's ``fileobj`` driver)."""
        return os.fdopen(os.dup(self.fd), "rb")

    def release_fd(self) -> None:
        """Close the descriptor; the map stays valid (it holds its own reference)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _open_regular(path: Path, where: str) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotADcqFileError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise NotADcqFileError(f"{where}: is a directory, not a .dcq file") from None
    except OSError as exc:
        raise NotADcqFileError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except ValueError:  # a NUL byte in the path
        raise NotADcqFileError(f"{where!r}: not a usable path (it holds a NUL byte)") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise NotADcqFileError(f"{where}: is {kind}, not a .dcq file")
    return fd, st


def open_source(path: Path) -> Source:
    """Open, check and map ``path``: NotADcqFileError for a missing, unreadable, special,
    empty or non-HDF5 file."""
    where = str(path)
    fd, st = _open_regular(path, where)
    try:
        if st.st_size == 0:
            raise NotADcqFileError(f"{where}: the file is empty (0 bytes), expected an HDF5 .dcq file")
        os.lseek(fd, 0, os.SEEK_SET)
        head = os.read(fd, 8)
        if head != HDF5_SIGNATURE:
            raise NotADcqFileError(
                f"{where}: not an HDF5 file (first bytes {head!r}, expected the HDF5 signature "
                f"{HDF5_SIGNATURE!r})")
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except BaseException:
        os.close(fd)
        raise
    return Source(path, fd, mm, FileIdentity.of(st))


def map_again(path: Path, identity: FileIdentity) -> mmap.mmap:
    """Map ``path`` anew (in another process, or after ``close``); FileChangedError unless it
    is still the file of ``identity``."""
    where = str(path)
    try:
        fd, st = _open_regular(path, where)
    except NotADcqFileError as exc:
        raise FileChangedError(f"{where}: the file validated at open is gone ({exc})") from None
    try:
        change = identity.difference(FileIdentity.of(st))
        if change:
            raise FileChangedError(
                f"{where}: the file changed since it was opened and validated: {change}; "
                "open it again")
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


class MappedPayload:
    """The payload bytes of a validated file, read through the file's map.

    Holds the map of :func:`open_source` (inherited by ``fork`` children); pickling drops it,
    and the first read after unpickling (or after :meth:`close`) maps the path again with
    :func:`map_again`, refusing a path that names another file by then.
    """

    def __init__(self, path: Path, source: Source, payload_offset: int, payload_size: int) -> None:
        self.path = path
        self._identity = source.identity
        self._mm: mmap.mmap | None = source.mm
        self._payload_at = (int(payload_offset), int(payload_size))
        self._payload: np.ndarray | None = None

    def payload_view(self) -> np.ndarray:
        """The whole ``/payload`` as a read-only uint8 array (a view of the map; spec §4)."""
        payload = self._payload
        if payload is None:
            offset, size = self._payload_at
            if size == 0:
                payload = np.empty(0, dtype=np.uint8)
            else:
                if self._mm is None:
                    self._mm = map_again(self.path, self._identity)
                payload = np.frombuffer(self._mm, dtype=np.uint8, count=size, offset=offset)
            self._payload = payload
        return payload

    def check_unchanged(self) -> None:
        """FileChangedError when the path no longer names the file validated at open (another
        file, another size or modification time). Reads keep going to the validated file through
        its map; this says whether the path still agrees with it."""
        try:
            now = FileIdentity.of(os.stat(self.path))
        except OSError as exc:
            raise FileChangedError(f"{self.path}: the file validated at open is gone "
                                   f"({exc.strerror or exc})") from None
        change = self._identity.difference(now)
        if change:
            raise FileChangedError(f"{self.path}: the file changed since it was opened: {change}")

    # -- pickling: never carry an open handle across processes ------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_mm=None, _payload=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def close(self) -> None:
        """Release the memory map (used again, the object maps the path again, refusing it with
        FileChangedError if it names another file by then)."""
        self._payload = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:  # views handed out earlier still alive; GC will release it
                pass
        self._mm = None

    def __enter__(self: _M) -> _M:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
