"""Corruption fuzzing of the golden valid files.

Random bytes of copies of ``spec/vectors/valid/*.dcq`` are flipped, overwritten, inserted,
deleted or cut off; the copy is then opened, every sample read (one by one and batched),
the storage report built and the file verified. Only a :class:`DcqError` may come out: any
other exception (IndexError included), a hang or a crash is a reader bug.

In-process examples run under a per-example time limit: ``signal.setitimer`` for hangs in
Python code, and ``faulthandler.dump_traceback_later(exit=True)`` as a backstop for hangs
inside C code (HDF5), which no signal handler can interrupt: it ends pytest with a
traceback rather than letting it hang. Because a segfault inside HDF5 or a Numba kernel
would kill pytest itself, a batch of seeded corruptions also runs in a subprocess (each
case under its own watchdog); a crash or hang there fails the test and names the seed and
case (the damaged file is left in the test's tmp_path).

A bug this found, now guarded by :mod:`dcqformat.format.gheap` and pinned by
``test_hdf5_global_heap_hang_is_refused`` and ``test_global_heap_bytes_fuzz``: HDF5 2.0.0 loops
forever parsing a global heap collection (``GCOL``, where variable-length strings live) once a
damaged object size makes its object walk land on zero bytes (an object of index 0 and size 0
never advances).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcqformat import DCQFile
from dcqformat.errors import DcqError

VALID = sorted((Path(__file__).resolve().parent.parent / "spec" / "vectors" / "valid").glob("*.dcq"))
DATA = {p.name: p.read_bytes() for p in VALID}
# Positions worth hitting: the non-zero bytes (HDF5 metadata, attributes, data); most of a
# small HDF5 file is zero padding where damage changes nothing.
TIME_LIMIT_S = 20.0
BACKSTOP_S = 120.0


def gcol_ranges(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the HDF5 global heap collections of a (valid) file."""
    ranges, i = [], data.find(b"GCOL")
    while i >= 0:
        if data[i + 4] == 1:
            ranges.append((i, i + int.from_bytes(data[i + 8:i + 16], "little")))
        i = data.find(b"GCOL", i + 1)
    return ranges


GCOL = {name: gcol_ranges(data) for name, data in DATA.items()}
HOT = {name: [int(i) for i in np.flatnonzero(np.frombuffer(data, np.uint8))]
       for name, data in DATA.items()}


