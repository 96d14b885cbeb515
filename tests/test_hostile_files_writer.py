"""The writer's behaviour on bad arguments and failures: no partial files, no temp files, an
existing target untouched (the hostile inputs of reading are in test_hostile_files.py)."""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError, WriteError
from dcqformat.format.publish import anonymous_temp_files

VALID = sorted((Path(__file__).resolve().parent.parent / "spec" / "vectors" / "valid").glob("*.dcq"))


# -- the writer ---------------------------------------------------------------------------
def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def new_writer(path: Path, **kw: Any) -> DCQWriter:
    args: dict[str, Any] = {"bits": 2, "channels": 3, "classes": ["a", "b"], **kw}
    return DCQWriter(path, **args)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize("existing", [False, True])
def test_interrupted_writer_leaves_nothing(tmp_path: Path, exc: BaseException, existing: bool) -> None:
    target = tmp_path / "out.dcq"
    if existing:
        shutil.copyfile(VALID[0], target)
    before = listing(tmp_path)
    original = target.read_bytes() if existing else None
    with pytest.raises(type(exc)), new_writer(target, payload_encoding="auto", overwrite=existing) as w:
        w.set_palettes(np.zeros((1, 4, 3), np.uint8))
        for _ in range(5):
            w.add_sample(np.ones((8, 8), np.uint8), cluster=0, label=1)
        if anonymous_temp_files(tmp_path):  # O_TMPFILE: the spools have no name at all
            assert listing(tmp_path) == before
        raise exc
    assert listing(tmp_path) == before
    if existing:
        assert target.read_bytes() == original


@pytest.mark.parametrize("existing", [False, True])
@pytest.mark.parametrize("failure", ["cluster_ge_c", "no_palettes", "selection_out_of_range"])
def test_failed_close_leaves_nothing_and_keeps_the_target(tmp_path: Path, existing: bool, failure: str) -> None:
    target = tmp_path / "out.dcq"
    if existing:
        shutil.copyfile(VALID[0], target)
    before, original = listing(tmp_path), (target.read_bytes() if existing else None)
    with pytest.raises(WriteError, match="out.dcq|cluster|palettes|selection"), \
            new_writer(target, overwrite=existing) as w:
        if failure != "no_palettes":
            w.set_palettes(np.zeros((2, 4, 3), np.uint8))
        w.add_sample(np.zeros((2, 2), np.uint8), cluster=2 if failure == "cluster_ge_c" else 0, label=0)
        if failure == "selection_out_of_range":
            w.add_selection("s", np.array([0, 1]), np.array([1]), {})
    assert listing(tmp_path) == before
    if existing:
        assert target.read_bytes() == original
    with pytest.raises(WriteError):
        w.add_sample(np.zeros((2, 2), np.uint8), cluster=0, label=0)  # closed for good


def test_dropped_writer_leaves_no_temp_files(tmp_path: Path) -> None:
    w = new_writer(tmp_path / "out.dcq")
    w.add_sample(np.zeros((2, 2), np.uint8), cluster=0, label=0)
    del w
    gc.collect()
    assert listing(tmp_path) == []


