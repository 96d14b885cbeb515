"""What the invalid golden vectors of ``tools/make_vectors.py`` are made from: the small
valid base files, :class:`InvalidSpec`, the ways a vector is built from a base (an h5py
edit, a byte edit, bytes of its own) and the h5py edits more than one group of vectors uses.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from vectors_spec import dataset_file_offset, replace_dataset, rng_for, set_values

# ---------------------------------------------------------------------------------------
# Bases for the invalid vectors
# ---------------------------------------------------------------------------------------
BASE_SIZES = [(2, 3), (1, 1), (4, 5)]


def write_base(path: Path, encoding: str, *, palette_size: int = 5,
               maps: list[np.ndarray] | None = None, extras: bool = False) -> list[np.ndarray]:
    """q=3 RGB, K=5 (< 8), 2 palettes, 2 classes, 3 samples; ``extras`` adds sources and a
    selection."""
    from dcqformat import DCQWriter

    rng = rng_for("base")
    palettes = rng.integers(0, 256, size=(2, palette_size, 3), dtype=np.uint8)
    if maps is None:
        maps = [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]
    with DCQWriter(path, bits=3, channels=3, classes=["a", "b"], palette_size=palette_size,
                   payload_encoding=encoding) as w:
        w.set_palettes(palettes)
        w.set_provenance({"purpose": "base of invalid golden vectors", "seed": 1})
        for i, m in enumerate(maps):
            kw = {"source_path": f"s/{i}.png", "source_size": 100 + i} if extras else {}
            w.add_sample(m, cluster=i % 2, label=i % 2, **kw)
        if extras:
            w.add_selection("sel", np.array([2, 0, 1]), np.array([0, 2]), {"method": "test"})
    return maps


def write_base_chunked(path: Path) -> None:
    """64 samples of 1x1, so every per-sample array is chunked with shuffle+deflate."""
    from dcqformat import DCQWriter

    rng = rng_for("base_chunked")
    with DCQWriter(path, bits=2, channels=1, classes=["a", "b"], payload_encoding="raw") as w:
        w.set_palettes(rng.integers(0, 256, size=(2, 4, 1), dtype=np.uint8))
        for i in range(64):
            w.add_sample(rng.integers(0, 4, size=(1, 1), dtype=np.uint8), cluster=i % 2,
                         label=(i // 2) % 2)


MASK_BASE_SIZES = [(2, 3), (1, 1), (4, 5), (5, 6)]
MASK_BASE_KEEPS = [np.array([[True, False]]), np.array([[True]]),
                   np.array([[True, False, True], [True, False, True]]),  # 6 bits: 2 padding
                   np.array([[True, False, False], [False, True, False], [True, True, False]])]
MASK_BASE_P = 2


def masked_base_maps() -> list[np.ndarray]:
    """The index maps of the masked base (MASK_BASE_SIZES, seeded)."""
    rng = rng_for("base_masked")
    return [rng.integers(0, 5, size=s, dtype=np.uint8) for s in MASK_BASE_SIZES]


def write_base_masked(path: Path, encoding: str) -> None:
    """v1.1: q=3 RGB, K=5, 2 palettes, 4 samples with patch masks at P=2."""
    from dcqformat import DCQWriter

    palettes = rng_for("base_masked_palettes").integers(0, 256, size=(2, 5, 3), dtype=np.uint8)
    with DCQWriter(path, bits=3, channels=3, classes=["a", "b"], palette_size=5,
                   payload_encoding=encoding, patch_size=MASK_BASE_P) as w:
        w.set_palettes(palettes)
        w.set_provenance({"purpose": "base of invalid golden vectors (patch masks)", "seed": 1})
        for i, (m, keep) in enumerate(zip(masked_base_maps(), MASK_BASE_KEEPS, strict=True)):
            w.add_sample(m, cluster=i % 2, label=i % 2, keep_mask=keep)


def base_maps() -> list[np.ndarray]:
    """The index maps write_base draws (after its palettes)."""
    rng = rng_for("base")
    rng.integers(0, 256, size=(2, 5, 3), dtype=np.uint8)
    return [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]



# ---------------------------------------------------------------------------------------
# Invalid vector specs and how they are built from the bases
# ---------------------------------------------------------------------------------------
@dataclass
class InvalidSpec:
    """One invalid vector: its name, the error and stage it must fail with, why, and
    how to build it from the bases."""
    name: str
    error: str
    stage: str
    reason: str
    build: Callable[[Path, dict[str, Path]], None]  # (target path, bases) -> writes target
    sample: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def from_bytes(data_fn: Callable[[dict[str, Path]], bytes]) -> Callable[[Path, dict[str, Path]], None]:
    """A builder writing the bytes ``data_fn(bases)`` returns."""
    def build(target: Path, bases: dict[str, Path]) -> None:
        target.write_bytes(data_fn(bases))
    return build


def h5_edit(base: str, fn: Callable[[h5py.File], None]) -> Callable[[Path, dict[str, Path]], None]:
    """A builder copying base ``base`` and editing the copy with ``fn`` through h5py."""
    def build(target: Path, bases: dict[str, Path]) -> None:
        shutil.copyfile(bases[base], target)
        with h5py.File(target, "r+") as h5:
            fn(h5)
    return build


def byte_edit(base: str, fn: Callable[[bytearray, Path], None]) -> Callable[[Path, dict[str, Path]], None]:
    """A builder editing base ``base``'s bytes with ``fn(data, base path)``."""
    def build(target: Path, bases: dict[str, Path]) -> None:
        data = bytearray(bases[base].read_bytes())
        fn(data, bases[base])
        target.write_bytes(bytes(data))
    return build


def flip_at_dataset(name: str) -> Callable[[bytearray, Path], None]:
    """A byte edit XORing with 0xFF the byte at ``dataset_file_offset(base, name)``."""
    def fn(data: bytearray, base_path: Path) -> None:
        data[dataset_file_offset(base_path, name)] ^= 0xFF
    return fn


# --- h5py edits shared by the groups of invalid vectors ----------------------------------
def stale(path: str, change: Callable[[np.ndarray], None]) -> Callable[[h5py.File], None]:
    """An edit applying ``change`` to dataset ``path``, its crc32 attribute left stale."""
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        change(arr)
        set_values(h5, path, arr, fix_crc=False)
    return edit


def drop(path: str) -> Callable[[h5py.File], None]:
    """An edit deleting ``path``."""
    def edit(h5: h5py.File) -> None:
        del h5[path]
    return edit


def set_at(path: str, i: int, value: Any) -> Callable[[h5py.File], None]:
    """An edit setting ``path[i] = value``, its crc32 recomputed."""
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] = value
        set_values(h5, path, arr)
    return edit


def shorten(path: str) -> Callable[[h5py.File], None]:
    """An edit dropping the last value of dataset ``path``, its crc32 recomputed."""
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, path, h5[path][()][:-1])
    return edit
