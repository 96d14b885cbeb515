"""The golden vectors of spec/vectors/ (spec §12): frozen bytes, expected decodes, expected
failures, checked against dcqformat's reader and against the independent reader in
tools/independent_reader.py (written from the spec alone)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import dcqformat.errors as errors
from dcqformat import DCQFile
from dcqformat.errors import ChecksumMismatchError, DcqError

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
VALID = sorted(p.name[: -len(".dcq")] for p in (VECTORS / "valid").glob("*.dcq"))
INVALID = sorted(p.name[: -len(".dcq.gz")] for p in (VECTORS / "invalid").glob("*.dcq.gz"))
FAMILIES = {"NotADcqFileError", "TruncatedFileError", "UnsupportedVersionError", "StructureError",
            "ChecksumMismatchError", "PayloadError"}


def expected_pixels(name: str) -> tuple[list[np.ndarray], np.ndarray]:
    with np.load(VECTORS / "valid" / f"{name}.expected.npz") as z:
        n = len(z["labels"])
        return [z[f"pixels_{i}"] for i in range(n)], z["labels"]


def expected_failure(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / "invalid" / f"{name}.expected.json").read_text())


# -- the folder itself ------------------------------------------------------------------
def test_vectors_exist() -> None:
    assert len(VALID) >= 5 and len(INVALID) >= 40
    qs = set()
    for name in VALID:
        with DCQFile(VECTORS / "valid" / f"{name}.dcq") as f:
            qs.add(f.bits)
    assert {1, 2, 3, 5, 8} <= qs


def test_sha256sums_match_every_file() -> None:
    """The vectors are never regenerated: their bytes are pinned here."""
    listed: dict[str, str] = {}
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, rel = line.split(maxsplit=1)
        listed[rel.strip()] = digest
    present = {p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*") if p.is_file()}
    present -= {"SHA256SUMS", "README.md"}
    assert present == set(listed), "every vector file must be listed in SHA256SUMS (and vice versa)"
    for rel, digest in sorted(listed.items()):
        assert hashlib.sha256((VECTORS / rel).read_bytes()).hexdigest() == digest, f"{rel} changed"


def test_readme_lists_every_vector() -> None:
    readme = (VECTORS / "README.md").read_text()
    for name in VALID:
        assert f"`valid/{name}.dcq`" in readme
    for name in INVALID:
        assert f"`invalid/{name}.dcq.gz`" in readme


def test_folder_stays_small() -> None:
    # 188 KB for version 1.0's 64 vectors, 260 KB with the 17 patch-mask (1.1) ones, 418 KB
    # with the 9 link/classes/layout ones and the 24 ctx (1.2) ones (each valid file is
    # ~12 KiB of HDF5, mostly padding)
    assert sum(p.stat().st_size for p in VECTORS.rglob("*") if p.is_file()) < 450_000


def test_patch_mask_vectors_exist() -> None:
    """Version 1.1 (§13) is covered: masked files with raw and zstd payloads, an ignored
    /masks group, and a hostile file for each rule of §13's reject list."""
    masked = [n for n in VALID if "_masks_" in n]
    assert {"q2_rgb_raw_masks_p4", "q3_grey_zstd_masks_p3", "q2_grey_raw_masks_ignored"} <= set(masked)
    with DCQFile(VECTORS / "valid" / "q2_rgb_raw_masks_p4.dcq") as f:
        assert f.version == (1, 1) and f.patch_size == 4
        assert f.patch_mask(0).tolist() == [[True, False], [False, True]]  # §13's worked example
    with DCQFile(VECTORS / "valid" / "q2_grey_raw_masks_ignored.dcq") as f:
        assert f.patch_size is None
    assert len([n for n in INVALID if n.startswith("masks_")]) >= 14


def test_ctx_vectors_exist() -> None:
    """Version 1.2 (§14) is covered: q = 1, 2, 4, 8, grey and RGB, mixed sizes, patch masks,
    per-cluster models, the worked example, and hostile streams and models."""
    ctx = {n for n in VALID if "_ctx" in n}
    seen = set()
    for name in ctx:
        with DCQFile(VECTORS / "valid" / f"{name}.dcq") as f:
            assert f.version == (1, 2) and f.payload_encoding == "ctx"
            seen.add((f.bits, f.channels, f.patch_size is not None, f.metadata.ctx.kind))
    assert {b for b, *_ in seen} >= {1, 2, 4, 8} and {c for _, c, *_ in seen} == {1, 3}
    assert any(m for *_, m, _ in seen) and any(k == "cluster" for *_, k in seen)
    with DCQFile(VECTORS / "valid" / "q1_grey_ctx_worked_example.dcq") as f:  # spec §14.6
        assert f.packed(0).tobytes() == bytes([0b100])  # indices 0 0 1
        assert f.metadata.ctx.model.rows.tolist() == [1023]
    invalid = {n for n in INVALID if n.startswith("ctx_")}
    assert {"ctx_stream_truncated", "ctx_stream_trailing_byte", "ctx_zero_freq_for_used_symbol",
            "ctx_freq_sum_overflow"} <= invalid and len(invalid) >= 15


def test_invalid_records_are_well_formed() -> None:
    for name in INVALID:
        rec = expected_failure(name)
        assert rec["error"] in FAMILIES and issubclass(getattr(errors, rec["error"]), DcqError), name
        assert rec["stage"] in ("open", "read", "verify"), name
        assert rec["reason"], name
        assert ("sample" in rec) == (rec["stage"] == "read"), name


