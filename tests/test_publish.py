"""Publishing outputs (dcqformat.format.publish): anonymous and named temporary files, no
replacing unless asked, and the fallbacks for file systems without hard links."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcqformat.format import publish as P


def _write(tmp: P.TempFile, data: bytes) -> None:
    with tmp.file() as fo:
        fo.write(data)


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named"])
def test_publish_never_replaces_unless_asked(tmp_path: Path, anonymous: bool) -> None:
    if anonymous and not P.anonymous_temp_files(tmp_path):
        pytest.fail("O_TMPFILE is expected to work on this machine's file systems")
    target = tmp_path / "out.bin"
    first = P.TempFile(target, anonymous=anonymous)
    assert first.anonymous is anonymous
    _write(first, b"first")
    assert os.listdir(tmp_path) == ([] if anonymous else [first.path.name])  # type: ignore[union-attr]
    first.publish(overwrite=False)
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["out.bin"]
    second = P.TempFile(target, anonymous=anonymous)
    _write(second, b"second")
    with pytest.raises(FileExistsError):
        second.publish(overwrite=False)
    second.discard()
    assert target.read_bytes() == b"first" and os.listdir(tmp_path) == ["out.bin"]
    third = P.TempFile(target, anonymous=anonymous)
    _write(third, b"third")
    third.publish(overwrite=True)
    assert target.read_bytes() == b"third" and os.listdir(tmp_path) == ["out.bin"]


def test_without_hard_links_renameat2_or_a_checked_rename(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*args: object, **kw: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "out.bin"
    tmp = P.TempFile(target, anonymous=False)
    _write(tmp, b"a")
    tmp.publish(overwrite=False)
    assert target.read_bytes() == b"a" and os.listdir(tmp_path) == ["out.bin"]
    again = P.TempFile(target, anonymous=False)
    _write(again, b"b")
    with pytest.raises(FileExistsError):
        again.publish(overwrite=False)
    again.discard()
    assert target.read_bytes() == b"a" and os.listdir(tmp_path) == ["out.bin"]


def test_publish_error_words() -> None:
    assert "exists" in str(P.publish_error(Path("x.dcq"), FileExistsError(errno.EEXIST, "File exists")))
    assert "No space" in str(P.publish_error(Path("x.dcq"), OSError(errno.ENOSPC, "No space left on device")))


def test_remove_stale_keeps_live_and_foreign_names(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = P.TempFile(tmp_path / "t.dcq", anonymous=False)  # a live process's: kept
    assert mine.path is not None
    host = mine.path.name.split(".dcq-tmp-")[1].rsplit("-", 2)[0]
    stale = tmp_path / f".t.dcq.dcq-tmp-{host}-{dead.pid}-0bad"
    foreign = tmp_path / f".t.dcq.dcq-tmp-{host}x-{dead.pid}-0bad"  # another host's: not ours to judge
    other_target = tmp_path / f".u.dcq.dcq-tmp-{host}-{dead.pid}-0bad"
    for p in (stale, foreign, other_target):
        p.write_bytes(b"")
    assert P.remove_stale(tmp_path, "t.dcq") == [stale.name]
    assert mine.path.exists() and foreign.exists() and other_target.exists()
    mine.discard()
