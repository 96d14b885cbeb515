"""decode_batch / packed_batch split over threads (dcqformat.format.batch_threads, threadpool):
the same bytes as one thread on raw, zstd and ctx files (mixed sizes, uneven chunks, the cache,
patch masks), bad thread counts refused, a failing chunk's sample named exactly as with one
thread, and the pool never used across a fork."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError, PayloadError
from dcqformat.format import batch_threads, threadpool
from dcqformat.format.threadpool import resolve_threads, split_by_pixels

ENCODINGS = ("raw", "zstd", "ctx")
SIZES = [(12, 12), (5, 7), (1, 1), (30, 20), (12, 12), (2, 40), (9, 9), (16, 3), (12, 12), (7, 1)]


def _write(path: Path, encoding: str, *, sizes: list[tuple[int, int]] = SIZES, bits: int = 3,
           palette_size: int = 5, channels: int = 3, masked: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    kw = {"patch_size": 4} if masked else {}
    with DCQWriter(path, bits=bits, channels=channels, classes=["a", "b"], palette_size=palette_size,
                   payload_encoding=encoding, **kw) as w:
        w.set_palettes(rng.integers(0, 256, (3, palette_size, channels), dtype=np.uint8))
        for i, (h, wd) in enumerate(sizes):
            # smooth-ish maps (as real ones) with some noise, so every encoding has work to do
            m = (np.add.outer(np.arange(h), np.arange(wd)) // (1 + i % 3)) % palette_size
            m = np.where(rng.random((h, wd)) < 0.2, rng.integers(0, palette_size, (h, wd)), m)
            extra = {"keep_mask": rng.random(((h + 3) // 4, (wd + 3) // 4)) < 0.7} if masked else {}
            w.add_sample(m.astype(np.uint8), cluster=i % 3, label=i % 2, **extra)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("threads")
    out = {e: _write(d / f"{e}.dcq", e) for e in ENCODINGS}
    out.update({f"{e}-uniform": _write(d / f"{e}-u.dcq", e, sizes=[(16, 16)] * 40, seed=1)
                for e in ENCODINGS})
    out.update({f"{e}-masked": _write(d / f"{e}-m.dcq", e, masked=True, seed=2) for e in ENCODINGS})
    out["grey"] = _write(d / "grey.dcq", "ctx", channels=1, bits=8, palette_size=256, seed=3)
    return out


def _same(a: np.ndarray | list[np.ndarray], b: np.ndarray | list[np.ndarray]) -> None:
    assert type(a) is type(b)
    if isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.tobytes() == b.tobytes()  # type: ignore[union-attr]
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert x.shape == y.shape and x.tobytes() == y.tobytes()


@pytest.mark.parametrize("name", [*ENCODINGS, *(f"{e}-uniform" for e in ENCODINGS),
                                  *(f"{e}-masked" for e in ENCODINGS), "grey"])
@pytest.mark.parametrize("layout", ["chw", "hwc"])
def test_threaded_equals_one_thread(files: dict[str, Path], name: str, layout: str) -> None:
    with DCQFile(files[name]) as f:
        n = len(f)
        orders = [np.arange(n), np.arange(n)[::-1].copy(), np.array([3, 3, 0, n - 1, 1]),
                  np.random.default_rng(0).integers(0, n, 3 * n)]
        for idx in orders:
            one = f.decode_batch(idx, layout, threads=1)
            for b, i in enumerate(idx.tolist()):
                np.testing.assert_array_equal(one[b], f.decode(i, layout))
            for threads in (2, 3, 4, 7, 64, None):
                _same(f.decode_batch(idx, layout, threads=threads), one)
            data1, offs1 = f.packed_batch(idx, threads=1)
            for threads in (2, 3, 64, None):
                data, offs = f.packed_batch(idx, threads=threads)
                assert offs.tolist() == offs1.tolist() and data.tobytes() == data1.tobytes()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_threaded_with_the_cache(files: dict[str, Path], encoding: str) -> None:
    with DCQFile(files[encoding]) as plain, DCQFile(files[encoding]) as cached:
        cached.enable_cache()
        idx = np.array([4, 1, 1, 9, 3, 0])
        _same(cached.decode_batch(idx, threads=3), plain.decode_batch(idx, threads=1))  # fills
        everything = np.arange(len(plain))
        _same(cached.decode_batch(everything, threads=3), plain.decode_batch(everything, threads=1))
        _same(cached.decode_batch(everything, threads=2), plain.decode_batch(everything, threads=1))
        for threads in (1, 4):
            data, offs = cached.packed_batch(everything[::-1], threads=threads)
            ref, ref_offs = plain.packed_batch(everything[::-1], threads=1)
            assert data.tobytes() == ref.tobytes() and offs.tolist() == ref_offs.tolist()
    with DCQFile(files[encoding]) as f:  # the packed path fills the cache too
        f.enable_cache()
        data, _ = f.packed_batch(everything, threads=3)
        assert data.tobytes() == plain_packed(files[encoding])
        _same(f.decode_batch(everything, threads=2), DCQFile(files[encoding]).decode_batch(everything))


def plain_packed(path: Path) -> bytes:
    with DCQFile(path) as f:
        return f.packed_batch(np.arange(len(f)), threads=1)[0].tobytes()


def test_split_by_pixels_is_contiguous_and_about_even() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        b = int(rng.integers(1, 60))
        pixels = rng.integers(1, 5000, b) if rng.random() < 0.8 else np.full(b, 64)
        threads = int(rng.integers(1, 12))
        chunks = split_by_pixels(pixels, threads)
        assert chunks[0][0] == 0 and chunks[-1][1] == b and 1 <= len(chunks) <= min(threads, b)
        assert all(s < e for s, e in chunks) and all(a[1] == c[0] for a, c in zip(chunks, chunks[1:], strict=False))
        sums = [int(pixels[s:e].sum()) for s, e in chunks]
        # each chunk ends at the first sample that reaches its share: over by at most one sample
        assert max(sums) <= pixels.sum() / len(chunks) + pixels.max() or len(chunks) < threads
    assert split_by_pixels(np.full(256, 4096), 2) == [(0, 128), (128, 256)]
    assert split_by_pixels(np.array([10, 1, 1, 1, 1]), 2) == [(0, 1), (1, 5)]  # uneven by count


def test_automatic_thread_count(files: dict[str, Path]) -> None:
    cpus = threadpool.available_cpus()
    if hasattr(os, "sched_getaffinity"):
        assert cpus == len(os.sched_getaffinity(0))
    most = min(cpus, threadpool.MAX_AUTO_THREADS)
    for work, per in threadpool.MIN_PIXELS_PER_THREAD.items():
        assert resolve_threads(None, 2 * per - 1, work) == 1  # too small to split
        assert resolve_threads(None, 2 * per, work) == min(2, most)
        assert resolve_threads(None, 10**12, work) == most
        assert resolve_threads(None, 0, work) == 1
        assert resolve_threads(3, 10, work) == 3
    # the work is what the batch needs: entropy decoding unless raw or already in the cache
    big = np.zeros(10**4, np.int64)  # 10,000 x sample 0 (144 px): 1.44M pixels
    with DCQFile(files["ctx"]) as f:
        c = f._codec  # the decoder the reader hands to batch_threads
        assert batch_threads.thread_count(c, big, None, packed=False) == resolve_threads(None, 1_440_000, "ctx")
        f.enable_cache()
        assert batch_threads.thread_count(c, big, None, packed=True) == resolve_threads(None, 1_440_000, "ctx")
        f.decode_batch([0])
        assert batch_threads.thread_count(c, big, None, packed=False) == resolve_threads(None, 1_440_000)
    with DCQFile(files["raw"]) as f:
        assert batch_threads.thread_count(f._codec, big, None, packed=False) == 1


@pytest.mark.parametrize("bad", [0, -1, "x", "2", 1.5, True])
def test_bad_thread_counts_are_refused(files: dict[str, Path], bad: object) -> None:
    with DCQFile(files["ctx"]) as f:
        for call in (lambda: f.decode_batch([0, 1], threads=bad),  # type: ignore[arg-type]
                     lambda: f.packed_batch([0, 1], threads=bad),  # type: ignore[arg-type]
                     lambda: f.decode_batch([], threads=bad)):  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="threads") as err:
                call()
            assert repr(bad) in str(err.value) or str(bad) in str(err.value)
    with DCQFile(files["ctx-masked"]) as f:  # validated there too, though not used
        with pytest.raises(InvalidArgumentError, match="threads"):
            f.decode_batch([0, 1], threads=0)


def _damage(path: Path, sample: int, fill: int, out: Path) -> Path:
    """A copy of ``path`` with every stored byte of ``sample`` set to ``fill``."""
    with DCQFile(path) as f:
        start, length = int(f.metadata.offset[sample]), int(f.metadata.length[sample])
    with h5py.File(path, "r") as h5:
        base = int(h5["payload"].id.get_offset())
    data = bytearray(path.read_bytes())
    data[base + start:base + start + length] = bytes([fill]) * length
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(("encoding", "fill"), [("raw", 0xFF), ("zstd", 0x00), ("zstd", 0xFF),
                                                 ("ctx", 0xFF), ("ctx", 0x00)])
@pytest.mark.parametrize("sample", [0, 3, 7, 9])
def test_an_error_in_one_chunk_names_the_sample(files: dict[str, Path], tmp_path: Path,
                                                encoding: str, fill: int, sample: int) -> None:
    path = _damage(files[encoding], sample, fill, tmp_path / "bad.dcq")
    with DCQFile(path) as f:
        with pytest.raises(PayloadError) as alone:
            f.decode(sample)
        assert f"sample {sample}" in str(alone.value)
        idx = np.arange(len(f))
        with pytest.raises(PayloadError) as one:
            f.decode_batch(idx, threads=1)
        for threads in (2, 3, 5, 10):
            with pytest.raises(PayloadError) as many:
                f.decode_batch(idx, threads=threads)
            assert str(many.value) == str(one.value) and f"sample {sample}" in str(many.value)
        if encoding != "raw":  # a raw map is valid bytes whatever they hold
            with pytest.raises(PayloadError) as packed_one:
                f.packed_batch(idx, threads=1)
            with pytest.raises(PayloadError) as packed_many:
                f.packed_batch(idx, threads=4)
            assert str(packed_many.value) == str(packed_one.value)
        good = np.delete(idx, sample)
        _same(f.decode_batch(good, threads=3), f.decode_batch(good, threads=1))


def _child(f: DCQFile, idx: np.ndarray, conn: object) -> None:
    out = f.decode_batch(idx, threads=2)
    packed, _ = f.packed_batch(idx, threads=2)
    conn.send((out.tobytes(), packed.tobytes(), threadpool._pool_pid == os.getpid()))  # type: ignore[attr-defined]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("hold_lock", [False, True])
def test_a_forked_child_makes_its_own_pool(files: dict[str, Path], hold_lock: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    with DCQFile(files["ctx-uniform"]) as f:
        idx = np.arange(len(f))
        ref = f.decode_batch(idx, threads=2)  # the parent's pool exists and has run
        parent_pool = threadpool._pool
        assert parent_pool is not None and threadpool._pool_pid == os.getpid()
        recv, send = ctx.Pipe(duplex=False)
        lock = threadpool._lock
        if hold_lock:  # forked while another thread holds the pool lock: the child must not wait
            lock.acquire()
        try:
            child = ctx.Process(target=_child, args=(f, idx, send))
            child.start()
        finally:
            if hold_lock:
                lock.release()
        try:
            assert recv.poll(120), "the child did not answer (deadlocked on the inherited pool?)"
            pixels, packed, own_pool = recv.recv()
        finally:
            child.join(30)
            if child.is_alive():
                child.kill()
        assert child.exitcode == 0
        assert pixels == ref.tobytes() and own_pool
        assert packed == f.packed_batch(idx, threads=1)[0].tobytes()
        assert threadpool._pool is parent_pool  # the parent keeps its pool
        np.testing.assert_array_equal(f.decode_batch(idx, threads=2), ref)