class Hang(Exception):
    """An example ran past the time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(BACKSTOP_S, exit=True)  # a hang in C: end loudly
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def exercise(path: Path, check_crc: bool) -> None:
    """Everything a user may do with a file; a damaged file may only raise DcqError."""
    with DCQFile(path, check_crc=check_crc) as f:
        for i in range(len(f)):
            pixels, label = f[i]
            assert pixels.dtype == np.uint8 and pixels.shape == f.shape(i)
            assert 0 <= label < len(f.classes)
        if len(f):
            f.decode_batch(range(len(f)), layout="chw")
            f.decode_batch(list(range(len(f)))[::-1], layout="hwc")
        f.info()
        f.verify()


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(DATA)))
    data = bytearray(DATA[name])
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        if size == 0:
            break
        pos = draw(st.one_of(st.sampled_from(HOT[name]), st.integers(0, size - 1)))
        pos = min(pos, size - 1)
        kind = draw(st.sampled_from(["flip", "flip", "set", "overwrite", "insert", "delete", "truncate"]))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos:pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return name, bytes(data)


def _fuzz_once(tmp_path: Path, case: tuple[str, bytes], check_crc: bool) -> None:
    name, data = case
    path = tmp_path / f"fuzz_{name}"
    path.write_bytes(data)
    try:
        with time_limit(TIME_LIMIT_S):
            exercise(path, check_crc)
    except DcqError:
        pass
    except Hang as exc:
        keep = tmp_path / f"hang_{name}"
        keep.write_bytes(data)
        raise AssertionError(f"{name}: reader hung ({exc}); the file is at {keep}") from None
    except Exception as exc:  # noqa: BLE001 - any other type is the bug being hunted
        keep = tmp_path / f"bug_{name}"
        keep.write_bytes(data)
        raise AssertionError(f"{name}: {type(exc).__name__}: {exc} (not a DcqError); the file is "
                             f"at {keep}") from exc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=corrupted(), check_crc=st.booleans())
def test_corruption_raises_only_dcq_errors(tmp_path: Path, case: tuple[str, bytes], check_crc: bool) -> None:
    _fuzz_once(tmp_path, case, check_crc)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(case=corrupted(), check_crc=st.booleans())
def test_corruption_raises_only_dcq_errors_long(tmp_path: Path, case: tuple[str, bytes], check_crc: bool) -> None:
    _fuzz_once(tmp_path, case, check_crc)


# -- the same in a subprocess, so that a segfault is a test failure, not a dead pytest -----
CHILD = textwrap.dedent("""
    import faulthandler, random, sys
    from pathlib import Path
    import numpy as np
    from dcqformat import DCQFile
    from dcqformat.errors import DcqError

    seed, count, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    vectors = [Path(p) for p in sys.argv[4:]]
    datas = [p.read_bytes() for p in vectors]
    rng = random.Random(seed)
    for case in range(count):
        k = rng.randrange(len(datas))
        data = bytearray(datas[k])
        hot = [i for i, b in enumerate(data) if b]
        for _ in range(rng.randint(1, 4)):
            if not data:
                break
            pos = min(rng.choice(hot) if rng.random() < 0.8 else rng.randrange(len(data)), len(data) - 1)
            kind = rng.choice(["flip", "flip", "flip", "set", "overwrite", "truncate"])
            if kind == "flip":
                data[pos] ^= 1 << rng.randrange(8)
            elif kind == "set":
                data[pos] = rng.choice([0, 255, 127, 128, 1])
            elif kind == "overwrite":
                data[pos:pos + 8] = rng.randbytes(8)
            else:
                del data[pos:]
        path = out / "case.dcq"
        path.write_bytes(bytes(data))
        print(f"CASE seed={seed} case={case} vector={vectors[k].name}", flush=True)
        faulthandler.dump_traceback_later(30, exit=True)  # a hang, even inside C code
        try:
            with DCQFile(path, check_crc=bool(case % 2)) as f:
                for i in range(len(f)):
                    f[i]
                if len(f):
                    f.decode_batch(range(len(f)))
                f.info()
                f.verify()
        except DcqError:
            pass
        except BaseException as exc:
            print(f"NOT-A-DCQERROR seed={seed} case={case}: {type(exc).__name__}: {exc}", flush=True)
            sys.exit(3)
        faulthandler.cancel_dump_traceback_later()
    print("DONE", flush=True)
""")


def _run_child(tmp_path: Path, seed: int, count: int, timeout: float) -> None:
    cmd = [sys.executable, "-c", CHILD, str(seed), str(count), str(tmp_path), *map(str, VALID)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        last = [line for line in out.splitlines() if line.startswith("CASE")][-1:]
        pytest.fail(f"corruption batch hung after {timeout} s at {last}; the file is {tmp_path / 'case.dcq'}")
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or lines[-1] != "DONE":
        last = [line for line in lines if line.startswith(("CASE", "NOT-A"))][-2:]
        pytest.fail(f"corruption batch failed (exit {proc.returncode}) at {last}; the file is "
                    f"{tmp_path / 'case.dcq'}\n{proc.stderr[-3000:]}")


def test_corruption_batch_in_subprocess(tmp_path: Path) -> None:
    _run_child(tmp_path, seed=20261122, count=300, timeout=240)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_corruption_batch_in_subprocess_long(tmp_path: Path, seed: int) -> None:
    _run_child(tmp_path, seed=seed, count=3000, timeout=1200)


# -- the HDF5 global heap hang, refused before HDF5 sees it ------------------------------
def test_hdf5_global_heap_hang_is_refused(tmp_path: Path) -> None:
    data = bytearray(DATA["q3_rgb_zstd_k5.dcq"])
    assert GCOL["q3_rgb_zstd_k5.dcq"] == [(2048, 6144)] and data[2176] == 0x01
    data[2176] = 0x7F
    path = tmp_path / "gcol_hang.dcq"
    path.write_bytes(bytes(data))
    code = ("import sys\nfrom dcqformat import DCQFile\nfrom dcqformat.errors import DcqError\n"
            "try:\n    DCQFile(sys.argv[1])\nexcept DcqError:\n    pass\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=8)
    except subprocess.TimeoutExpired:
        pytest.fail(f"DCQFile({path}) hangs")
    assert proc.returncode == 0, proc.stderr
    tool = Path(__file__).resolve().parent.parent / "tools" / "independent_reader.py"
    try:  # and the reader written from the spec alone (§10.10) refuses it too
        proc = subprocess.run([sys.executable, str(tool), str(path)], capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"tools/independent_reader.py {path} hangs")
    assert proc.returncode == 2 and "StructureError at open" in proc.stdout, proc.stdout + proc.stderr
    assert "does not advance the object walk" in proc.stdout, proc.stdout


GCOL_CHILD = textwrap.dedent("""
    import random, struct, sys, faulthandler
    from pathlib import Path
    from dcqformat import DCQFile
    from dcqformat.errors import DcqError
    src, out, seed, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    lo, hi = int(sys.argv[5]), int(sys.argv[6])
    base = src.read_bytes()
    rng = random.Random(seed)
    for case in range(count):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(lo, hi - 8)
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos:pos + 8] = struct.pack("<Q", rng.choice([0, 1, 7, 8, 16, 4096, 2**40]))
        path = out / "case.dcq"
        path.write_bytes(bytes(data))
        print(f"CASE {case}", flush=True)
        faulthandler.dump_traceback_later(20, exit=True)
        try:
            with DCQFile(path) as f:
                f.classes, f.info()
        except DcqError:
            pass
        faulthandler.cancel_dump_traceback_later()
    print("DONE")