@pytest.mark.parametrize("kw", [
    {"bits": 0}, {"bits": 9}, {"bits": 2.0}, {"bits": "2"}, {"bits": None},
    {"channels": 2}, {"channels": 0}, {"channels": 4}, {"channels": "3"},
    {"classes": []}, {"classes": ["a", "a"]},
    {"palette_size": 0}, {"palette_size": 5}, {"palette_size": 2.5},
    {"payload_encoding": "lz4"}, {"payload_encoding": None},
], ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()))
def test_writer_rejects_bad_construction(tmp_path: Path, kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        new_writer(tmp_path / "out.dcq", **kw)
    assert listing(tmp_path) == []


def test_writer_rejects_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        new_writer(tmp_path)
    with pytest.raises(InvalidArgumentError):
        new_writer(tmp_path / "missing" / "out.dcq")
    assert listing(tmp_path) == []


@pytest.mark.parametrize("case", [
    "index_ge_k", "index_negative", "index_256", "float_indices", "bool_indices", "object_indices",
    "1d_indices", "3d_indices", "empty_indices", "too_wide", "label_negative", "label_eq_classes",
    "cluster_negative", "newline_path",
])
def test_writer_rejects_bad_samples(tmp_path: Path, case: str) -> None:
    ok = np.zeros((2, 2), np.uint8)
    args: dict[str, Any] = {
        "index_ge_k": {"indices": np.full((2, 2), 3, np.uint8)},
        "index_negative": {"indices": np.full((2, 2), -1, np.int64)},
        "index_256": {"indices": np.full((2, 2), 256, np.int64)},
        "float_indices": {"indices": np.zeros((2, 2))},
        "bool_indices": {"indices": np.zeros((2, 2), bool)},
        "object_indices": {"indices": np.array([[0, None]], dtype=object)},
        "1d_indices": {"indices": np.zeros(4, np.uint8)},
        "3d_indices": {"indices": np.zeros((2, 2, 1), np.uint8)},
        "empty_indices": {"indices": np.zeros((0, 3), np.uint8)},
        "too_wide": {"indices": np.zeros((1, 65537), np.uint8)},
        "label_negative": {"label": -1},
        "label_eq_classes": {"label": 2},
        "cluster_negative": {"cluster": -1},
        "newline_path": {"source_path": "a\nb.png"},
    }[case]
    target = tmp_path / "out.dcq"
    with new_writer(target, palette_size=3) as w:
        w.set_palettes(np.zeros((1, 3, 3), np.uint8))
        w.add_sample(ok, cluster=0, label=0)
        call = {"indices": ok, "cluster": 0, "label": 0, **args}
        with pytest.raises(InvalidArgumentError):
            w.add_sample(call.pop("indices"), **call)
        assert len(w) == 1  # the refused sample left no trace
    with DCQFile(target) as f:  # the writer stays usable and consistent
        assert len(f) == 1
        f.verify()


def test_writer_rejects_bad_palettes_selections_and_provenance(tmp_path: Path) -> None:
    with new_writer(tmp_path / "out.dcq") as w:
        for bad in (np.zeros((1, 4, 3)), np.zeros((1, 3, 3), np.uint8), np.zeros((0, 4, 3), np.uint8),
                    np.zeros((4, 3), np.uint8), np.zeros((1, 4, 1), np.uint8)):
            with pytest.raises(InvalidArgumentError):
                w.set_palettes(bad)
        for name in ("", "a/b"):
            with pytest.raises(InvalidArgumentError):
                w.add_selection(name, np.array([0]), np.array([0]), {})
        with pytest.raises(InvalidArgumentError):
            w.add_selection("s", np.array([0]), np.array([0]), {"x": object()})
        # a float index was cast silently (1.5 -> 1, NaN -> garbage); a bool is no sample number
        for ranking, selected in (([0.0, 1.5], [0]), ([0], [float("nan")]), ([True], [0]),
                                  (np.array([2**63], np.uint64), [0]), ([0], ["0"])):
            with pytest.raises(InvalidArgumentError, match="must be integers|not a sample index"):
                w.add_selection("s", ranking, selected, {})
        with pytest.raises(InvalidArgumentError):
            w.set_provenance({"x": {1, 2}})
        w.set_palettes(np.zeros((1, 4, 3), np.uint8))
        w.add_sample(np.zeros((2, 2), np.uint8), cluster=0, label=0)
    DCQFile(tmp_path / "out.dcq").verify()


@pytest.mark.parametrize("bad", [{"cluster": 2**64}, {"source_size": 2**63}])
def test_writer_overflowing_arguments_leave_it_consistent(tmp_path: Path, bad: dict[str, Any]) -> None:
    target = tmp_path / "out.dcq"
    w = new_writer(target)
    w.set_palettes(np.zeros((1, 4, 3), np.uint8))
    w.add_sample(np.zeros((2, 2), np.uint8), cluster=0, label=0, source_path="a.png")
    try:
        with pytest.raises(InvalidArgumentError):
            w.add_sample(np.zeros((2, 2), np.uint8), **{"cluster": 0, "label": 0, **bad})
    finally:
        w.close()
        with DCQFile(target) as f:
            assert len(f) == 1
            f.verify()


@pytest.mark.parametrize("anonymous", [True, False])
def test_overwrite_replaces_only_files(tmp_path: Path, anonymous: bool) -> None:
    """``overwrite=True`` / ``--force`` renames over the target name: it replaced whatever was
    there, so as root ``convert SRC /dev/null --force`` put a .dcq file where the device was
    (found by a CLI probe). A FIFO (or device, socket, folder) under the name is now a
    WriteError, at construction and again at publish time (a FIFO made meanwhile)."""
    from dcqformat.format.publish import TempFile, check_replaceable, move_into_place

    fifo = tmp_path / "fifo.dcq"
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="fifo.dcq' exists and is a FIFO"):
        new_writer(fifo, overwrite=True)
    late = tmp_path / "late.dcq"
    w = new_writer(late, overwrite=True)
    w.set_palettes(np.zeros((1, 4, 3), np.uint8))
    w.add_sample(np.zeros((2, 2), np.uint8), 0, 0)
    os.mkfifo(late)
    with pytest.raises(WriteError, match="late.dcq' exists and is a FIFO"):
        w.close()
    tmp = TempFile(fifo, anonymous=anonymous)
    with pytest.raises(WriteError, match="FIFO"):
        tmp.publish(overwrite=True)
    tmp.discard()
    other = tmp_path / "other"
    other.write_bytes(b"x")
    with pytest.raises(WriteError, match="FIFO"):
        move_into_place(other, fifo, overwrite=True)
    with pytest.raises(WriteError, match="is a folder"):
        check_replaceable(tmp_path)
    assert all(os.path.exists(p) and not os.path.isfile(p) for p in (fifo, late))
    assert listing(tmp_path) == ["fifo.dcq", "late.dcq", "other"]
    link = tmp_path / "link.dcq"  # a symbolic link is replaced itself, never its target
    os.symlink(fifo, link)
    check_replaceable(link)
