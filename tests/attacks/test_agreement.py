"""Issue #15 class 7: the reader and the writer agree (and both agree with the spec).

Before: the reader accepted class names the writer refuses (duplicates, empty, a newline) and
fixed-length byte strings where spec §4 says variable-length UTF-8; a compact-layout
``/payload`` was reported as a truncated file.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import DcqError, InvalidArgumentError, StructureError, TruncatedFileError

from .conftest import crc, write_small

BAD_NAMES = {
    "duplicate": ["cat", "cat"],
    "empty": ["", "dog"],
    "newline": ["cat\ndog", "eel"],
    "nul": ["cat\0", "dog"],
}


def _set_classes(path: Path, names: list[bytes] | np.ndarray, dtype: object) -> None:
    with h5py.File(path, "r+") as h5:
        del h5["classes"]
        ds = h5.create_dataset("classes", data=names, dtype=dtype)
        raw = [n if isinstance(n, bytes) else bytes(n) for n in names]
        ds.attrs["crc32"] = crc(b"\n".join(raw))  # the checksum is right: only the rule is broken


@pytest.mark.parametrize("case", sorted(BAD_NAMES))
def test_class_names_the_writer_refuses_are_refused_by_the_reader(tmp_path: Path, case: str) -> None:
    names = BAD_NAMES[case]
    with pytest.raises(InvalidArgumentError):
        DCQWriter(tmp_path / "w.dcq", bits=2, channels=3, classes=names)
    path = tmp_path / "r.dcq"
    write_small(path)
    if case == "nul":  # h5py cannot store a NUL in a vlen string; edit the heap object's bytes
        data = bytearray(path.read_bytes())
        at = data.find(b"GCOL\x01")
        pos = data.find(b"a\0\0\0\0\0\0\0", at)
        data[pos:pos + 1] = b"\0"
        path.write_bytes(bytes(data))
        with h5py.File(path, "r+") as h5:
            h5["classes"].attrs["crc32"] = crc(b"\0\nb")
    else:
        _set_classes(path, [n.encode() for n in names], h5py.string_dtype("utf-8"))
    with pytest.raises(StructureError, match="class"):
        DCQFile(path)


def test_fixed_length_class_names_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "fixed.dcq"
    write_small(path)
    _set_classes(path, np.array([b"a", b"b"], dtype="S1"), "S1")
    with pytest.raises(StructureError, match="variable-length"):
        DCQFile(path)


def test_class_names_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.dcq"
    write_small(path, classes=("caf\u00e9", "b"))
    data = bytearray(path.read_bytes())
    pos = data.find("caf\u00e9".encode())
    data[pos:pos + 5] = b"caf\xe9\0"  # Latin-1 e-acute, then padding: 4 bytes + a NUL
    path.write_bytes(bytes(data))
    with h5py.File(path, "r+") as h5:
        h5["classes"].attrs["crc32"] = crc(b"caf\xe9\0\nb")
    with pytest.raises(DcqError):
        DCQFile(path)


def test_compact_payload_is_a_structure_error_not_truncation(tmp_path: Path) -> None:
    path = tmp_path / "compact.dcq"
    write_small(path)
    with h5py.File(path, "r+") as h5:
        payload = h5["payload"][()]
        stored = h5["payload"].attrs["crc32"]
        del h5["payload"]
        space = h5py.h5s.create_simple(payload.shape)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dsid = h5py.h5d.create(h5.id, b"payload", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
        ds = h5py.Dataset(dsid)
        ds[...] = payload
        ds.attrs["crc32"] = stored
    with pytest.raises(DcqError) as err:
        DCQFile(path)
    assert not isinstance(err.value, TruncatedFileError), err.value
    assert isinstance(err.value, StructureError) and "contiguous" in str(err.value) and "compact" in str(err.value)


def test_valid_names_round_trip_exactly(tmp_path: Path) -> None:
    names = ["cat", "Cat", "a/b", "a_b", "\u00e9t\u00e9", "with space", "x" * 300]
    path = tmp_path / "ok.dcq"
    write_small(path, classes=names, n=len(names))
    with DCQFile(path) as f:
        assert f.classes == names
        f.verify()
