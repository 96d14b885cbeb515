"""An opt-in in-RAM cache of decoded index maps (packed, q bits per pixel) for entropy-coded
files: the first read of a sample decodes its stored bytes (zstd or ctx) and keeps the packed
map; every later read decodes from the cache at ``raw`` speed. It holds at most the size of the
file's raw payload (Σ ceil(S_i·q/8) bytes), allocated on first use.

Use it through :meth:`DCQFile.enable_cache` (and :meth:`DCQFile.fill_cache` to decode everything
up front, e.g. before forking DataLoader workers, which then share the filled pages
copy-on-write). The cache belongs to one process: a pickled reader starts with an empty one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["PackedCache", "take"]


@njit(cache=True, nogil=True)
def _scatter(src, src_offsets, dst, dst_offsets, idx):  # type: ignore[no-untyped-def]
    """Copy sample b of ``src`` (at src_offsets[b]..src_offsets[b+1]) to ``dst`` at
    ``dst_offsets[idx[b]]`` for every b (sizes agree by construction)."""
    for b in range(idx.shape[0]):
        s0 = src_offsets[b]
        d0 = dst_offsets[idx[b]]
        for j in range(src_offsets[b + 1] - s0):
            dst[d0 + j] = src[s0 + j]


@njit(cache=True, nogil=True)
def _take(src, starts, lengths, dst, dst_offsets):  # type: ignore[no-untyped-def]
    for b in range(starts.shape[0]):
        s0 = starts[b]
        d0 = dst_offsets[b]
        for j in range(lengths[b]):
            dst[d0 + j] = src[s0 + j]


def take(src: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ranges ``src[starts[b]:starts[b] + lengths[b]]`` (inside ``src``, checked by the
    caller) one after another in a new buffer: ``(data, offsets [B + 1])``, one compiled call."""
    offsets = np.zeros(starts.size + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.empty(int(offsets[-1]), np.uint8)
    _take(src, starts, lengths, data, offsets)
    return data, offsets


class PackedCache:
    """Packed maps of the samples decoded so far; ``offsets[i]`` is sample i's place."""

    def __init__(self, packed_sizes: np.ndarray) -> None:
        sizes = np.asarray(packed_sizes, dtype=np.int64)
        self.offsets = np.zeros(sizes.size + 1, np.int64)
        np.cumsum(sizes, out=self.offsets[1:])
        self.filled = np.zeros(sizes.size, bool)
        self._data: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the cache holds once every sample is in it."""
        return int(self.offsets[-1])

    @property
    def data(self) -> np.ndarray:
        """The cache buffer (allocated on first use)."""
        if self._data is None:
            self._data = np.empty(self.nbytes, np.uint8)
        return self._data

    def get(self, i: int) -> np.ndarray | None:
        """Sample i's packed map (a read-only view), or None when it is not cached yet."""
        if not self.filled[i]:
            return None
        view = self.data[self.offsets[i]:self.offsets[i + 1]]
        view.flags.writeable = False
        return view

    def put(self, i: int, packed: np.ndarray) -> None:
        """Store sample i's packed map."""
        self.data[self.offsets[i]:self.offsets[i + 1]] = packed
        self.filled[i] = True

    def missing(self, idx: np.ndarray) -> np.ndarray:
        """The samples of ``idx`` (int64) not cached yet, each once."""
        return np.unique(idx[~self.filled[idx]])

    def put_batch(self, idx: np.ndarray, data: np.ndarray, offsets: np.ndarray) -> None:
        """Store samples ``idx`` given as one buffer (``data``, ``offsets`` [B + 1])."""
        _scatter(data, offsets, self.data, self.offsets, idx)
        self.filled[idx] = True

    def __getstate__(self) -> dict[str, Any]:  # a new process starts empty
        state = self.__dict__.copy()
        state.update(_data=None, filled=np.zeros_like(self.filled))
        return state
