"""Decoding into a caller's buffer: ``DCQFile.decode_batch(out=...)`` on raw, zstd and ctx
files (threads 1 and 2, HWC and CHW, the cache, patch masks) writes exactly what it returns
without ``out`` and returns ``out`` itself; a wrong ``out`` is refused before a byte is
written; the shared-memory buffers of DataLoader workers (``dcqformat.torch.shared_memory``)
and the shape test that decides when a dataset batch is decoded straight into one
(``shards.stacked_shape``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError
from dcqformat.torch.shards import stacked_shape
from dcqformat.torch.shared_memory import populate, shared_uint8

ENCODINGS = ("raw", "zstd", "ctx")


def _write(path: Path, encoding: str, sizes: list[tuple[int, int]], *, masked: bool = False,
           channels: int = 3) -> Path:
    rng = np.random.default_rng(len(sizes))
    kw = {"patch_size": 4} if masked else {}
    with DCQWriter(path, bits=3, channels=channels, classes=["a", "b"], palette_size=6,
                   payload_encoding=encoding, **kw) as w:
        w.set_palettes(rng.integers(0, 256, (2, 6, channels), dtype=np.uint8))
        for i, (h, wd) in enumerate(sizes):
            m = (np.add.outer(np.arange(h), np.arange(wd)) // (1 + i % 3)) % 6
            m = np.where(rng.random((h, wd)) < 0.2, rng.integers(0, 6, (h, wd)), m).astype(np.uint8)
            extra = {"keep_mask": rng.random(((h + 3) // 4, (wd + 3) // 4)) < 0.7} if masked else {}
            w.add_sample(m, cluster=i % 2, label=i % 2, **extra)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("into")


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_decode_into_equals_decode(folder: Path, encoding: str, masked: bool) -> None:
    path = _write(folder / f"{encoding}-{masked}.dcq", encoding, [(24, 20)] * 30, masked=masked)
    idx = [29, 0, 5, 5, 17, 3, 28, 11]
    for cache in (False, True):
        with DCQFile(path) as f:
            if cache:
                f.enable_cache()
            for layout in ("chw", "hwc"):
                for threads in (1, 2):
                    expected = f.decode_batch(idx, layout, threads=threads)
                    assert isinstance(expected, np.ndarray)
                    out = np.full(expected.shape, 77, np.uint8)
                    got = f.decode_batch(idx, layout, threads=threads, out=out)
                    assert got is out
                    assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize("bad", ["dtype", "shape", "strided", "readonly", "list"])
def test_wrong_out_refused_before_writing(folder: Path, bad: str) -> None:
    path = _write(folder / f"bad-{bad}.dcq", "ctx", [(8, 8)] * 4)
    good = np.full((4, 3, 8, 8), 5, np.uint8)
    out: object = {"dtype": good.astype(np.int16), "shape": good[:3], "strided": np.full((4, 3, 8, 16), 5, np.uint8)[..., ::2],
                   "readonly": good, "list": good.tolist()}[bad]
    if bad == "readonly":
        good.flags.writeable = False
    with DCQFile(path) as f, pytest.raises(InvalidArgumentError, match="out must be"):
        f.decode_batch(range(4), out=out)  # type: ignore[arg-type]
    if isinstance(out, np.ndarray):
        assert (out == 5).all()


def test_out_needs_one_size(folder: Path) -> None:
    for masked in (False, True):
        path = _write(folder / f"mixed-{masked}.dcq", "zstd", [(8, 8), (8, 12)], masked=masked)
        with DCQFile(path) as f, pytest.raises(InvalidArgumentError, match="one size"):
            f.decode_batch([0, 1], out=np.zeros((2, 3, 8, 8), np.uint8))


def test_empty_batch_with_out(folder: Path) -> None:
    path = _write(folder / "empty.dcq", "raw", [(8, 8)])
    with DCQFile(path) as f:
        out = np.zeros((0, 3, 8, 8), np.uint8)
        assert f.decode_batch([], out=out) is out
        assert f.decode_batch([]) == []
        with pytest.raises(InvalidArgumentError, match="out must be"):
            f.decode_batch([], out=np.zeros((1, 3, 8, 8), np.uint8))


def test_stacked_shape(folder: Path) -> None:
    a = DCQFile(_write(folder / "s-a.dcq", "raw", [(8, 8)] * 3))
    b = DCQFile(_write(folder / "s-b.dcq", "raw", [(8, 8), (8, 8), (4, 8)]))
    grey = DCQFile(_write(folder / "s-g.dcq", "raw", [(8, 8)] * 2, channels=1))
    starts = np.array([0, 3, 6, 8])
    files = [a, b, grey]
    assert stacked_shape(files, starts, np.array([0, 2, 3]), "chw") == (3, 3, 8, 8)
    assert stacked_shape(files, starts, np.array([4, 1]), "hwc") == (2, 8, 8, 3)
    assert stacked_shape(files, starts, np.array([0, 5]), "chw") is None  # 8x8 and 4x8
    assert stacked_shape(files, starts, np.array([1, 6]), "chw") is None  # RGB and grey
    assert stacked_shape(files, starts, np.array([6, 7]), "chw") == (2, 1, 8, 8)
    for f in files:
        f.close()


@pytest.mark.parametrize("nbytes", [1, 4095, 4097, 3 << 20])
def test_shared_uint8(nbytes: int) -> None:
    buf = shared_uint8(nbytes)
    assert buf.shape == (nbytes,) and buf.is_shared()
    pattern = np.arange(nbytes, dtype=np.int64).astype(np.uint8)
    buf.numpy()[:] = pattern
    assert buf.numpy().tobytes() == pattern.tobytes()


def _linux_at_least(major: int, minor: int) -> bool:
    if not os.uname().sysname == "Linux":
        return False
    parts = os.uname().release.split(".")
    return (int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)) >= (major, minor)


def test_populate_keeps_content() -> None:
    data = np.arange(50_000, dtype=np.int64).astype(np.uint8)
    before = data.tobytes()
    done = populate(data.ctypes.data + 3, data.nbytes - 3)  # unaligned start
    assert data.tobytes() == before
    assert done is _linux_at_least(5, 14)
    assert populate(data.ctypes.data, 0) is False
