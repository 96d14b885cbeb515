"""Issue #15 class 2: memory and time bombs in structure the reader did not bound.

Before: four bytes edited in the raw data of a variable-length string (``/classes``, or a root
string attribute) made ``DCQFile()`` allocate and zero ~4.3 GB before HDF5 noticed the length
did not match its heap object; and a spec-valid ~20 KB file could declare thousands of
16384×16384 samples that all decode from one tiny zstd frame (seconds each; ``verify`` for
hours, with no progress and no clean stop).
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import zstandard

from dcqformat import DCQFile
from dcqformat.errors import DcqError

from .conftest import PEAK_RSS, child_env, crc, independent_verdict, run_python, write_small

PEAK = textwrap.dedent(PEAK_RSS) + textwrap.dedent("""
    import sys
    from dcqformat import DCQFile
    from dcqformat.errors import DcqError
    before = peak_rss_kib()
    try:
        DCQFile(sys.argv[1])
    except DcqError as exc:
        print("refused:", exc)
    else:
        print("accepted")
    print("grew_mib", (peak_rss_kib() - before) // 1024)
""")


def _grew_mib(path: Path, tmp_path: Path) -> tuple[str, int]:
    proc = run_python(PEAK, str(path), cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    return lines[0], int(lines[-1].split()[1])


def _bomb_classes(src: Path, out: Path, declared: int, collection: int | None = None) -> None:
    data = bytearray(src.read_bytes())
    with h5py.File(src, "r") as h5:
        offset = h5["classes"].id.get_offset()
    _length, coll, index = struct.unpack_from("<IQI", data, offset)
    struct.pack_into("<IQI", data, offset, declared, coll if collection is None else collection, index)
    out.write_bytes(bytes(data))


@pytest.mark.parametrize("collection", [None, 123_456_789], ids=["same-object", "no-object"])
def test_classes_descriptor_length_bomb(tmp_path: Path, small: Path, collection: int | None) -> None:
    bomb = tmp_path / "bomb.dcq"
    _bomb_classes(small, bomb, 0xFFFFFFF0, collection)
    assert bomb.stat().st_size < 64 << 10
    verdict, grew = _grew_mib(bomb, tmp_path)
    assert verdict.startswith("refused:") and "classes" in verdict, verdict
    assert grew < 64, f"opening a {bomb.stat().st_size} B file grew the peak memory by {grew} MiB"


def _bomb_string_attribute(src: Path, tmp_path: Path, group: str, name: str,
                           earliest_copy: Callable[[Path, Path], None]) -> Path:
    """An earliest-format copy of ``src`` whose vlen string attribute ``name`` of ``group``
    declares 0xFFFFFFF0 bytes (its descriptor edited; no checksum covers it)."""
    early = tmp_path / "early.dcq"
    earliest_copy(src, early)
    DCQFile(early).verify()  # the copy itself is a valid file
    data = bytearray(early.read_bytes())
    with h5py.File(early, "r") as h5:
        value = h5[group].attrs[name]
    text = value.encode() if isinstance(value, str) else bytes(value)
    gcol = data.find(b"GCOL\x01")
    index = next(j for j in range(1, 64) if _object(bytes(data), gcol, j) == text)
    pos = data.find(struct.pack("<IQI", len(text), gcol, index))
    assert pos >= 0
    struct.pack_into("<I", data, pos, 0xFFFFFFF0)
    bomb = tmp_path / "attr_bomb.dcq"
    bomb.write_bytes(bytes(data))
    return bomb


@pytest.mark.parametrize("name", ["payload_encoding", "dcq_format", "created_by"])
def test_string_attribute_descriptor_length_bomb(tmp_path: Path, small: Path, name: str,
                                                 earliest_copy: Callable[[Path, Path], None]) -> None:
    bomb = _bomb_string_attribute(small, tmp_path, "/", name, earliest_copy)
    verdict, grew = _grew_mib(bomb, tmp_path)
    assert verdict.startswith("refused:"), verdict
    assert grew < 64, f"opening a {bomb.stat().st_size} B file grew the peak memory by {grew} MiB"


@pytest.mark.parametrize("name", ["models", "context"])
def test_ctx_string_attribute_descriptor_length_bomb(tmp_path: Path, name: str,
                                                     earliest_copy: Callable[[Path, Path], None]) -> None:
    """Found by CI's slow fuzzing (seed 20261202, case 1489): ``/ctx``'s string attributes went
    through HDF5's conversion, which allocated the declared 2.9 GB before it failed."""
    vector = Path(__file__).resolve().parents[2] / "spec" / "vectors" / "valid" / "q8_grey_ctx.dcq"
    bomb = _bomb_string_attribute(vector, tmp_path, "/ctx", name, earliest_copy)
    verdict, grew = _grew_mib(bomb, tmp_path)
    assert verdict.startswith("refused:") and repr(name) in verdict, verdict
    assert grew < 64, f"opening a {bomb.stat().st_size} B file grew the peak memory by {grew} MiB"


def _object(data: bytes, gcol: int, index: int) -> bytes | None:
    p, end = gcol + 16, gcol + int.from_bytes(data[gcol + 8:gcol + 16], "little")
    while p + 16 <= end:
        idx, _r, _z, size = struct.unpack_from("<HHIQ", data, p)
        if idx == 0:
            return None
        if idx == index:
            return data[p + 16:p + 16 + size]
        p += 16 + ((size + 7) & ~7)
    return None


def _pixel_bomb(path: Path, n: int, side: int = 16384) -> None:
    """``n`` samples of side×side pixels at q=1 whose stored bytes are all the same tiny zstd
    frame (payload ranges may overlap, spec §4): spec-valid, every checksum right."""
    write_small(path, n=1, encoding="zstd", shape=(1, 1))
    frame = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(bytes(side * side // 8))
    with h5py.File(path, "r+") as h5:
        h5.attrs["bits"] = np.uint8(1)
        h5.attrs["palette_size"] = np.uint16(2)
        h5.attrs["num_samples"] = np.uint64(n)
        del h5["palettes"]
        pal = np.array([[[0, 0, 0], [255, 255, 255]]], "u1")
        h5.create_dataset("palettes", data=pal).attrs["crc32"] = crc(pal)
        payload = np.frombuffer(frame, "u1")
        del h5["payload"]
        h5.create_dataset("payload", data=payload).attrs["crc32"] = crc(payload)
        columns = {"height": np.full(n, side, "<u4"), "width": np.full(n, side, "<u4"),
                   "label": np.zeros(n, "<u4"), "cluster": np.zeros(n, "<u4"),
                   "offset": np.zeros(n, "<u8"), "length": np.full(n, len(frame), "<u8"),
                   "crc32": np.full(n, zlib_crc(frame), "<u4")}
        for name, values in columns.items():
            del h5[f"samples/{name}"]
            h5["samples"].create_dataset(name, data=values, chunks=(min(n, 1 << 16),), shuffle=True,
                                         compression="gzip").attrs["crc32"] = crc(values)


def zlib_crc(data: bytes) -> int:
    return int(crc(data))


def test_pixel_bomb_is_refused_at_open_and_the_override_works(tmp_path: Path) -> None:
    bomb = tmp_path / "pixels.dcq"
    _pixel_bomb(bomb, 15000)
    assert bomb.stat().st_size < 64 << 10  # 15,000 x 268 Mpx declared by a few KB
    t0 = time.perf_counter()
    with pytest.raises(DcqError, match="max_pixels") as err:
        DCQFile(bomb)
    assert "sample 0" in str(err.value) and time.perf_counter() - t0 < 10
    f = DCQFile(bomb, max_pixels=None)  # the documented override
    assert len(f) == 15000 and f.shape(14999) == (16384, 16384, 3)


def test_verify_reports_progress_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    bomb = tmp_path / "pixels.dcq"
    _pixel_bomb(bomb, 200, side=4096)  # 16.8 Mpx each: a fraction of a second per sample
    # As at a terminal: a shell's background job (CI started with `&`) inherits SIGINT ignored,
    # and Python then leaves it ignored; restore the default handler before Ctrl-C is sent.
    proc = subprocess.Popen([sys.executable, "-c", "import signal, sys; "
                             "signal.signal(signal.SIGINT, signal.default_int_handler); "
                             "from dcqformat.cli import main; sys.exit(main(sys.argv[1:]))",
                             "verify", str(bomb), "--progress", "--max-pixels", "0"],
                            stderr=subprocess.PIPE, text=True, env=child_env(), cwd=tmp_path)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # a progress line arrives before the end
    assert "verify:" in first and "/200 samples" in first, first
    os.kill(proc.pid, signal.SIGINT)
    try:
        rest = proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("verify did not stop on Ctrl-C")
    assert proc.returncode == 130 and "interrupted" in rest and "Traceback" not in rest, rest


def test_a_looping_local_heap_free_list_is_refused_not_followed(
        tmp_path: Path, small: Path, earliest_copy: Callable[[Path, Path], None]) -> None:
    """Found by fuzzing (seed 20261206, case 39620): an old-style group's local heap whose free
    block points at itself made HDF5 loop forever inside the link walk (every group of the
    earliest-format copy has such a heap)."""
    early = tmp_path / "early.dcq"
    earliest_copy(small, early)
    data = bytearray(early.read_bytes())
    looped = 0
    pos = data.find(b"HEAP\x00\x00\x00\x00")
    while pos >= 0:
        _size, free, addr = struct.unpack_from("<QQQ", data, pos + 8)
        if free != (1 << 64) - 1:  # point its first free block at itself
            struct.pack_into("<Q", data, addr + free, free)
            looped += 1
            break
        pos = data.find(b"HEAP\x00\x00\x00\x00", pos + 1)
    assert looped
    bomb = tmp_path / "heap_loop.dcq"
    bomb.write_bytes(bytes(data))
    proc = run_python(PEAK, str(bomb), cwd=tmp_path, timeout=60)  # TimeoutExpired = the hang
    assert proc.stdout.startswith("refused:") and "loops" in proc.stdout, proc.stdout + proc.stderr[-500:]
    said = independent_verdict(bomb)  # and a reader written from spec §10.14 alone
    assert "StructureError at open" in said and "loops" in said, said


def test_local_heap_free_lists_are_walked_as_hdf5_walks_them() -> None:
    from dcqformat.errors import StructureError
    from dcqformat.format.lheap import check_local_heap

    end = (1 << 64) - 1

    def heap(free: int, blocks: dict[int, int], size: int = 96) -> bytes:
        data = bytearray(size)
        for offset, nxt in blocks.items():
            struct.pack_into("<QQ", data, offset, nxt, 16)
        return b"HEAP\x00\x00\x00\x00" + struct.pack("<QQQ", size, free, 32) + bytes(data)

    ok = heap(16, {16: 48, 48: end})
    check_local_heap(ok, 0, len(ok), "f")
    check_local_heap(heap(end, {}), 0, 128, "f")  # no free block
    check_local_heap(heap(90, {}), 0, 128, "f")  # leaves the heap: HDF5's own error, not ours
    for looping in (heap(16, {16: 16}), heap(16, {16: 48, 48: 16})):
        with pytest.raises(StructureError, match="loops"):
            check_local_heap(looping, 0, len(looping), "f")
