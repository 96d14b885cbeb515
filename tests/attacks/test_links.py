"""Issue #15 class 1: HDF5 links that point into other files or at other objects.

Before: an external link in place of ``/classes``, ``/samples``, ``/payload`` or a selection was
followed (the reader read another file's datasets, and ``verify`` said OK when that file's
checksums were self-consistent), and an external link to a FIFO made ``DCQFile()`` and
``dcqformat info`` hang forever. Spec §10: no link but hard links, refused before anything
follows one, with a StructureError naming the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dcqformat import DCQFile
from dcqformat.errors import StructureError

from .conftest import child_env, crc, write_small


def _replace_by_link(path: Path, name: str, link: h5py.SoftLink | h5py.ExternalLink) -> None:
    with h5py.File(path, "r+") as h5:
        del h5[name]
        h5[name] = link


@pytest.mark.parametrize("name", ["classes", "samples", "payload", "selections/s"])
def test_external_link_to_a_self_consistent_file_is_refused(tmp_path: Path, name: str) -> None:
    victim, other = tmp_path / "victim.dcq", tmp_path / "other.dcq"
    write_small(victim, classes=("a", "b"), seed=1)
    write_small(other, classes=("x", "y"), seed=2)  # a valid file: every checksum matches
    for path in (victim, other):
        with h5py.File(path, "r+") as h5:
            g = h5.create_group("selections/s")
            for part in ("ranking", "selected"):
                values = np.array([0, 1], "<i8")
                g.create_dataset(part, data=values).attrs["crc32"] = crc(values)
            g.create_dataset("attrs", data=np.frombuffer(b"{}", "u1")).attrs["crc32"] = crc(b"{}")
    _replace_by_link(victim, name, h5py.ExternalLink(str(other), "/" + name))
    with pytest.raises(StructureError, match=f"/{name}") as err:
        with DCQFile(victim) as f:
            f.verify()  # before the fix: other.dcq's data, verified "OK"
    assert "external link" in str(err.value) and str(victim) in str(err.value)


@pytest.mark.parametrize("name", ["palettes", "samples/label", "provenance"])
def test_soft_link_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "soft.dcq"
    write_small(path)
    with h5py.File(path, "r+") as h5:  # the link points at a copy: the values would even match
        h5.copy(name, "copy_of_it")
        del h5[name]
        h5[name] = h5py.SoftLink("/copy_of_it")
    with pytest.raises(StructureError, match="soft link"):
        DCQFile(path)


def test_link_anywhere_is_refused_even_where_the_reader_never_looks(tmp_path: Path) -> None:
    path = tmp_path / "extra.dcq"
    write_small(path)
    with h5py.File(path, "r+") as h5:
        h5.create_group("x_future/deeper")["elsewhere"] = h5py.ExternalLink("/etc/hostname", "/")
    with pytest.raises(StructureError, match="x_future/deeper/elsewhere"):
        DCQFile(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("how", ["DCQFile", "cli info"])
def test_external_link_to_a_fifo_does_not_hang(tmp_path: Path, how: str) -> None:
    path, fifo = tmp_path / "fifo_link.dcq", tmp_path / "pipe.h5"
    write_small(path)
    os.mkfifo(fifo)
    _replace_by_link(path, "classes", h5py.ExternalLink(str(fifo), "/classes"))
    code = ("import sys\nfrom dcqformat import DCQFile\nDCQFile(sys.argv[1])" if how == "DCQFile"
            else "import sys\nfrom dcqformat.cli import main\nsys.exit(main(['info', sys.argv[1]]))")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                              timeout=30, env=child_env(), cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{how} hangs on an external link to a FIFO")
    assert proc.returncode != 0 and "hard links only" in proc.stderr, proc.stderr[-2000:]


def test_hard_links_to_the_same_dataset_stay_readable(tmp_path: Path) -> None:
    """Only links that leave the object graph are refused: an extra hard link is fine."""
    path = tmp_path / "hard.dcq"
    maps = write_small(path)
    with h5py.File(path, "r+") as h5:
        h5["another_name_for_palettes"] = h5["palettes"]
    with DCQFile(path) as f:
        f.verify()
        assert len(f) == len(maps)
    shutil.copyfile(path, tmp_path / "copy.dcq")
    DCQFile(tmp_path / "copy.dcq").verify()
