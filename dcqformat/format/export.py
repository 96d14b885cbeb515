"""Export a .dcq file back to an ImageFolder of PNG files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from PIL import Image

from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile

_UNSAFE = re.compile(r"[^\w.\- ]+")


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).strip(" .")
    return cleaned or "_"


def export_imagefolder(f: DCQFile, out_dir: str | os.PathLike[str]) -> int:
    """Write every sample as ``out_dir/<class>/<index>.png``; returns the count written.

    Class names are sanitised into safe folder names (no path separators, no '..').
    ``out_dir`` must not exist or be empty, so nothing of the user's is overwritten.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidArgumentError(f"export target {str(out)!r} exists and is not an empty folder")
    names = [_safe_name(c) for c in f.classes]
    width = max(1, len(str(max(len(f) - 1, 0))))
    for name in set(names):
        (out / name).mkdir(parents=True, exist_ok=True)
    for i in range(len(f)):
        pixels, label = f[i]
        img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        img.save(out / names[label] / f"{i:0{width}d}.png")
    return len(f)