def _make_vectors_tool(name: str) -> ModuleType:
    """tools/make_vectors.py loaded as the module ``name``."""
    spec = importlib.util.spec_from_file_location(name, VECTORS.parent.parent / "tools" / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = tool  # dataclasses look their module up there
    spec.loader.exec_module(tool)
    return tool


def test_make_vectors_refuses_to_overwrite(capsys: pytest.CaptureFixture[str]) -> None:
    tool = _make_vectors_tool("_make_vectors")
    before = {p: p.stat().st_mtime_ns for p in VECTORS.rglob("*")}
    assert tool.main(["--out", str(VECTORS)]) == 1
    assert "never regenerated" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # there is no --force
        tool.main(["--out", str(VECTORS), "--force"])
    assert {p: p.stat().st_mtime_ns for p in VECTORS.rglob("*")} == before


def test_append_with_nothing_new_changes_no_byte(tmp_path: Path) -> None:
    tool = _make_vectors_tool("_make_vectors_append")
    copy = tmp_path / "vectors"
    shutil.copytree(VECTORS, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    tool.main(["--out", str(copy), "--append"])
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert [str(p) for p in before if after[p] != before[p]] == []  # the README kept no blank lines


# -- valid vectors ----------------------------------------------------------------------
@pytest.mark.parametrize("name", VALID)
def test_valid_vector_decodes_with_dcqfile(name: str) -> None:
    pixels, labels = expected_pixels(name)
    path = VECTORS / "valid" / f"{name}.dcq"
    for check_crc in (False, True):
        with DCQFile(path, check_crc=check_crc) as f:
            assert len(f) == len(pixels)
            np.testing.assert_array_equal(f.labels, labels)
            for i, want in enumerate(pixels):
                got, label = f[i]
                assert got.dtype == np.uint8 and got.shape == want.shape, (name, i)
                np.testing.assert_array_equal(got, want, err_msg=f"{name} sample {i}")
                assert label == labels[i]
                np.testing.assert_array_equal(f.decode(i, "chw"), want.transpose(2, 0, 1))
            batch = f.decode_batch(range(len(f)), layout="hwc")
            for i, want in enumerate(pixels):
                np.testing.assert_array_equal(batch[i], want)
            f.verify()


@pytest.mark.parametrize("name", VALID)
def test_valid_vector_decodes_with_independent_reader(name: str, independent_reader: ModuleType) -> None:
    pixels, labels = expected_pixels(name)
    path = VECTORS / "valid" / f"{name}.dcq"
    r = independent_reader.IndependentReader(path)
    r.verify()
    with DCQFile(path) as f:
        assert len(r) == len(f) == len(pixels)
        assert r.classes == f.classes
        np.testing.assert_array_equal(r.palettes, f.palettes)
        assert r.source_paths == f.source_paths
        assert set(r.selections) == set(f.selections)
        for sel in r.selections:
            for part in ("ranking", "selected"):
                np.testing.assert_array_equal(r.selections[sel][part], f.selections[sel][part])
        for i, want in enumerate(pixels):
            got, label = r.sample(i)
            np.testing.assert_array_equal(got, want, err_msg=f"{name} sample {i}")
            np.testing.assert_array_equal(got, f[i][0])
            assert label == labels[i] == f[i][1]


# -- invalid vectors --------------------------------------------------------------------
def _raises(exc_type: type[DcqError], path: Path, fn: Any, *args: Any) -> DcqError:
    with pytest.raises(DcqError) as info:
        fn(*args)
    assert type(info.value) is exc_type, f"{path.name}: got {type(info.value).__name__}: {info.value}"
    assert str(path) in str(info.value), f"the message must name the file: {info.value}"
    return info.value


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_fails_as_recorded(name: str, invalid_vector: Any) -> None:
    rec = expected_failure(name)
    want = getattr(errors, rec["error"])
    path = invalid_vector(name)
    if rec["stage"] == "open":
        _raises(want, path, DCQFile, path)
        return
    # Stages "read" and "verify": opening succeeds. With per-read CRC checks on (§10.5),
    # reading fails exactly at the recorded sample; every sample before it reads.
    with DCQFile(path, check_crc=True) as f:
        stop = rec.get("sample", len(f))
        for i in range(stop):
            f[i]
        if rec["stage"] == "read":
            _raises(want, path, f.__getitem__, stop)
        else:
            for i in range(len(f)):
                f[i]
        _raises(want, path, f.verify)
    # The default reader (per-read CRC off) still fails at read for payload damage, and
    # a verifier always finds it.
    with DCQFile(path) as f:
        if rec["stage"] == "read" and want is not ChecksumMismatchError:
            _raises(want, path, f.__getitem__, rec["sample"])
        _raises(want, path, f.verify)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_independent_reader_agrees(name: str, invalid_vector: Any,
                                                 independent_reader: ModuleType) -> None:
    rec = expected_failure(name)
    assert independent_reader.check(invalid_vector(name)) == (rec["error"], rec["stage"])


@pytest.mark.parametrize("name", [n for n in VALID if n.endswith("original_sizes")])
def test_valid_vector_original_sizes(name: str, independent_reader: ModuleType) -> None:
    """§15: both readers report each sample's original size as recorded."""
    with np.load(VECTORS / "valid" / f"{name}.expected.npz") as z:
        want = [tuple(int(v) for v in row) for row in z["original_sizes"]]
    path = VECTORS / "valid" / f"{name}.dcq"
    with DCQFile(path) as f:
        assert [f.original_shape(i)[:2] for i in range(len(f))] == want
        assert f.version == (1, 3)
    assert independent_reader.IndependentReader(path).original_sizes == want
