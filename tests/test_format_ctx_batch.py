"""The batched decode paths (zstd: one frame walk + python-zstandard's batch call; ctx: one
kernel call) against the per-sample paths, on good and damaged payloads: a batch fails exactly
when one of its samples fails alone, names a sample, and never crashes the process."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat import DCQFile, DCQWriter
from dcqformat.codecs.zstd_frames import check_frames
from dcqformat.codecs.zstd_reference import frame_walk_ref
from dcqformat.errors import DcqError, PayloadError


def _write(path: Path, encoding: str, masked: bool) -> Path:
    rng = np.random.default_rng(3)
    kw = {"patch_size": 4} if masked else {}
    with DCQWriter(path, bits=2, channels=3, classes=["a"], payload_encoding=encoding, **kw) as w:
        w.set_palettes(rng.integers(0, 256, (2, 4, 3), dtype=np.uint8))
        for i in range(8):
            m = (np.add.outer(np.arange(12), np.arange(12)) // (2 + i) % 4).astype(np.uint8)
            extra = {"keep_mask": np.zeros((3, 3), bool) if i == 5 else rng.random((3, 3)) < 0.7} if masked else {}
            w.add_sample(m, cluster=i % 2, label=0, **extra)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("batch")
    return {f"{e}-{m}": _write(d / f"{e}-{m}.dcq", e, m).read_bytes()
            for e in ("zstd", "ctx") for m in (False, True)}


def _payload_range(path: Path) -> tuple[int, int]:
    with h5py.File(path, "r") as h5:
        ds = h5["payload"]
        return int(ds.id.get_offset()), int(ds.shape[0])


def _outcome(fn):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn())
    except PayloadError as exc:
        return ("err", str(exc))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["zstd-False", "zstd-True", "ctx-False", "ctx-True"]), st.integers(0, 10**6),
       st.integers(1, 255))
def test_damaged_payload_batch_agrees_with_single(files: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory,
                                                  name: str, where: int, xor: int) -> None:
    path = tmp_path_factory.mktemp("dmg") / f"{name}.dcq"
    data = bytearray(files[name])
    path.write_bytes(bytes(data))
    start, size = _payload_range(path)
    data[start + where % size] ^= xor
    path.write_bytes(bytes(data))
    with DCQFile(path) as f:
        singles = [_outcome(lambda i=i: f.packed(i).tobytes()) for i in range(len(f))]
        idx = np.arange(len(f))
        batch = _outcome(lambda: f.packed_batch(idx))
        if all(s[0] == "ok" for s in singles):
            assert batch[0] == "ok"
            blob, offs = batch[1]
            for i, s in enumerate(singles):
                assert blob[offs[i]:offs[i + 1]].tobytes() == s[1]
        else:
            assert batch[0] == "err" and "sample" in batch[1]
        pixels = _outcome(lambda: f.decode_batch(idx, "hwc"))
        assert (pixels[0] == "ok") == all(s[0] == "ok" for s in singles)


@pytest.mark.parametrize("name", ["zstd-False", "zstd-True", "ctx-False", "ctx-True"])
def test_batches_of_any_size(files: dict[str, bytes], tmp_path: Path, name: str) -> None:
    path = tmp_path / "f.dcq"
    path.write_bytes(files[name])
    with DCQFile(path) as f:
        for idx in ([], [5], [5, 5, 2], list(range(8))[::-1]):
            data, offs = f.packed_batch(idx)
            assert offs.size == len(idx) + 1
            for b, i in enumerate(idx):
                assert data[offs[b]:offs[b + 1]].tobytes() == f.packed(i).tobytes()
            out = f.decode_batch(idx, "chw")
            for b, i in enumerate(idx):
                np.testing.assert_array_equal(out[b], f.decode(i, "chw"))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=64), st.integers(0, 70))
def test_frame_walk_kernel_matches_reference(frame: bytes, expected: int) -> None:
    data = np.frombuffer(frame, np.uint8)
    b, status = check_frames(data, np.zeros(1, np.int64), np.array([len(frame)]), np.array([expected]))
    assert (status if b >= 0 else 0) == frame_walk_ref(frame, expected)


def test_frame_walk_accepts_real_frames_only_whole() -> None:
    import zstandard
    for level, content in ((1, b""), (3, bytes(range(200)) * 3), (19, b"\0" * 5000)):
        for checksum in (False, True):
            fr = zstandard.ZstdCompressor(level=level, write_content_size=True,
                                          write_checksum=checksum).compress(content)
            assert frame_walk_ref(fr, len(content)) == 0
            assert frame_walk_ref(fr + b"\0", len(content)) != 0
            assert frame_walk_ref(fr[:-1], len(content)) != 0
            assert frame_walk_ref(fr, len(content) + 1) != 0


def test_crc_checked_batches(files: dict[str, bytes], tmp_path: Path) -> None:
    path = tmp_path / "c.dcq"
    path.write_bytes(files["ctx-False"])
    with h5py.File(path, "r+") as h5:
        crcs = h5["samples/crc32"][()]
        crcs[3] ^= 1
        h5["samples/crc32"][...] = crcs
        h5["samples/crc32"].attrs["crc32"] = np.uint32(zlib.crc32(crcs.tobytes()))
    with DCQFile(path, check_crc=True) as f:
        f.decode_batch([0, 1, 2])
        with pytest.raises(DcqError, match="sample 3"):
            f.decode_batch([0, 3])
