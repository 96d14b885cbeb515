"""Issue #15 class 5: ``dcqformat export``.

Before: class names over 255 bytes crashed it with OSError and left partial output; distinct
classes that sanitise alike (``a/b`` and ``a_b``, ``cat`` and ``cat.``) were merged silently; an
error mid-way left the PNGs written so far; a full disk or a read-only target gave tracebacks;
sample CRCs were not checked (a file failing ``verify`` exported with status 0).
"""

from __future__ import annotations

import errno
import json
import os
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from dcqformat.cli import main

from .conftest import write_small


def _export(path: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["export", str(path), str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def _pngs(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"))


def test_long_and_colliding_class_names_get_their_own_folders(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    classes = ["a/b", "a_b", "cat", "cat.", "Cat", "é" * 200, "x" * 300, "..", "dcq-export.json"]
    path = tmp_path / "names.dcq"
    write_small(path, classes=classes, n=2 * len(classes))
    out = tmp_path / "out"
    rc, err = _export(path, out, capsys)
    assert rc == 0, err
    manifest = json.loads((out / "dcq-export.json").read_text(encoding="utf-8"))
    folders = [c["folder"] for c in manifest["classes"]]
    assert [c["name"] for c in manifest["classes"]] == classes
    assert len({f.casefold() for f in folders}) == len(classes)  # unique even case-insensitively
    assert all(len(f.encode()) <= 255 and "/" not in f and f not in (".", "..") for f in folders)
    for c in manifest["classes"]:
        assert c["images"] == 2 and len(list((out / c["folder"]).glob("*.png"))) == 2
    assert len(_pngs(out)) == 2 * len(classes)


def _stale_sample_crc(path: Path, i: int) -> None:
    with h5py.File(path, "r+") as h5:
        crcs = h5["samples/crc32"][()]
        crcs[i] ^= 1
        h5["samples/crc32"][...] = crcs
        h5["samples/crc32"].attrs["crc32"] = np.uint32(zlib.crc32(crcs.tobytes()) & 0xFFFFFFFF)


def test_a_file_that_fails_verify_does_not_export_and_leaves_nothing(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.dcq"
    write_small(path, n=40)
    _stale_sample_crc(path, 25)  # the metadata checksums are right; sample 25's CRC is not
    assert main(["verify", str(path)]) == 2
    out = tmp_path / "out"
    rc, err = _export(path, out, capsys)
    assert rc == 2 and "sample 25" in err, err
    assert sorted(os.listdir(tmp_path)) == ["bad.dcq"]  # no partial tree, no temporary folder


def test_read_only_target_is_an_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A read-only file system (simulated: this suite may run as root, who ignores modes)."""
    path = tmp_path / "x.dcq"
    write_small(path)
    real_mkdir = Path.mkdir

    def mkdir(self: Path, *args: object, **kw: object) -> None:
        if self.parent == tmp_path:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_mkdir(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", mkdir)
    rc, err = _export(path, tmp_path / "out", capsys)
    assert rc == 2 and "Read-only file system" in err, err
    assert sorted(os.listdir(tmp_path)) == ["x.dcq"]


def test_disk_full_mid_way_is_an_error_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.dcq"
    write_small(path, n=30)
    real_save = Image.Image.save
    calls = {"n": 0}

    def save(self: Image.Image, *args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 17:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", save)
    rc, err = _export(path, tmp_path / "out", capsys)
    assert rc == 2 and "No space left" in err, err
    assert sorted(os.listdir(tmp_path)) == ["x.dcq"]


def test_interrupted_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.dcq"
    write_small(path, n=30)
    real_save = Image.Image.save
    calls = {"n": 0}

    def save(self: Image.Image, *args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt
        real_save(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "save", save)
    assert main(["export", str(path), str(tmp_path / "out")]) == 130
    assert sorted(os.listdir(tmp_path)) == ["x.dcq"]
