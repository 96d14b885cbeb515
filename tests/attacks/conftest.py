"""Helpers of the attack tests (issue #15): each test builds its hostile file or folder itself.

The tests use only what the reader and writer offered before these fixes (``DCQFile``,
``DCQWriter``, ``DcqError`` and its families, ``dcqformat.cli.main``), so that running them
against an older checkout (``PYTHONPATH=/old/checkout pytest tests/attacks``; ``pytest``, not
``python -m pytest``, so that the working directory is not imported first) shows each one
failing there. The header line of the run names the package under test.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def pytest_report_header() -> str:
    import dcqformat
    return f"attacks: testing dcqformat from {Path(dcqformat.__file__).parent}"


def crc(values: Any) -> np.uint32:
    """CRC-32 as the .dcq checksums store it."""
    data = values if isinstance(values, bytes) else np.ascontiguousarray(values).tobytes()
    return np.uint32(zlib.crc32(data) & 0xFFFFFFFF)


def write_small(path: Path, *, classes: Sequence[str] = ("a", "b"), n: int = 4, seed: int = 0,
                encoding: str = "raw", shape: tuple[int, int] = (4, 5)) -> list[np.ndarray]:
    """A small q=2 RGB file; returns the index maps written (sample i has label i % classes)."""
    from dcqformat import DCQWriter

    rng = np.random.default_rng(seed)
    maps = [rng.integers(0, 4, size=shape, dtype=np.uint8) for _ in range(n)]
    with DCQWriter(path, bits=2, channels=3, classes=list(classes), payload_encoding=encoding) as w:
        w.set_palettes(rng.integers(0, 256, size=(1, 4, 3), dtype=np.uint8))
        for i, m in enumerate(maps):
            w.add_sample(m, cluster=0, label=i % len(classes))
    return maps


def _tool_source(name: str, function: str) -> str:
    """The source of ``function`` in ``tools/<name>.py`` (read as text: the tools are scripts)."""
    tree = ast.parse((Path(__file__).resolve().parents[2] / "tools" / f"{name}.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
    return ast.unparse(node) + "\n"


#: Source of ``peak_rss_kib()`` (``tools/fuzz_reader.py``: the child's own peak resident set,
#: Linux ``VmHWM``) for the child scripts that measure memory. ``ru_maxrss`` is no measure there:
#: after fork + exec it starts at the *parent's* peak, so in a pytest process past 1 GiB every
#: child "peaked" over 1 GiB and a growth measured from it could not exceed zero.
PEAK_RSS = _tool_source("fuzz_reader", "peak_rss_kib")


def child_env() -> dict[str, str]:
    """The environment a child needs to import the dcqformat under test (run it with a ``cwd``
    outside the checkout: ``python -c`` puts the working directory first on ``sys.path``)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def run_python(code: str, *args: str, cwd: Path, timeout: float = 60,
               ) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter in ``cwd`` that imports the same dcqformat as this
    process; raises subprocess.TimeoutExpired on a hang."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                          text=True, timeout=timeout, env=child_env(), cwd=cwd)


def independent_verdict(path: Path) -> str:
    """What ``tools/independent_reader.py`` (written from the spec alone) says of ``path``, run
    in a child so that a hang is a TimeoutExpired and a crash a non-zero, non-2 exit."""
    tool = Path(__file__).resolve().parents[2] / "tools" / "independent_reader.py"
    proc = subprocess.run([sys.executable, str(tool), str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode in (0, 2), proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture
def earliest_copy(fuzz_tool: Any) -> Callable[[Path, Path], None]:
    """``earliest_copy(src, dst)``: the same file written with HDF5's oldest object headers
    (no metadata checksums, old-style groups), so that an edited byte reaches the parsers
    instead of a checksum: the fuzzer's own bases (``tools/fuzz_reader.py``)."""
    return fuzz_tool.earliest_copy  # type: ignore[no-any-return]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A small valid file ``tmp_path/small.dcq``."""
    path = tmp_path / "small.dcq"
    write_small(path)
    return path
