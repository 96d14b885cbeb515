"""ImageFolder scanning: the canonical sample order of a source dataset.

The rules are torchvision's ``ImageFolder`` (``find_classes`` + ``make_dataset``) so that a
``.dcq`` file and an ``ImageFolder`` over the same folder number their samples identically:

- classes are the sorted names of the immediate sub-folders of the root (a class index is its
  position in that list; a class folder may be empty);
- within each class, files are found by ``os.walk`` (following symlinks), directories and file
  names visited in sorted order, kept when the lower-cased name ends with one of
  :data:`IMG_EXTENSIONS`;
- samples are ordered class by class in class order.

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

from dcqformat.errors import InvalidArgumentError

__all__ = ["IMG_EXTENSIONS", "SourceEntry", "FolderListing", "scan_image_folder", "listing_hash"]

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
    """The result of :func:`scan_image_folder`."""

    root: Path
    classes: tuple[str, ...]
    entries: tuple[SourceEntry, ...]
    listing_hash: str

    @property
    def total_bytes(self) -> int:
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


def scan_image_folder(
    root: str | os.PathLike[str], extensions: Sequence[str] = IMG_EXTENSIONS
) -> FolderListing:
    """List an ImageFolder in canonical order (see the module docstring).

    Raises :class:`~dcqformat.errors.InvalidArgumentError` when ``root`` is not a directory, has
    no class sub-folders, or holds no image files.
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
    exts = tuple(x.lower() for x in extensions)
    entries: list[SourceEntry] = []
    for label, name in enumerate(classes):
        class_dir = root_path / name
        for dirpath, _dirnames, filenames in sorted(os.walk(class_dir, followlinks=True)):
            for fname in sorted(filenames):
                if not fname.lower().endswith(exts):
                    continue
                path = Path(dirpath) / fname
                try:
                    st = path.stat()
                except OSError:  # dangling symlink: listed with size -1, fails at load time
                    size = -1
                else:
                    if not path.is_file():
                        continue
                    size = st.st_size
                entries.append(SourceEntry(path, path.relative_to(root_path).as_posix(), label, size))
    if not entries:
        raise InvalidArgumentError(
            f"source {str(root_path)!r} has {len(classes)} class folder(s) but no image files "
            f"with extensions {', '.join(exts)}"
        )
    return FolderListing(root_path, tuple(classes), tuple(entries), listing_hash(classes, entries))
