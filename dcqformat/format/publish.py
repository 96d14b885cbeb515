"""Temporary outputs, and publishing a finished one under its target name.

An output is written to a :class:`TempFile` in the target's folder and appears under the target
name only when it is complete (:meth:`TempFile.publish`):

- Where the system allows it (Linux, ``O_TMPFILE``) the temporary file has **no name** at all
  while it is written: a process killed at any moment (``SIGKILL`` included) leaves nothing
  behind. It is given its name by ``linkat`` at the end, which fails if the target exists, so
  publishing never replaces a file unless asked.
- Elsewhere it is a named file ``.<target>.dcq-tmp-<host>-<pid>-<random>``; a later writer into
  the same folder removes such files whose process (on this host) is gone
  (:func:`remove_stale`). Publishing without replacing links it to the target (``link`` fails if
  the target exists), else uses ``renameat2(RENAME_NOREPLACE)``, else checks and renames.
- Replacing (``overwrite=True``) is a rename over the target: readers of the old file keep
  reading it, new readers see the new one, never a mixture. Only a regular file or a symbolic
  link (the link itself) is replaced: a device, FIFO, socket or folder under the target name
  is a WriteError (:func:`check_replaceable`; a rename would put a file where ``/dev/null``
  was).

Files get the mode any tool would give them, ``0o666 & ~umask`` (the kernel applies the umask
to ``open``'s mode; ``mkstemp`` used to make every output 0600).
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import secrets
import shutil
import socket
import stat
from pathlib import Path

from dcqformat.errors import WriteError

_TAG = ".dcq-tmp-"
_HOST = socket.gethostname().replace("-", "_").replace("/", "_")[:32] or "host"


def temp_name(target: Path) -> str:
    """A fresh temporary name beside ``target`` that :func:`remove_stale` recognises."""
    return f".{target.name}{_TAG}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def check_replaceable(target: Path) -> None:
    """WriteError when ``target`` exists as something an output must not replace: anything but
    a regular file or a symbolic link (a device such as ``/dev/null``, a FIFO, a socket, a
    folder). Nothing under the name is fine."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise publish_error(target, exc) from None
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a character device" if stat.S_ISCHR(mode) else
            "a block device" if stat.S_ISBLK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise WriteError(f"output {str(target)!r} exists and is {kind}; overwrite / --force replaces "
                     "only a file")


def _anonymous_ok() -> bool:
    return hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")


def anonymous_temp_files(folder: Path) -> bool:
    """Whether temporary files in ``folder`` can be anonymous (``O_TMPFILE``, linked by name via
    ``/proc``): then a killed writer leaves nothing there."""
    if not _anonymous_ok():
        return False
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600))
    except OSError:
        return False
    return True


def remove_stale(folder: Path, target_name: str) -> list[str]:
    """Remove the named temporary files (or folders: an export's) of writers of
    ``folder/target_name`` on this host whose process no longer runs (what a killed writer
    left); returns their names."""
    prefix = f".{target_name}{_TAG}{_HOST}-"
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or process_alive(int(pid_text)):
            continue
        try:
            path = folder / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
        except OSError:
            pass
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (this one always; one that is not ours counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours (EPERM)
        return True
    return True


class TempFile:
    """A temporary file beside ``target``: anonymous where possible, else named (see the module
    doc). ``file()`` gives a read-write file object over it."""

    def __init__(self, target: Path, *, anonymous: bool | None = None) -> None:
        self.target = target
        self.folder = target.parent
        self.path: Path | None = None
        self.fd = -1
        if anonymous is None:
            anonymous = _anonymous_ok()
        if anonymous:
            try:
                self.fd = os.open(self.folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
                    raise
        if self.fd < 0:  # a named file, removed by discard() or by a later remove_stale()
            self.path = self.folder / temp_name(target)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)

    @property
    def anonymous(self) -> bool:
        """Whether the file has no name (``O_TMPFILE``)."""
        return self.path is None

    def file(self) -> io.BufferedRandom:
        """A new read-write binary file object over the temporary file (position 0)."""
        fo = os.fdopen(os.dup(self.fd), "r+b")
        fo.seek(0)
        return fo

    def sync(self) -> None:
        """Flush the file's data to the disk."""
        os.fsync(self.fd)

    def publish(self, overwrite: bool) -> None:
        """Give the finished file the target name: replace an existing target only when
        ``overwrite`` (and only a file: :func:`check_replaceable`); FileExistsError otherwise.
        Consumes the temporary file."""
        self.sync()
        target = self.target
        if overwrite:
            check_replaceable(target)
        dir_fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if self.anonymous:
                name = target.name if not overwrite else temp_name(target)
                os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
                if overwrite:
                    os.replace(name, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            elif overwrite:
                assert self.path is not None
                os.replace(self.path, target)
                self.path = None
            else:
                assert self.path is not None
                _rename_noreplace(self.path, target)
                self.path = None
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.discard()

    def discard(self) -> None:
        """Close and remove the temporary file (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.path = None


def move_into_place(src: Path, dst: Path, overwrite: bool) -> None:
    """Give the finished file ``src`` (in ``dst``'s folder) the name ``dst``: a rename over it
    with ``overwrite`` (a file only, :func:`check_replaceable`), else only if ``dst`` does not
    exist (WriteError otherwise)."""
    try:
        if overwrite:
            check_replaceable(dst)
            os.replace(src, dst)
        else:
            _rename_noreplace(src, dst)
    except OSError as exc:
        raise publish_error(dst, exc) from None


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists (FileExistsError)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:  # no hard links on this file system: renameat2, else check + rename
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        if not _renameat2_noreplace(src, dst):
            if dst.exists():
                raise FileExistsError(errno.EEXIST, "File exists", str(dst)) from None
            os.rename(src, dst)
        return
    src.unlink()


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """``renameat2(RENAME_NOREPLACE)`` through libc; False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, noreplace = -100, 1
    if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, "File exists", str(dst))
    if err in (errno.EINVAL, errno.ENOSYS):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def publish_error(target: Path, exc: OSError) -> WriteError:
    """The WriteError for a failed write or publish of ``target``."""
    if isinstance(exc, FileExistsError):
        return WriteError(f"{str(target)!r} exists (pass overwrite=True / --force to replace it)")
    return WriteError(f"cannot write {str(target)!r}: {exc.strerror or exc}")
