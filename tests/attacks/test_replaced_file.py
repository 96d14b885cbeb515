"""Issue #15 class 3: the file under an open reader.

Before: ``DCQFile`` validated the file at open but memory-mapped the *path* later, per process;
once the path was replaced by rename (as ``convert --force`` publishes), reads in the main
process and in fork / spawn DataLoader workers decoded the new file's bytes with the old
metadata. Now a reader keeps reading the file it validated, or raises -- never another file's
pixels.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from dcqformat import DCQFile
from dcqformat.errors import DcqError

from .conftest import write_small


def _two_files(tmp_path: Path) -> tuple[Path, Path, list[np.ndarray]]:
    """``data.dcq`` (seed 1) and a same-shaped ``other.dcq`` (seed 2) with other pixels."""
    path, other = tmp_path / "data.dcq", tmp_path / "other.dcq"
    write_small(path, seed=1, n=6)
    write_small(other, seed=2, n=6)
    with DCQFile(path) as a, DCQFile(other) as b:
        before = [a[i][0] for i in range(len(a))]
        assert any(not np.array_equal(x, b[i][0]) for i, x in enumerate(before))
    return path, other, before


def _decode_all(f: DCQFile) -> list[np.ndarray]:
    return [f[i][0] for i in range(len(f))]


def test_main_process_keeps_reading_the_validated_file(tmp_path: Path) -> None:
    path, other, before = _two_files(tmp_path)
    f = DCQFile(path)  # opened and validated, nothing decoded yet
    os.replace(other, path)  # what convert --force does to the path
    got = _decode_all(f)
    assert all(np.array_equal(x, y) for x, y in zip(got, before, strict=True))
    with pytest.raises(DcqError, match="changed|another file"):
        f.verify()


def _worker_decode(f: DCQFile, out: mp.Queue) -> None:  # type: ignore[type-arg]
    try:
        out.put(("ok", _decode_all(f)))
    except DcqError as exc:
        out.put(("refused", str(exc)))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_never_decode_another_files_pixels(tmp_path: Path, method: str) -> None:
    path, other, before = _two_files(tmp_path)
    f = DCQFile(path)
    os.replace(other, path)
    ctx = mp.get_context(method)
    q = ctx.Queue()
    p = ctx.Process(target=_worker_decode, args=(f, q))
    p.start()
    verdict, value = q.get(timeout=120)
    p.join(timeout=60)
    if verdict == "ok":  # fork: the worker inherits the map of the validated file
        assert all(np.array_equal(x, y) for x, y in zip(value, before, strict=True)), \
            "the worker decoded the replacing file's bytes with the validated file's metadata"
    else:  # spawn: the pickled reader maps the path again and sees that it changed
        assert "changed" in value or "another file" in value, value
    if method == "spawn":
        assert verdict == "refused"


def test_unpickled_reader_refuses_a_modified_file(tmp_path: Path) -> None:
    path, _other, before = _two_files(tmp_path)
    f = DCQFile(path)
    blob = pickle.dumps(f)
    data = bytearray(path.read_bytes())
    with open(path, "r+b") as fh:  # same inode, rewritten in place, one byte longer
        fh.write(bytes(data) + b"\0")
    with pytest.raises(DcqError, match="changed"):
        _decode_all(pickle.loads(blob))
    f.close()  # mapping it again in this process is refused as well
    with pytest.raises(DcqError, match="changed"):
        f[0]
    assert len(before) == 6
