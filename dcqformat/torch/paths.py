"""What :class:`~dcqformat.torch.dataset.DCQDataset` accepts as its files: a path, a glob, a
folder of ``*.dcq`` files, a list of them, or already opened :class:`DCQFile` objects."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile

__all__ = ["PathLike", "resolve_paths"]

PathLike = str | os.PathLike[str]


def resolve_paths(path_or_paths: PathLike | DCQFile | Sequence[PathLike | DCQFile]) -> list[Path | DCQFile]:
    """Expand a path, a glob, a folder (its ``*.dcq`` files, sorted) or a list of them."""
    if isinstance(path_or_paths, (str, os.PathLike)):
        text = os.fspath(path_or_paths)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise InvalidArgumentError(f"no file matches the pattern {text!r}")
            return [Path(m) for m in matches]
        path = Path(text)
        if path.is_dir():
            found = sorted(path.glob("*.dcq"))
            if not found:
                raise InvalidArgumentError(f"folder {text!r} holds no *.dcq file")
            return list(found)
        return [path]
    if isinstance(path_or_paths, DCQFile):
        return [path_or_paths]
    if isinstance(path_or_paths, Sequence):
        items: list[Path | DCQFile] = [
            p if isinstance(p, DCQFile) else Path(os.fspath(p)) for p in path_or_paths]
        if not items:
            raise InvalidArgumentError("path_or_paths is an empty list; give at least one .dcq file")
        return items
    raise InvalidArgumentError(
        f"path_or_paths must be a path, a glob, a folder or a list of paths, got {type(path_or_paths).__name__}")
