"""Export a .dcq file back to an ImageFolder of PNG files.

Every class gets its own folder (:func:`class_folders`: a safe, unique name, recorded in
``dcq-export.json`` beside them), every sample's CRC-32 is checked before it is decoded, and the
whole tree is written into a temporary folder beside the target that is renamed into place only
when complete: an error, Ctrl-C or SIGTERM mid-way leaves nothing under the target name (and a
killed export's folder is removed by the next export into the same place). Any failure --
a damaged sample, a full disk, a read-only target -- is a :class:`~dcqformat.errors.DcqError`.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from dcqformat.checks import check_path
from dcqformat.errors import ChecksumMismatchError, InvalidArgumentError, WriteError
from dcqformat.format.publish import remove_stale, temp_name
from dcqformat.format.reader import DCQFile

MANIFEST = "dcq-export.json"
#: Longest folder name in UTF-8 bytes (file systems allow 255; room for a suffix).
MAX_FOLDER_BYTES = 120
_UNSAFE = re.compile(r"[^\w.\- ]+")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _safe_name(name: str, index: int) -> str:
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFC", name)).strip(" .")
    raw = cleaned.encode("utf-8")[:MAX_FOLDER_BYTES]
    cleaned = raw.decode("utf-8", "ignore").rstrip(" .")
    if not cleaned or cleaned.split(".")[0].lower() in _RESERVED:
        cleaned = f"class_{index}" if not cleaned else f"{cleaned}_{index}"
    return cleaned


def class_folders(classes: Sequence[str]) -> list[str]:
    """One folder name per class: the name with anything but letters, digits, ``_.- `` replaced
    by ``_``, no leading or trailing dots or spaces, at most :data:`MAX_FOLDER_BYTES` bytes, and
    unique even on case-insensitive file systems (a later class whose name collides gets
    ``~<class index>``)."""
    taken = {MANIFEST.casefold()}
    out = []
    for k, name in enumerate(classes):
        folder = _safe_name(name, k)
        if folder.casefold() in taken:
            folder = f"{folder}~{k}"
        taken.add(folder.casefold())
        out.append(folder)
    return out


def _check_target(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidArgumentError(f"export target {str(out)!r} exists and is not an empty folder")
    if not out.parent.is_dir():
        raise InvalidArgumentError(f"the folder {str(out.parent)!r} for the export does not exist")


def _write_samples(f: DCQFile, tmp: Path, folders: list[str],
                   progress: Callable[[int, int], None] | None) -> list[int]:
    m = f.metadata
    n = len(f)
    width = max(1, len(str(max(n - 1, 0))))
    counts = [0] * len(folders)
    for i in range(n):
        crc = zlib.crc32(f.stored(i).data) & 0xFFFFFFFF
        if crc != int(m.crc32[i]):
            raise ChecksumMismatchError(f"{f.path}: sample {i}: payload CRC-32 is {crc:#010x}, the "
                                        f"file records {int(m.crc32[i]):#010x}; nothing was exported")
        pixels, label = f[i]
        img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
        img.save(tmp / folders[label] / f"{i:0{width}d}.png")
        counts[label] += 1
        if progress is not None:
            progress(i + 1, n)
    return counts


def export_imagefolder(f: DCQFile, out_dir: str | os.PathLike[str], *,
                       progress: Callable[[int, int], None] | None = None) -> int:
    """Write every sample as ``out_dir/<class folder>/<index>.png`` plus ``out_dir/dcq-export.json``
    (the source file, and per class its index, name, folder and image count); returns the number
    of images. ``out_dir`` must not exist or be empty; it appears only when complete.
    ``progress(done, total)`` is called after each image."""
    out = check_path(out_dir, "out_dir")
    _check_target(out)
    f.check_unchanged()
    folders = class_folders(f.classes)
    remove_stale(out.parent, out.name)
    tmp = out.parent / temp_name(out)
    try:
        tmp.mkdir()
        for folder in folders:
            (tmp / folder).mkdir()
        counts = _write_samples(f, tmp, folders, progress)
        manifest = {"source": str(f.path), "samples": len(f), "layout": "<folder>/<sample index>.png",
                    "classes": [{"index": k, "name": name, "folder": folder, "images": c}
                                for k, (name, folder, c) in enumerate(zip(f.classes, folders, counts, strict=True))]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, out)  # an empty target folder is replaced; a non-empty one refuses
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, FileExistsError) or exc.errno == errno.ENOTEMPTY:
            raise InvalidArgumentError(f"export target {str(out)!r} appeared meanwhile and is not empty") from None
        raise WriteError(f"cannot export to {str(out)!r}: {exc.strerror or exc}; nothing was written") from None
    except BaseException:  # a DcqError, Ctrl-C, SIGTERM (KeyboardInterrupt in the CLI)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(f)
