"""Byte budgets as users write them: ``400000``, ``400KB``, ``1.5GB`` (powers of 1000),
``400KiB``, ``2GiB`` (powers of 1024)."""

from __future__ import annotations

import math
import re
from typing import Any

from dcqformat.errors import InvalidArgumentError

__all__ = ["parse_budget", "format_bytes"]

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_budget(value: Any) -> int:
    """A budget in bytes (an int >= 1, or text with a unit); InvalidArgumentError otherwise."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"budget must be a size such as 400KB, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        unit = m.group(2).lower() if m else None
        if m is None or unit not in _UNITS:
            raise InvalidArgumentError(
                f"budget must be a number of bytes with an optional unit (B, KB, MB, GB, TB in "
                f"powers of 1000; KiB, MiB, GiB, TiB in powers of 1024), got {value!r}")
        n = math.floor(float(m.group(1)) * _UNITS[unit])
    if n < 1:
        raise InvalidArgumentError(f"budget must be at least 1 byte, got {value!r}")
    return int(n)


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.23 MB"`` (powers of 1000)."""
    for unit, f in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if abs(n) >= f:
            return f"{n / f:.2f} {unit}"
    return f"{n:.0f} B"
