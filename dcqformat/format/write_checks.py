"""Checks and small helpers of the writer: argument checks that name the sample, the class-name
rules of spec §4, the per-sample arrays' compression settings and checksums."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from dcqformat.checks import check_int
from dcqformat.errors import InvalidArgumentError
from dcqformat.format import layout as L

__all__ = ["deflate_options", "checked_int", "utf8_text", "check_class_names", "crc32_of"]


def deflate_options(n: int) -> dict[str, Any]:
    """HDF5 shuffle + deflate (built into every HDF5 build) for per-sample metadata arrays;
    tiny arrays stay contiguous because a chunk index costs more than it saves."""
    if n < L.METADATA_DEFLATE_MIN:
        return {}
    return {"chunks": (min(n, 1 << 20),), "shuffle": True, "compression": "gzip",
            "compression_opts": 6}


def checked_int(name: str, value: Any, lo: int, hi: int, sample: int) -> int:
    """``value`` as an int in ``lo..hi`` (bools and floats refused), else InvalidArgumentError."""
    try:
        return check_int(value, name, minimum=lo, maximum=hi)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"sample {sample}: {exc}") from None


def utf8_text(text: str, what: str) -> str:
    """``text`` when it encodes as UTF-8 (no lone surrogates), else InvalidArgumentError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgumentError(f"{what} {text!r} is not valid Unicode text ({exc.reason})") from None
    return text


def check_class_names(classes: Any) -> list[str]:
    """The class names as a list: any iterable of names (not one string), each non-empty UTF-8
    text without newline or NUL, all different (spec §4), else InvalidArgumentError."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise InvalidArgumentError(
            f"classes must be a sequence of class names, got {type(classes).__name__} {classes!r}")
    try:
        items = list(classes)
    except TypeError as exc:  # e.g. a 0-d array
        raise InvalidArgumentError(f"classes must be a sequence of class names ({exc})") from None
    names = [utf8_text(str(c), "class name") for c in items]
    if not names:
        raise InvalidArgumentError("classes must name at least one class, got an empty list")
    bad = [c for c in names if not c or "\n" in c or "\0" in c]
    if bad:
        raise InvalidArgumentError(f"class names must be non-empty without newline or NUL, got {bad[0]!r}")
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"classes must be unique, got {names!r}")
    return names


def crc32_of(array_: np.ndarray) -> int:
    """CRC-32 of an array's bytes in C order (spec §4)."""
    return zlib.crc32(np.ascontiguousarray(array_).tobytes()) & 0xFFFFFFFF
