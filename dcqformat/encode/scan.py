"""ImageFolder scanning: the canonical sample order of a source dataset.

The rules are torchvision's ``ImageFolder`` (``find_classes`` + ``make_dataset``) so that a
``.dcq`` file and an ``ImageFolder`` over the same folder number their samples identically:

- classes are the sorted names of the immediate sub-folders of the root (a class index is its
  position in that list; a class folder may be empty);
- within each class, files are found by ``os.walk`` (following symlinks), directories and file
  names visited in sorted order, kept when the lower-cased name ends with one of
  :data:`IMG_EXTENSIONS`;
- samples are ordered class by class in class order.

Real folders are hostile in ways torchvision does not guard against, so the scan also:

- follows symbolic links, but never enters a directory twice and never lists a file twice
  (both recognised by device + inode, the first visit in the order above wins): a link loop
  or a link to the root cannot hang the scan or duplicate images under other labels. Each
  directory or file left out this way is reported in :attr:`FolderListing.skipped`;
- refuses a class folder whose name is not valid UTF-8 (class names are UTF-8 in the file) with
  an :class:`~dcqformat.errors.InputImageError`, and reports an image file whose path is not
  valid UTF-8 in :attr:`FolderListing.rejected` (``convert`` fails on it up front, or skips and
  reports it with ``on_error="skip"``), instead of failing after the analysis;
- reports directories it cannot read.

Sorting is by Python string order of the names (code points), as torchvision does, so the order
does not depend on the file system or the locale.

The listing hash (SHA-256 over the class names and every ``relative/path<TAB>size`` line) records
in a file's provenance exactly which source files it was made from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dcqformat.errors import InputImageError, InvalidArgumentError

__all__ = ["IMG_EXTENSIONS", "SourceEntry", "FolderListing", "scan_image_folder", "listing_hash",
           "printable"]

IMG_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".ppm",
    ".bmp",
    ".pgm",
    ".tif",
    ".tiff",
    ".webp",
)


@dataclass(frozen=True)
class SourceEntry:
    """One source image: absolute ``path``, ``relpath`` (POSIX, relative to the root), class
    index ``label`` and file ``size`` in bytes at scan time."""

    path: Path
    relpath: str
    label: int
    size: int


@dataclass(frozen=True)
class FolderListing:
    """The result of :func:`scan_image_folder`. ``skipped``: directories and files left out
    (``{"path", "reason"}``: repeated by link, unreadable); ``rejected``: image files whose path
    is not valid UTF-8 (``{"path", "reason"}``, the path with its bytes escaped)."""

    root: Path
    classes: tuple[str, ...]
    entries: tuple[SourceEntry, ...]
    listing_hash: str
    skipped: tuple[dict[str, str], ...] = ()
    rejected: tuple[dict[str, str], ...] = ()

    @property
    def total_bytes(self) -> int:
        """The sizes of the listed files at scan time, summed (each file is listed once)."""
        return sum(e.size for e in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def listing_hash(classes: Sequence[str], entries: Sequence[SourceEntry]) -> str:
    """SHA-256 (hex) of the class list and of every ``relpath<TAB>size`` line, in order."""
    h = hashlib.sha256()
    h.update(b"dcq-listing-v1\n")
    for name in classes:
        h.update(b"class\t" + name.encode("utf-8", "surrogateescape") + b"\n")
    for e in entries:
        h.update(e.relpath.encode("utf-8", "surrogateescape") + b"\t" + str(e.size).encode() + b"\n")
    return h.hexdigest()


def printable(path: str) -> str:
    """``path`` with bytes that are not valid UTF-8 written as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Walker:
    """Depth-first walk in sorted order that follows links but visits every directory and
    file (device, inode) once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen_dirs: set[tuple[int, int]] = set()
        self.seen_files: dict[tuple[int, int], str] = {}
        self.skipped: list[dict[str, str]] = []
        st = root.stat()
        self.seen_dirs.add((st.st_dev, st.st_ino))

    def rel(self, path: str) -> str:
        """``path`` relative to the root, POSIX, non-UTF-8 bytes escaped (:func:`printable`)."""
        return printable(Path(path).relative_to(self.root).as_posix())

    def walk(self, top: Path) -> list[tuple[str, list[str]]]:
        """``(dirpath, file names)`` of every directory under ``top`` visited once."""
        out: list[tuple[str, list[str]]] = []
        stack = [str(top)]
        while stack:
            d = stack.pop()
            try:
                st = os.stat(d)
                key = (st.st_dev, st.st_ino)
                if key in self.seen_dirs:
                    self.skipped.append({"path": self.rel(d), "reason": "directory visited "
                                         "already (a symbolic link loop or a second link)"})
                    continue
                self.seen_dirs.add(key)
                with os.scandir(d) as it:
                    items = sorted(it, key=lambda e: e.name)
            except OSError as err:
                self.skipped.append({"path": self.rel(d),
                                     "reason": f"cannot read: {err.strerror or err}"})
                continue
            files: list[str] = []
            subdirs: list[str] = []
            for item in items:
                try:
                    is_dir = item.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    subdirs.append(item.path)
                else:
                    files.append(item.name)
            out.append((d, files))
            stack.extend(reversed(subdirs))
        return out

    def first_visit(self, path: Path) -> bool:
        """False (and reported) when ``path`` is a file listed already under another name."""
        try:
            st = path.stat()
        except OSError:
            return True  # dangling link: listed, fails at load time with its reason
        key = (st.st_dev, st.st_ino)
        if key in self.seen_files:
            self.skipped.append({"path": self.rel(str(path)), "reason": "the same file as "
                                 f"{self.seen_files[key]} (a link or hard link), listed once"})
            return False
        self.seen_files[key] = self.rel(str(path))
        return True


def scan_image_folder(
    root: str | os.PathLike[str], extensions: Sequence[str] = IMG_EXTENSIONS
) -> FolderListing:
    """List an ImageFolder in canonical order (see the module docstring).

    Raises :class:`~dcqformat.errors.InvalidArgumentError` when ``root`` is not a directory, has
    no class sub-folders, or holds no image files, and
    :class:`~dcqformat.errors.InputImageError` for a class folder whose name is not UTF-8.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise InvalidArgumentError(f"source {str(root_path)!r} is not a directory")
    root_path = root_path.resolve()
    classes = sorted(entry.name for entry in os.scandir(root_path) if entry.is_dir())
    if not classes:
        raise InvalidArgumentError(
            f"source {str(root_path)!r} has no class sub-folders; expected an ImageFolder "
            "(root/<class>/<image>)"
        )
    bad = [printable(c) for c in classes if not _is_utf8(c)]
    if bad:
        raise InputImageError(f"source {printable(str(root_path))!r}: class folder name(s) "
                              f"{', '.join(bad)} are not valid UTF-8 (class names are stored as UTF-8); "
                              "rename them")
    exts = tuple(x.lower() for x in extensions)
    walker = _Walker(root_path)
    entries: list[SourceEntry] = []
    rejected: list[dict[str, str]] = []
    for label, name in enumerate(classes):
        for dirpath, filenames in sorted(walker.walk(root_path / name)):
            for fname in filenames:
                if not fname.lower().endswith(exts):
                    continue
                path = Path(dirpath) / fname
                rel = path.relative_to(root_path).as_posix()
                if not _is_utf8(rel):
                    rejected.append({"path": printable(rel), "reason": "the path is not valid "
                                     "UTF-8 (source paths are stored as UTF-8); rename it"})
                    continue
                if not walker.first_visit(path):
                    continue
                try:
                    st = path.stat()
                except OSError:  # dangling symlink: listed with size -1, fails at load time
                    size = -1
                else:
                    if not path.is_file():
                        continue
                    size = st.st_size
                entries.append(SourceEntry(path, rel, label, size))
    if not entries:
        raise InvalidArgumentError(
            f"source {str(root_path)!r} has {len(classes)} class folder(s) but no image files "
            f"with extensions {', '.join(exts)}"
        )
    return FolderListing(root_path, tuple(classes), tuple(entries), listing_hash(classes, entries),
                         tuple(walker.skipped), tuple(rejected))
