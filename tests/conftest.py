"""Shared fixtures: the golden-vector folder, the independent reader, a small-file factory."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "spec" / "vectors"


def _load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_dcq_tool_{name}", ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def independent_reader() -> ModuleType:
    """``tools/independent_reader.py`` (written from the spec; imports no dcqformat)."""
    return _load_tool("independent_reader")


@pytest.fixture(scope="session")
def fuzz_tool() -> ModuleType:
    """``tools/fuzz_reader.py`` (seeded corruption fuzzing of the reader in child processes)."""
    return _load_tool("fuzz_reader")


@pytest.fixture
def invalid_vector(tmp_path: Path) -> Callable[[str], Path]:
    """Decompress ``spec/vectors/invalid/<name>.dcq.gz`` into ``tmp_path/<name>.dcq``."""
    def load(name: str) -> Path:
        out = tmp_path / f"{name}.dcq"
        out.write_bytes(gzip.decompress((VECTORS / "invalid" / f"{name}.dcq.gz").read_bytes()))
        return out
    return load


@pytest.fixture
def write_dcq(tmp_path: Path) -> Callable[..., Path]:
    """Write a small .dcq with the reference writer; returns its path.

    ``maps``: index maps (default: three random maps of 2x3, 1x1, 4x5); palettes and
    labels are random from ``seed``; other keywords go to ``DCQWriter``.
    """
    from dcqformat import DCQWriter

    counter = iter(range(1 << 30))

    def make(*, bits: int = 3, channels: int = 3, palette_size: int = 5, clusters: int = 2,
             classes: Sequence[str] = ("a", "b"), maps: Sequence[np.ndarray] | None = None,
             encoding: str = "raw", seed: int = 0, name: str | None = None,
             sources: bool = False, **kw: Any) -> Path:
        rng = np.random.default_rng(seed)
        if maps is None:
            maps = [rng.integers(0, palette_size, size=s, dtype=np.uint8) for s in ((2, 3), (1, 1), (4, 5))]
        path = tmp_path / (name or f"made_{next(counter)}.dcq")
        with DCQWriter(path, bits=bits, channels=channels, classes=list(classes),
                       palette_size=palette_size, payload_encoding=encoding, **kw) as w:
            w.set_palettes(rng.integers(0, 256, size=(clusters, palette_size, channels), dtype=np.uint8))
            for i, m in enumerate(maps):
                extra = {"source_path": f"src/{i}.png", "source_size": 10 + i} if sources else {}
                w.add_sample(m, cluster=i % clusters, label=i % len(classes), **extra)
        return path
    return make
