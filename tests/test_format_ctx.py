"""ctx files (spec §14) through the public API: writing, reading every way (index maps, packed,
pixels, batches), patch masks, per-cluster models, auto's choice, the independent reader,
hostile files, pickling, merge and info."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

import h5py
import numpy as np
import pytest

from dcqformat import DCQFile, DCQWriter
from dcqformat.errors import InvalidArgumentError, PayloadError, StructureError
from dcqformat.format.layout import PAYLOAD_ENCODINGS, STORED_ENCODINGS


def smooth_maps(n: int, k: int, seed: int = 0, shapes: list[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """Index maps of flat regions with a little noise (what the context model is good at)."""
    rng = np.random.default_rng(seed)
    shapes = shapes or [(int(rng.integers(1, 30)), int(rng.integers(1, 30))) for _ in range(n)]
    maps = []
    for h, w in shapes:
        yy, xx = np.mgrid[0:h, 0:w]
        m = ((yy // max(1, h // 3) + xx // max(1, w // 2)) % k).astype(np.uint8)
        noise = rng.random((h, w)) < 0.05
        m[noise] = rng.integers(0, k, size=int(noise.sum()))
        maps.append(m)
    return maps


def write(path: Path, maps: list[np.ndarray], *, bits: int = 2, k: int | None = None,
          encoding: str = "ctx", clusters: int = 3, channels: int = 3, **kw: Any) -> DCQWriter:
    k = k or (1 << bits)
    rng = np.random.default_rng(1)
    with DCQWriter(path, bits=bits, channels=channels, classes=["a", "b"], palette_size=k,
                   payload_encoding=encoding, **kw) as w:
        w.set_palettes(rng.integers(0, 256, size=(clusters, k, channels), dtype=np.uint8))
        for i, m in enumerate(maps):
            extra = {}
            if "patch_size" in kw:
                p = kw["patch_size"]
                extra["keep_mask"] = rng.random((-(-m.shape[0] // p), -(-m.shape[1] // p))) < 0.6
            w.add_sample(m, cluster=i % clusters, label=i % 2, **extra)
    return w


def test_encodings_constant() -> None:
    assert STORED_ENCODINGS == ("raw", "zstd", "ctx") and PAYLOAD_ENCODINGS == (*STORED_ENCODINGS, "auto")
    with pytest.raises(InvalidArgumentError, match="ctx_models"):
        DCQWriter("x.dcq", 2, 3, ["a"], payload_encoding="ctx", ctx_models="sample")


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_ctx_round_trip_every_read_path(tmp_path: Path, bits: int, independent_reader: ModuleType) -> None:
    k = (1 << bits) - (1 if bits == 3 else 0)
    maps = smooth_maps(12, k, seed=bits) + [np.full((1, 1), k - 1, np.uint8), np.zeros((1, 257), np.uint8)]
    path = tmp_path / "c.dcq"
    write(path, maps, bits=bits, k=k)
    with DCQFile(path, check_crc=True) as f:
        assert f.payload_encoding == "ctx" and f.version == (1, 2)
        for i, m in enumerate(maps):
            np.testing.assert_array_equal(f.index_map(i), m)
            pal = f.palettes[int(f.clusters[i])]
            np.testing.assert_array_equal(f[i][0], pal[m])
            np.testing.assert_array_equal(f.decode(i, "chw"), pal[m].transpose(2, 0, 1))
            assert f.packed(i).size == (m.size * bits + 7) // 8
        idx = np.array([3, 0, 13, 5, 5])
        data, offs = f.packed_batch(idx)
        for b, i in enumerate(idx):
            np.testing.assert_array_equal(data[offs[b]:offs[b + 1]], f.packed(int(i)))
        for layout in ("hwc", "chw"):
            batch = f.decode_batch(idx, layout)
            for b, i in enumerate(idx):
                np.testing.assert_array_equal(batch[b], f.decode(int(i), layout))
        f.verify()
    r = independent_reader.IndependentReader(path)
    r.verify()
    with DCQFile(path) as f:
        for i in range(len(f)):
            np.testing.assert_array_equal(r.sample(i)[0], f[i][0])


def test_uniform_batches_stack_and_palette_override(tmp_path: Path) -> None:
    maps = smooth_maps(8, 4, shapes=[(9, 11)] * 8)
    path = tmp_path / "u.dcq"
    write(path, maps)
    with DCQFile(path) as f:
        batch = f.decode_batch(np.arange(8), "chw")
        assert isinstance(batch, np.ndarray) and batch.shape == (8, 3, 9, 11)
        grey = np.array([[0, 0, 0], [85, 85, 85], [170, 170, 170], [255, 255, 255]], np.uint8)
        out = np.empty((9, 11, 3), np.uint8)
        f.decode_into(2, out, palette=grey)
        np.testing.assert_array_equal(out, grey[maps[2]])
        with pytest.raises(PayloadError, match="sample 2"):  # a palette too small for the indices
            f.decode_into(2, out, palette=grey[:2])


def test_masked_ctx_file(tmp_path: Path, independent_reader: ModuleType) -> None:
    maps = smooth_maps(10, 4, seed=4)
    plain, masked = tmp_path / "p.dcq", tmp_path / "m.dcq"
    write(plain, maps, encoding="raw", patch_size=4)
    write(masked, maps, encoding="ctx", patch_size=4)
    with DCQFile(plain) as a, DCQFile(masked) as b:
        assert b.version == (1, 2) and b.patch_size == 4
        for i in range(len(maps)):
            np.testing.assert_array_equal(a.index_map(i), b.index_map(i))
            np.testing.assert_array_equal(a[i][0], b[i][0])
            np.testing.assert_array_equal(a.packed(i), b.packed(i))
        np.testing.assert_array_equal(np.stack(a.decode_batch(range(10), "hwc")[:1]),
                                      np.stack(b.decode_batch(range(10), "hwc")[:1]))
        b.verify()
    independent_reader.IndependentReader(masked).verify()


def test_cluster_models_and_auto_choice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # two clusters with very different statistics: flat maps vs noise
    maps = [np.zeros((16, 16), np.uint8) if i % 2 else rng.integers(0, 4, (16, 16), dtype=np.uint8)
            for i in range(40)]
    w = write(tmp_path / "c.dcq", maps, clusters=2, ctx_models="cluster")
    with DCQFile(tmp_path / "c.dcq") as f:
        assert f.metadata.ctx.kind == "cluster" and f.metadata.ctx.model.num_models == 2
        for i, m in enumerate(maps):
            np.testing.assert_array_equal(f.index_map(i), m)
    assert set(w.ctx_models) == {"file", "cluster"}
    w = write(tmp_path / "f.dcq", maps, clusters=2, ctx_models="file")
    with DCQFile(tmp_path / "f.dcq") as f:
        assert f.metadata.ctx.kind == "file"
    w = write(tmp_path / "a.dcq", smooth_maps(150, 4, shapes=[(24, 24)] * 150), encoding="auto")
    assert w.payload_encoding == "ctx"
    assert w.payload_sizes["ctx"] < min(w.payload_sizes["raw"], w.payload_sizes["zstd"])


def test_auto_keeps_raw_when_ctx_does_not_pay(tmp_path: Path) -> None:
    noise = [np.random.default_rng(1).integers(0, 256, (2, 2), dtype=np.uint8)]
    w = write(tmp_path / "n.dcq", noise, bits=8, clusters=1, encoding="auto")
    assert w.payload_encoding == "raw"  # the model would cost more than it saves


def test_empty_file_and_all_dropped_samples(tmp_path: Path) -> None:
    write(tmp_path / "e.dcq", [])
    with DCQFile(tmp_path / "e.dcq") as f:
        assert len(f) == 0 and f.payload_encoding == "ctx"
        f.verify()
    rng = np.random.default_rng(2)
    path = tmp_path / "d.dcq"
    with DCQWriter(path, bits=2, channels=1, classes=["a"], payload_encoding="ctx", patch_size=2) as w:
        w.set_palettes(rng.integers(0, 256, (1, 4, 1), dtype=np.uint8))
        w.add_sample(rng.integers(0, 4, (4, 4), dtype=np.uint8), 0, 0, keep_mask=np.zeros((2, 2), bool))
        w.add_sample(rng.integers(0, 4, (4, 4), dtype=np.uint8), 0, 0)
    with DCQFile(path) as f:
        assert int(f.metadata.length[0]) == 4  # §14.4: 00 00 80 00
        f.verify()


def test_pickled_reader_decodes(tmp_path: Path) -> None:
    maps = smooth_maps(5, 4)
    write(tmp_path / "p.dcq", maps)
    with DCQFile(tmp_path / "p.dcq") as f:
        f[0]
        g = pickle.loads(pickle.dumps(f))
        np.testing.assert_array_equal(g.index_map(3), maps[3])


def _edit_stream(path: Path, i: int, fn: Any) -> None:
    import zlib
    with h5py.File(path, "r+") as h5:
        off, ln = int(h5["samples/offset"][i]), int(h5["samples/length"][i])
        payload = h5["payload"][()]
        new = np.frombuffer(fn(payload[off:off + ln].tobytes()), np.uint8)
        assert new.size == ln
        payload[off:off + ln] = new
        h5["payload"][...] = payload
        h5["payload"].attrs["crc32"] = np.uint32(zlib.crc32(payload.tobytes()))
        crcs = h5["samples/crc32"][()]
        crcs[i] = zlib.crc32(new.tobytes())
        h5["samples/crc32"][...] = crcs
        h5["samples/crc32"].attrs["crc32"] = np.uint32(zlib.crc32(crcs.tobytes()))


def test_corrupt_stream_is_a_payload_error_naming_the_sample(tmp_path: Path) -> None:
    maps = smooth_maps(6, 4, seed=9, shapes=[(20, 20)] * 6)
    path = tmp_path / "x.dcq"
    write(path, maps)
    _edit_stream(path, 4, lambda b: b[:4] + bytes(len(b) - 4))  # zeros after the state
    with DCQFile(path) as f:
        for i in (0, 1, 2, 3, 5):
            f[i]
        for call in (lambda: f[4], lambda: f.index_map(4), lambda: f.packed(4),
                     lambda: f.decode_batch([0, 4]), lambda: f.packed_batch([1, 4]), f.verify):
            with pytest.raises(PayloadError, match=r"x\.dcq: sample 4"):
                call()


def test_hostile_model_rows_are_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "m.dcq"
    write(path, smooth_maps(4, 4))
    import zlib
    with h5py.File(path, "r+") as h5:
        freq = h5["ctx/freq"][()]
        freq[0] = 60000  # the row no longer sums to 4096
        del h5["ctx/freq"]
        ds = h5.create_dataset("ctx/freq", data=freq)
        ds.attrs["crc32"] = np.uint32(zlib.crc32(freq.tobytes()))
    with pytest.raises(StructureError, match="/ctx"):
        DCQFile(path)


def test_writer_fits_from_histograms_not_maps(tmp_path: Path) -> None:
    """The writer keeps no index map: what it holds per sample is a few metadata words, and
    its ctx state is the histogram of fixed size, however many samples were added."""
    rng = np.random.default_rng(0)
    with DCQWriter(tmp_path / "s.dcq", bits=2, channels=1, classes=["a"], payload_encoding="ctx") as w:
        w.set_palettes(rng.integers(0, 256, (1, 4, 1), dtype=np.uint8))
        for _ in range(50):
            w.add_sample(rng.integers(0, 4, (32, 32), dtype=np.uint8), 0, 0)
        fitter = w._fitter  # noqa: SLF001 (the test looks inside on purpose)
        assert fitter is not None and fitter.samples == 50
        held = fitter.file_counts.nbytes + fitter.cluster_counts.nbytes
        assert held <= 2 * 1024 * 4 * 8  # counts only: not 50 x 1024 pixels
    with DCQFile(tmp_path / "s.dcq") as f:
        f.verify()


def test_merge_of_ctx_shards_refits_the_model(tmp_path: Path) -> None:
    from dcqformat.format.merge import merge_shards
    maps = smooth_maps(9, 4, seed=3)
    palettes = np.random.default_rng(5).integers(0, 256, size=(2, 4, 3), dtype=np.uint8)
    shards = []
    for j, part in enumerate((range(0, 4), range(4, 9))):
        p = tmp_path / f"s{j}.dcq"
        with DCQWriter(p, bits=2, channels=3, classes=["a", "b"], payload_encoding="ctx") as w:
            w.set_palettes(palettes)
            for i in part:
                w.add_sample(maps[i], cluster=i % 2, label=i % 2)
            w.set_provenance({"parameters": {"payload_encoding": "ctx"}, "shard": {
                "index": j, "count": 2, "positions": [[part.start, part.stop]], "images": len(part),
                "raw_pixel_bytes": 0, "source_bytes": 0, "psnr_sum": 0.0, "psnr_min": 0.0,
                "skipped_positions": []}})
        shards.append(p)
    out = tmp_path / "merged.dcq"
    merge_shards(shards[::-1], out)
    with DCQFile(out) as f:
        assert f.payload_encoding == "ctx" and len(f) == 9
        for i, m in enumerate(maps):
            np.testing.assert_array_equal(f.index_map(i), m)
        f.verify()


def test_info_reports_ctx_model_and_candidates(tmp_path: Path) -> None:
    from dcqformat.format.info import format_report
    path = tmp_path / "i.dcq"
    write(path, smooth_maps(20, 4))
    with DCQFile(path) as f:
        r = f.info()
    c = r["ctx"]
    assert c["models"] in ("file", "cluster") and c["model_bytes"] > 0
    assert c["stream_bytes"] == r["payload_bytes"]
    assert {"raw", "zstd", "ctx", "ctx_models", "measured_on"} == set(r["encoding_costs"])
    assert r["encoding_costs"]["ctx"] == r["payload_bytes"] + c["model_bytes"]
    text = format_report(r)
    assert "ctx models" in text and "raw / zstd / ctx" in text


@pytest.mark.parametrize("encoding", ["ctx", "zstd"])
def test_packed_cache_gives_the_same_pixels(tmp_path: Path, encoding: str) -> None:
    maps = smooth_maps(10, 4, seed=6, shapes=[(12, 10)] * 10)
    path = tmp_path / "c.dcq"
    write(path, maps, encoding=encoding)
    with DCQFile(path) as plain, DCQFile(path) as cached:
        assert cached.enable_cache() is cached
        cache = cached._codec.cache  # noqa: SLF001 (looking inside on purpose)
        assert cache is not None and not cache.filled.any()
        np.testing.assert_array_equal(cached[3][0], plain[3][0])  # first read fills
        assert cache.filled.tolist() == [i == 3 for i in range(10)]
        idx = np.array([3, 1, 1, 7])
        np.testing.assert_array_equal(cached.decode_batch(idx, "chw"), plain.decode_batch(idx, "chw"))
        assert cache.filled.sum() == 3
        data, offs = cached.packed_batch(idx)
        ref, ref_offs = plain.packed_batch(idx)
        np.testing.assert_array_equal(data, ref)
        np.testing.assert_array_equal(offs, ref_offs)
        cached.fill_cache(batch=4)
        assert cache.filled.all() and cache.nbytes == sum((m.size * 2 + 7) // 8 for m in maps)
        for i in range(10):  # now served from RAM, the payload untouched
            np.testing.assert_array_equal(cached.index_map(i), maps[i])
            np.testing.assert_array_equal(cached.packed(i), plain.packed(i))
        clone = pickle.loads(pickle.dumps(cached))
        assert not clone._codec.cache.filled.any()  # noqa: SLF001
        np.testing.assert_array_equal(clone[5][0], plain[5][0])


def test_cache_is_a_no_op_for_raw_files(tmp_path: Path) -> None:
    write(tmp_path / "r.dcq", smooth_maps(3, 4), encoding="raw")
    with DCQFile(tmp_path / "r.dcq") as f:
        f.fill_cache()
        assert f._codec.cache is None  # noqa: SLF001


def test_dataset_cache_decoded(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from dcqformat.torch import DCQDataset
    maps = smooth_maps(6, 4, seed=8, shapes=[(8, 9)] * 6)
    write(tmp_path / "d.dcq", maps)
    plain = DCQDataset(tmp_path / "d.dcq")
    cached = DCQDataset(tmp_path / "d.dcq", cache_decoded=True).fill_cache()
    cache = cached.files[0]._codec.cache  # noqa: SLF001
    assert cache is not None and cache.filled.all()
    for i in range(6):
        assert (plain[i][0] == cached[i][0]).all()


def test_declared_model_size_is_checked_before_reading(tmp_path: Path) -> None:
    """A /ctx/rows that declares more rows than 1024 x models is refused from its shape."""
    path = tmp_path / "big.dcq"
    write(path, smooth_maps(3, 4))
    with h5py.File(path, "r+") as h5:
        del h5["ctx/rows"]
        ds = h5.create_dataset("ctx/rows", shape=(5000,), dtype="<u4", chunks=(5000,),
                               compression="gzip", fillvalue=0)
        ds[...] = np.arange(5000, dtype="<u4")
        ds.attrs["crc32"] = np.uint32(0)
    with pytest.raises(StructureError, match="at most"):
        DCQFile(path)
