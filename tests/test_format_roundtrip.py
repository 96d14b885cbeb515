"""DCQWriter -> DCQFile round trips (Hypothesis), batch/into decoding, pickling, the storage
report, writer determinism and the info/verify/export command line."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dcqformat import DCQFile, DCQWriter
from dcqformat.cli import main as cli_main
from dcqformat.errors import InvalidArgumentError

SIZES = st.one_of(st.tuples(st.integers(1, 9), st.integers(1, 9)),
                  st.sampled_from([(1, 1), (1, 300), (300, 1), (8, 8), (3, 5)]))


@st.composite
def datasets(draw: st.DrawFn) -> dict[str, Any]:
    bits = draw(st.integers(1, 8))
    k = draw(st.one_of(st.just(1 << bits), st.integers(1, 1 << bits)))
    n = draw(st.integers(0, 6))
    sizes = draw(st.lists(SIZES, min_size=n, max_size=n))
    if n and draw(st.booleans()):  # uniform sizes half of the time
        sizes = [sizes[0]] * n
    channels = draw(st.sampled_from([1, 3]))
    clusters = draw(st.integers(1, 3))
    n_classes = draw(st.integers(1, 3))
    fill = draw(st.sampled_from(["random", "constant", "max"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    maps = []
    for h, w in sizes:
        if fill == "random":
            maps.append(rng.integers(0, k, size=(h, w), dtype=np.uint8))
        else:
            maps.append(np.full((h, w), 0 if fill == "constant" else k - 1, dtype=np.uint8))
    return {
        "bits": bits, "k": k, "channels": channels, "maps": maps,
        "palettes": rng.integers(0, 256, size=(clusters, k, channels), dtype=np.uint8),
        "clusters": rng.integers(0, clusters, size=n).tolist(),
        "labels": rng.integers(0, n_classes, size=n).tolist(),
        "classes": [f"class {c}" for c in range(n_classes)],
        "encoding": draw(st.sampled_from(["raw", "zstd", "auto"])),
        "sources": draw(st.booleans()),
    }


def write(path: Path, d: dict[str, Any], encoding: str | None = None) -> DCQWriter:
    with DCQWriter(path, bits=d["bits"], channels=d["channels"], classes=d["classes"],
                   palette_size=d["k"], payload_encoding=encoding or d["encoding"]) as w:
        w.set_palettes(d["palettes"])
        w.set_provenance({"test": "roundtrip"})
        for i, m in enumerate(d["maps"]):
            extra = {"source_path": f"dir/{i}.png", "source_size": 100 + i} if d["sources"] else {}
            assert w.add_sample(m, cluster=d["clusters"][i], label=d["labels"][i], **extra) == i
        if d["maps"]:
            n = len(d["maps"])
            w.add_selection("sel", np.arange(n)[::-1], np.arange(0, n, 2), {"method": "test"})
    return w


def expected(d: dict[str, Any], i: int) -> np.ndarray:
    return d["palettes"][d["clusters"][i]][d["maps"][i]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=datasets())
def test_roundtrip(d: dict[str, Any], independent_reader: ModuleType) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.dcq"
        w = write(path, d)
        assert sorted(os.listdir(tmp)) == ["x.dcq"], "no temporary files may stay behind"
        n = len(d["maps"])
        with DCQFile(path) as f:
            assert len(f) == n
            assert (f.bits, f.channels, f.palette_size) == (d["bits"], d["channels"], d["k"])
            assert f.classes == d["classes"]
            assert f.payload_encoding == w.payload_encoding
            if d["encoding"] != "auto":
                assert f.payload_encoding == d["encoding"]
            np.testing.assert_array_equal(f.palettes, d["palettes"])
            np.testing.assert_array_equal(f.labels, d["labels"])
            np.testing.assert_array_equal(f.clusters, d["clusters"])
            assert f.heights.tolist() == [m.shape[0] for m in d["maps"]]
            assert f.widths.tolist() == [m.shape[1] for m in d["maps"]]
            assert f.provenance["test"] == "roundtrip"
            if d["sources"] and n:
                assert f.source_paths == [f"dir/{i}.png" for i in range(n)]
                assert f.source_sizes.tolist() == [100 + i for i in range(n)]
            for i in range(n):
                pixels, label = f[i]
                np.testing.assert_array_equal(pixels, expected(d, i))
                assert label == d["labels"][i]
                np.testing.assert_array_equal(f.decode(i, "chw"), expected(d, i).transpose(2, 0, 1))
            if n:
                np.testing.assert_array_equal(f.selection_indices("sel"), np.arange(0, n, 2))
            f.verify()
            _check_batches(f, d)
            _check_report(f, d, path)
        # The independent reader (spec only) decodes the reference writer's output too.
        r = independent_reader.IndependentReader(path)
        r.verify()
        for i in range(n):
            np.testing.assert_array_equal(r.sample(i)[0], expected(d, i))


def _check_batches(f: DCQFile, d: dict[str, Any]) -> None:
    n = len(f)
    for layout in ("hwc", "chw"):
        order = list(range(n))[::-1] + list(range(n))  # repeats and any order
        batch = f.decode_batch(order, layout=layout)
        if not order:
            assert len(batch) == 0
            continue
        uniform = len({m.shape for m in d["maps"]}) == 1
        assert isinstance(batch, np.ndarray) == uniform
        for b, i in enumerate(order):
            np.testing.assert_array_equal(batch[b], f.decode(i, layout))


def _check_report(f: DCQFile, d: dict[str, Any], path: Path) -> None:
    info = f.info()
    assert info["file_bytes"] == path.stat().st_size
    assert info["container_overhead"] >= 0
    assert sum(info["sections"].values()) + info["container_overhead"] == info["file_bytes"]
    packed = sum((m.size * d["bits"] + 7) // 8 for m in d["maps"])
    assert info["payload_bytes_bitpacked"] == packed
    assert info["sections"]["/payload"] == info["payload_bytes"]
    if f.payload_encoding == "raw":
        assert info["payload_bytes"] == packed
    assert info["samples"] == len(d["maps"])


@settings(max_examples=15, deadline=None)
@given(d=datasets())
def test_auto_picks_the_smaller_payload(d: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {}
        for enc in ("raw", "zstd", "ctx"):
            write(Path(tmp) / f"{enc}.dcq", d, enc)
            with DCQFile(Path(tmp) / f"{enc}.dcq") as f:
                sizes[enc] = f.info()["payload_bytes"]
        w = write(Path(tmp) / "auto.dcq", d, "auto")
        assert {k: w.payload_sizes[k] for k in ("raw", "zstd")} == {k: sizes[k] for k in ("raw", "zstd")}
        assert w.payload_sizes["ctx"] > sizes["ctx"]  # the ctx cost adds its models' bytes
        order = ("raw", "zstd", "ctx")  # ties: the simpler encoding
        smaller = min(order, key=lambda e: (w.payload_sizes[e], order.index(e)))
        assert w.payload_encoding == smaller
        with DCQFile(Path(tmp) / "auto.dcq") as f:
            assert f.payload_encoding == smaller
            assert f.info()["payload_bytes"] == sizes[smaller]


def test_auto_chooses_zstd_for_compressible_and_raw_for_noise(write_dcq: Any) -> None:
    flat = [np.zeros((64, 64), np.uint8)] * 3
    noise = [np.random.default_rng(1).integers(0, 256, (2, 2), dtype=np.uint8)]
    with DCQFile(write_dcq(bits=8, palette_size=256, maps=flat, encoding="auto")) as f:
        assert f.payload_encoding == "zstd"
    with DCQFile(write_dcq(bits=8, palette_size=256, maps=noise, clusters=1, encoding="auto")) as f:
        assert f.payload_encoding == "raw"


@pytest.mark.parametrize("encoding", ["raw", "zstd", "auto"])
def test_identical_input_gives_identical_bytes(tmp_path: Path, encoding: str, write_dcq: Any) -> None:
    a = write_dcq(encoding=encoding, sources=True, seed=5, name="a.dcq")
    b = write_dcq(encoding=encoding, sources=True, seed=5, name="b.dcq")
    assert a.read_bytes() == b.read_bytes()


def test_empty_file_roundtrip(write_dcq: Any, independent_reader: ModuleType) -> None:
    path = write_dcq(maps=[], encoding="auto")
    with DCQFile(path) as f:
        assert len(f) == 0 and f.payload_encoding == "raw"
        f.verify()
        assert len(f.decode_batch([])) == 0
        info = f.info()
        assert info["payload_bytes"] == 0
        assert sum(info["sections"].values()) + info["container_overhead"] == info["file_bytes"]
        with pytest.raises(IndexError):
            f[0]
    assert len(independent_reader.IndependentReader(path)) == 0


def test_index_and_argument_errors(write_dcq: Any) -> None:
    with DCQFile(write_dcq()) as f:
        np.testing.assert_array_equal(f[-1][0], f[2][0])
        for bad in (3, -4, 10**20):
            with pytest.raises(IndexError):
                f[bad]
        for bad in ("0", 1.0, None):
            with pytest.raises(InvalidArgumentError):
                f[bad]  # type: ignore[index]
        with pytest.raises(InvalidArgumentError):
            f.decode(0, "whc")
        with pytest.raises(InvalidArgumentError):
            f.decode_batch([0], layout="nchw")
        with pytest.raises(IndexError):
            f.decode_batch([0, 7])


# -- decode_into ------------------------------------------------------------------------
def test_decode_into_good_buffers(write_dcq: Any) -> None:
    for encoding in ("raw", "zstd"):
        with DCQFile(write_dcq(encoding=encoding)) as f:
            want = f[2][0]
            out = np.full((4, 5, 3), 7, np.uint8)
            assert f.decode_into(2, out) is out
            np.testing.assert_array_equal(out, want)
            planar = np.empty((3, 4, 5), np.uint8)
            f.decode_into(2, planar, layout="chw")
            np.testing.assert_array_equal(planar, want.transpose(2, 0, 1))
            flat = np.empty(60, np.uint8)  # any C-contiguous shape of the right size
            f.decode_into(2, flat)
            np.testing.assert_array_equal(flat, want.reshape(-1))


@pytest.mark.parametrize("bad", [
    np.empty((4, 5, 3), np.float32),
    np.empty((4, 5, 3), np.int8),
    np.empty((4, 5, 2), np.uint8),
    np.empty((4, 6, 3), np.uint8),
    np.empty((4, 10, 3), np.uint8)[:, ::2],
    np.empty((3, 5, 4), np.uint8).transpose(2, 1, 0),
    np.empty(0, np.uint8),
], ids=["float32", "int8", "too-small", "too-big", "strided", "fortran", "empty"])
def test_decode_into_bad_buffers(write_dcq: Any, bad: np.ndarray) -> None:
    with DCQFile(write_dcq()) as f:
        before = bad.copy()
        with pytest.raises(InvalidArgumentError):
            f.decode_into(2, bad)
        np.testing.assert_array_equal(bad, before)
        with pytest.raises(InvalidArgumentError):
            f.decode_into(2, np.empty((4, 5, 3), np.uint8), layout="planar")


@pytest.mark.parametrize("kind", ["readonly", "list"])
def test_decode_into_rejects_readonly_and_non_arrays(write_dcq: Any, kind: str) -> None:
    with DCQFile(write_dcq()) as f:
        out: Any = np.zeros((4, 5, 3), np.uint8)
        if kind == "readonly":
            out.setflags(write=False)
        else:
            out = out.tolist()
        with pytest.raises(InvalidArgumentError):
            f.decode_into(2, out)


# -- pickling ---------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["raw", "zstd"])
def test_pickle_roundtrip_reads_the_same(write_dcq: Any, encoding: str) -> None:
    f = DCQFile(write_dcq(encoding=encoding), check_crc=True)
    first = [f[i][0] for i in range(len(f))]  # the payload is now memory-mapped
    g = pickle.loads(pickle.dumps(f))
    assert g.check_crc and len(g) == len(f) and g.classes == f.classes
    for i in range(len(f)):
        np.testing.assert_array_equal(g[i][0], first[i])
    np.testing.assert_array_equal(g.decode_batch([2, 2]), f.decode_batch([2, 2]))
    g.verify()
    f.close()
    g.close()
    np.testing.assert_array_equal(f[0][0], first[0])  # reopens after close


# -- command line ------------------------------------------------------------------------
def test_cli_info(write_dcq: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_dcq(sources=True)
    assert cli_main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert str(path) in text and "where the bytes went" in text
    assert cli_main(["info", "--json", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file_bytes"] == path.stat().st_size
    assert sum(report["sections"].values()) + report["container_overhead"] == report["file_bytes"]


def test_cli_verify_good_and_corrupt(write_dcq: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_dcq()
    assert cli_main(["verify", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    with DCQFile(path) as f:
        start = f.metadata.payload_offset  # flip the first payload byte on disk
    bad = tmp_path / "corrupt.dcq"
    data = bytearray(path.read_bytes())
    data[start] ^= 0x10
    bad.write_bytes(bytes(data))
    assert cli_main(["verify", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "CRC" in err
    assert cli_main(["verify", str(tmp_path / "missing.dcq")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_export_writes_class_folders(write_dcq: Any, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    for channels in (1, 3):
        path = write_dcq(channels=channels, classes=["cat", "dog/../x"], name=f"e{channels}.dcq")
        out = tmp_path / f"export{channels}"
        assert cli_main(["export", str(path), str(out)]) == 0
        with DCQFile(path) as f:
            files = sorted(out.rglob("*.png"))
            assert len(files) == len(f)
            assert {p.parent.parent for p in files} == {out}  # no path escapes
            for p in files:
                i = int(p.stem)
                img = np.asarray(Image.open(p))
                want = f[i][0]
                np.testing.assert_array_equal(img.reshape(want.shape), want)
            folders = {p.parent.name for p in files}
            assert len(folders) == len({f.labels[int(p.stem)] for p in files})
        assert cli_main(["export", str(path), str(out)]) == 2  # never overwrites
        assert "exists" in capsys.readouterr().err
