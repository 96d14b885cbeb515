"""Version 1 B-trees (old-style groups and chunk indexes) that HDF5 would walk without end:
a right-sibling chain that loops hangs ``H5Lvisit``, a child at its parent's level makes HDF5
recurse until the process dies (SIGSEGV). Both found by editing one address of an
earliest-format copy, the fuzzer's base; the reader refuses them before HDF5 walks a group."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dcqformat.errors import StructureError
from dcqformat.format.btree1 import check_v1_btrees

from .conftest import independent_verdict, run_python
from .test_memory_bombs import PEAK

VECTOR = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "valid" / "q1_grey_ctx_worked_example.dcq"


def _tree_nodes(data: bytes) -> list[int]:
    out, pos = [], data.find(b"TREE")
    while pos >= 0:
        out.append(pos)
        pos = data.find(b"TREE", pos + 1)
    return out


@pytest.mark.parametrize("damage", ["right sibling -> itself", "child at its own level"])
def test_a_looping_group_btree_is_refused_not_walked(
        tmp_path: Path, damage: str, earliest_copy: Callable[[Path, Path], None]) -> None:
    early = tmp_path / "early.dcq"
    earliest_copy(VECTOR, early)
    data = bytearray(early.read_bytes())
    nodes = _tree_nodes(bytes(data))
    assert len(nodes) == 3  # the root group's, /ctx's and /samples'
    pos = nodes[1]  # /ctx's (the root's own lookup has a check in HDF5)
    if damage.startswith("right"):
        struct.pack_into("<Q", data, pos + 16, pos)
    else:
        data[pos + 5] = 1
        struct.pack_into("<Q", data, pos + 24 + 8, pos)  # child 0, after key 0
    bomb = tmp_path / "btree_loop.dcq"
    bomb.write_bytes(bytes(data))
    proc = run_python(PEAK, str(bomb), cwd=tmp_path, timeout=60)  # a hang: TimeoutExpired
    assert proc.returncode == 0, f"the reader died: rc {proc.returncode}"  # SIGSEGV before
    assert proc.stdout.startswith("refused:") and "B-tree node" in proc.stdout, proc.stdout
    said = independent_verdict(bomb)  # and a reader written from spec §10.14 alone
    assert "StructureError at open" in said and "B-tree node" in said, said


@pytest.mark.parametrize("shape,chunks", [((20_000,), (7,)), ((300, 40), (3, 5))])
def test_deep_chunk_btrees_of_valid_files_pass(tmp_path: Path, shape: tuple[int, ...],
                                               chunks: tuple[int, ...], independent_reader: Any) -> None:
    """Real multi-level chunk indexes (libver earliest: v1 B-trees of rank 1 and 2) are not
    refused: the check finds the rank whose children are one level down."""
    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w", libver="earliest") as h5:
        h5.create_dataset("x", data=np.arange(int(np.prod(shape))).reshape(shape), chunks=chunks)
        for g in range(40):  # a wide old-style group: a group B-tree of more than one node
            h5.create_group(f"g{g:03d}")
    data = path.read_bytes()
    levels = {data[p + 5] for p in _tree_nodes(data)}
    assert max(levels) >= 1  # deep enough to exercise the child check
    assert check_v1_btrees(data, len(data), str(path)) > 10
    assert independent_reader.endless_hdf5_walk(data) is None  # the spec's rule, written apart
    with h5py.File(path, "r") as h5:  # and HDF5 agrees the file is fine
        assert h5["x"].shape == shape


def test_a_chunk_btree_child_at_its_own_level_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chunks.h5"
    with h5py.File(path, "w", libver="earliest") as h5:
        h5.create_dataset("x", data=np.arange(20_000), chunks=(7,))
    data = bytearray(path.read_bytes())
    top = max(_tree_nodes(bytes(data)), key=lambda p: data[p + 5])
    key = 8 + 8 * 2  # rank 1: size, filter mask, 2 offsets
    struct.pack_into("<Q", data, top + 24 + key, top)
    with pytest.raises(StructureError, match="not B-tree nodes of level"):
        check_v1_btrees(bytes(data), len(data), "f")