""")


def test_global_heap_bytes_fuzz(tmp_path: Path) -> None:
    """Damage only the global heap collection (object sizes, indices, the header): every
    case ends in a value or a DcqError, never a hang inside HDF5."""
    name = "q3_rgb_zstd_k5.dcq"
    (lo, hi), = GCOL[name]
    hi = min(hi, lo + 256)  # the objects live at the start of the 4 KiB collection
    cmd = [sys.executable, "-c", GCOL_CHILD, str(VALID[0].parent / name), str(tmp_path), "7", "150",
           str(lo), str(hi)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        pytest.fail(f"hung at {out.splitlines()[-1:]}")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "DONE", proc.stderr[-3000:]


def test_global_heap_walker_rejects_a_zero_size_free_object() -> None:
    from dcqformat.errors import StructureError
    from dcqformat.format.gheap import walk_collection

    coll = bytearray(b"GCOL\x01\x00\x00\x00" + (4096).to_bytes(8, "little") + bytes(4080))
    coll[16:32] = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + bytes(4) + (3).to_bytes(8, "little")
    coll[32:40] = b"abc\x00\x00\x00\x00\x00"
    free = 4096 - 40
    coll[40:56] = bytes(8) + free.to_bytes(8, "little")
    assert walk_collection(bytes(coll), 0, 4096, "x") == 4096
    coll[48:56] = bytes(8)  # index 0, size 0: HDF5's walk would never advance
    with pytest.raises(StructureError, match="does not advance"):
        walk_collection(bytes(coll), 0, 4096, "x")
    coll[48:56] = (10**6).to_bytes(8, "little")
    with pytest.raises(StructureError, match="runs past"):
        walk_collection(bytes(coll), 0, 4096, "x")


# -- tools/fuzz_reader.py: checksum-free bases, field-sized damage, crash/hang/RSS accounting --
def test_fuzz_reader_batch(fuzz_tool: Any) -> None:
    t = fuzz_tool.run(60, 20261201, batch=200, max_files=400)
    assert t.files == 400 and sum(t.outcomes.values()) == 400
    assert not t.others and not t.crashes and not t.hangs, fuzz_tool.report(t, 20261201)
    assert t.peak_rss_kib < 1 << 20, fuzz_tool.report(t, 20261201)  # 1 GiB


@pytest.mark.slow
def test_fuzz_reader_time_bounded(fuzz_tool: Any) -> None:
    """CI's slow suite: three minutes of seeded fuzzing; only DcqError, no crash, no hang, and
    no child above 1 GiB (a variable-length bomb would take 4 GiB)."""
    t = fuzz_tool.run(180, 20261202)
    assert t.files > 2000
    assert not t.others and not t.crashes and not t.hangs, fuzz_tool.report(t, 20261202)
    assert t.peak_rss_kib < 1 << 20, fuzz_tool.report(t, 20261202)
