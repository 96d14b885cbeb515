"""Original image sizes (spec §15, version 1.3): optional ``/samples/original_height`` and
``/samples/original_width``, the size each sample had before the writer stored it smaller
(``convert --scale``). Absent means every sample is stored at its original size. Decoding is
unchanged (readers of 1.2 ignore them), so no must-understand feature is needed."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from dcqformat.errors import InvalidArgumentError, StructureError
from dcqformat.format import h5checks as H

__all__ = ["FIELDS", "DTYPE", "MINOR_VERSION", "MAX_SIDE", "OriginalSizeWriter",
           "read_original_sizes"]

FIELDS = ("original_height", "original_width")
DTYPE = np.dtype("<u4")
MINOR_VERSION = 3
MAX_SIDE = 1 << 24  # sides up to 16,777,216 px


class OriginalSizeWriter:
    """Collects each sample's original size; writes the two datasets only when some sample's
    differs from its stored size."""

    def __init__(self) -> None:
        self.heights = array("Q")
        self.widths = array("Q")
        self.differs = False

    def check(self, original: Any, stored: tuple[int, int], sample: int) -> tuple[int, int]:
        """``original`` (``(H, W)`` or None for the stored size) checked, not yet recorded."""
        if original is None:
            return stored
        try:
            h, w = (int(v) for v in original)
            if (h, w) != tuple(original) or isinstance(original, (str, bytes)):
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"sample {sample}: original_size must be (height, width) "
                                       f"integers, got {original!r}") from None
        if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
            raise InvalidArgumentError(f"sample {sample}: original_size {original!r} must have "
                                       f"sides in 1..{MAX_SIDE}")
        return h, w

    def add(self, original: tuple[int, int], stored: tuple[int, int]) -> None:
        """Record one sample (after :meth:`check`)."""
        self.heights.append(original[0])
        self.widths.append(original[1])
        self.differs = self.differs or original != stored

    def write(self, group: h5py.Group,
              write_array: Callable[[h5py.Group, str, np.ndarray, bool], None]) -> None:
        """Add the datasets to ``/samples`` (only when some original size differs)."""
        if not self.differs:
            return
        for name, values in zip(FIELDS, (self.heights, self.widths), strict=True):
            write_array(group, name, np.frombuffer(values, dtype=np.uint64).astype(DTYPE), True)


def read_original_sizes(group: h5py.Group, n: int, where: str, sections: dict[str, int],
                        file_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The validated original sizes of a file's ``/samples`` group, or None when absent."""
    present = [name in group for name in FIELDS]
    if not any(present):
        return None
    if not all(present):
        missing = [f for f, p in zip(FIELDS, present, strict=True) if not p][0]
        raise StructureError(f"{where}: /samples/{missing} is missing; the original sizes "
                             "(spec §15) come as a pair")
    out = []
    for name in FIELDS:
        values = H.read_array(group, name, where, DTYPE, (n,), sections, file_size)
        bad = (values < 1) | (values > MAX_SIDE)
        if bad.any():
            i = int(np.argmax(bad))
            raise StructureError(f"{where}: /samples/{name}[{i}] = {int(values[i])}, expected "
                                 f"1..{MAX_SIDE}")
        values.setflags(write=False)
        out.append(values)
    return out[0], out[1]
