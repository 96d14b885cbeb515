"""Issue #15 class 6: writes.

Before: after SIGKILL or SIGTERM during the write stage, temporary files stayed beside the target
forever (SIGTERM had no handler); two writers to one target without ``--force`` both succeeded,
the second silently replacing the first; every output got mode 0600 whatever the umask.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import DcqError

from .conftest import child_env, write_small

SLOW_WRITER = """
    import sys, time
    import numpy as np
    from dcqformat import DCQWriter
    w = DCQWriter(sys.argv[1], bits=2, channels=3, classes=["a", "b"], payload_encoding="auto")
    w.set_palettes(np.zeros((1, 4, 3), np.uint8))
    for i in range(200):
        w.add_sample(np.ones((16, 16), np.uint8), cluster=0, label=i % 2)
    print("spooling", flush=True)
    time.sleep(60)
"""


def test_sigkill_while_writing_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.dcq"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITER.replace("\n    ", "\n"), str(target)],
                            stdout=subprocess.PIPE, text=True, env=child_env(), cwd=tmp_path)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "spooling"
    proc.kill()
    proc.wait(timeout=30)
    assert os.listdir(tmp_path) == [], "a killed writer left files behind"


def _shard(path: Path, n: int) -> None:
    """A one-shard 'sharded conversion' (a shard record in the provenance) of ``n`` samples."""
    rng = np.random.default_rng(0)
    with DCQWriter(path, bits=2, channels=3, classes=["a", "b"]) as w:
        w.set_palettes(rng.integers(0, 256, (1, 4, 3), dtype=np.uint8))
        for i in range(n):
            w.add_sample(rng.integers(0, 4, (16, 16), dtype=np.uint8), cluster=0, label=i % 2)
        w.set_provenance({"shard": {"index": 0, "count": 1, "positions": [[0, n]], "images": n,
                                    "raw_pixel_bytes": 0, "source_bytes": 0, "psnr_sum": 0.0,
                                    "psnr_min": 0.0, "skipped_positions": []}})


SLOW_MERGE = """
import sys, time
from dcqformat import DCQWriter
from dcqformat.cli import main
add = DCQWriter.add_sample
def slow_add(self, *args, **kw):
    if len(self) == 10:
        print("writing", flush=True)
    time.sleep(0.002)
    return add(self, *args, **kw)
DCQWriter.add_sample = slow_add
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_writing_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    shard, out = tmp_path / "s0.dcq", tmp_path / "merged.dcq"
    _shard(shard, 5000)  # about 10 s of (slowed-down) merging
    before = sorted(os.listdir(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", SLOW_MERGE, "merge", str(shard), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(), cwd=tmp_path)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143 and "terminated" in err, (proc.returncode, err[-2000:])
    assert sorted(os.listdir(tmp_path)) == before


def test_second_writer_to_the_same_target_does_not_replace_the_first(tmp_path: Path) -> None:
    target = tmp_path / "out.dcq"
    first = DCQWriter(target, bits=2, channels=3, classes=["first"])
    second = DCQWriter(target, bits=2, channels=3, classes=["second"])  # neither has published
    for w in (first, second):
        w.set_palettes(np.zeros((1, 4, 3), np.uint8))
        w.add_sample(np.zeros((2, 2), np.uint8), cluster=0, label=0)
    first.close()
    with pytest.raises(DcqError, match="exists"):
        second.close()
    assert DCQFile(target).classes == ["first"]
    assert os.listdir(tmp_path) == ["out.dcq"]
    with pytest.raises(DcqError, match="exists"):  # and a writer started afterwards is told at once
        DCQWriter(target, bits=2, channels=3, classes=["third"])


@pytest.mark.parametrize("umask", [0o022, 0o007, 0o077], ids=["022", "007", "077"])
def test_outputs_get_the_mode_any_tool_would(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_small(tmp_path / "x.dcq")
        (tmp_path / "reference").write_bytes(b"")  # what open() gives any other tool
    finally:
        os.umask(old)
    mode = (tmp_path / "x.dcq").stat().st_mode & 0o777
    assert mode == (tmp_path / "reference").stat().st_mode & 0o777 == 0o666 & ~umask


def test_named_leftovers_of_dead_writers_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    """Where anonymous temporary files are unavailable, a killed writer's named ones are cleaned
    up by the next writer into that folder (never those of a live process)."""
    from dcqformat.format.publish import TempFile

    target = tmp_path / "out.dcq"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace("-", "_").replace("/", "_")[:32] or "host"
    stale = tmp_path / f".out.dcq.dcq-tmp-{host}-{dead.pid}-0badc0de"
    stale.write_bytes(b"left by a killed writer")
    live = TempFile(target, anonymous=False)  # this process's own: must survive
    assert live.path is not None and live.path.exists()
    (tmp_path / "unrelated.tmp").write_bytes(b"")
    write_small(target)
    assert not stale.exists() and live.path.exists() and (tmp_path / "unrelated.tmp").exists()
    live.discard()
    assert sorted(os.listdir(tmp_path)) == ["out.dcq", "unrelated.tmp"]
    assert json.loads(json.dumps(DCQFile(target).classes)) == ["a", "b"]
