"""Hostile inputs made on the fly (more variety than the frozen golden vectors). The writer's
behaviour on bad arguments and failures is in test_hostile_files_writer.py."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import zstandard
from attacks.conftest import PEAK_RSS

from dcqformat import DCQFile
from dcqformat.errors import (
    ChecksumMismatchError,
    DcqError,
    NotADcqFileError,
    PayloadError,
    StructureError,
    TruncatedFileError,
    UnsupportedVersionError,
)

VALID = sorted((Path(__file__).resolve().parent.parent / "spec" / "vectors" / "valid").glob("*.dcq"))
STR = h5py.string_dtype("utf-8")
SAMPLE_FIELDS = {"height": "<u4", "width": "<u4", "label": "<u4", "cluster": "<u4",
                 "offset": "<u8", "length": "<u8", "crc32": "<u4"}


def crc(values: Any) -> np.uint32:
    data = values if isinstance(values, bytes) else np.ascontiguousarray(values).tobytes()
    return np.uint32(zlib.crc32(data) & 0xFFFFFFFF)


def exercise(path: Path, *, check_crc: bool = True) -> None:
    """Open, read every sample (one by one and batched) and verify."""
    with DCQFile(path, check_crc=check_crc) as f:
        for i in range(len(f)):
            f[i]
        f.decode_batch(range(len(f)))
        f.verify()


def fails(path: Path, family: type[DcqError] | tuple[type[DcqError], ...], stage: str = "open",
          *, check_crc: bool = True) -> DcqError:
    """Assert ``path`` fails with ``family`` at ``stage`` ("open", "read" or "verify")."""
    reached = "open"
    try:
        with DCQFile(path, check_crc=check_crc) as f:
            reached = "read"
            for i in range(len(f)):
                f[i]
            reached = "verify"
            f.verify()
    except DcqError as exc:
        assert isinstance(exc, family), f"{type(exc).__name__} at {reached}: {exc}"
        assert reached == stage, f"failed at {reached}, expected {stage}: {exc}"
        assert str(path) in str(exc), f"the message must name the file: {exc}"
        return exc
    raise AssertionError(f"{path.name} was accepted")


# -- byte-level damage -------------------------------------------------------------------
CUTS = [1, 7, 8, 20, 47, 48, 100, 512, 1000, 2048, 4096, 0.33, 0.5, 0.8, -100, -1]


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize("vector", VALID, ids=[p.stem for p in VALID])
def test_truncated_anywhere(tmp_path: Path, vector: Path, cut: float) -> None:
    data = vector.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut if cut > 0 else len(data) + cut)
    path = tmp_path / "cut.dcq"
    path.write_bytes(data[:n])
    # Inside the 48-byte superblock the EOF address itself is cut off: "cannot be opened"
    # (NotADcqFileError) or truncated are both fair; from there on it is truncation.
    fails(path, TruncatedFileError if n >= 48 else (TruncatedFileError, NotADcqFileError))


@pytest.mark.parametrize("size", [1, 7, 8, 9, 100, 5000])
def test_random_bytes(tmp_path: Path, size: int) -> None:
    rng = np.random.default_rng(size)
    path = tmp_path / "random.dcq"
    path.write_bytes(b"\x00" + rng.bytes(size - 1))
    fails(path, NotADcqFileError)


@pytest.mark.parametrize("size", [0, 1, 40, 500, 5000])
def test_hdf5_signature_then_garbage(tmp_path: Path, size: int) -> None:
    path = tmp_path / "garbage.dcq"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + np.random.default_rng(size).bytes(size))
    fails(path, (NotADcqFileError, TruncatedFileError))


def test_missing_directory_fifo_and_loop(tmp_path: Path) -> None:
    fails(tmp_path / "absent.dcq", NotADcqFileError)
    fails(tmp_path, NotADcqFileError)
    empty = tmp_path / "empty.dcq"
    empty.write_bytes(b"")
    fails(empty, NotADcqFileError)
    if hasattr(os, "mkfifo"):  # must not block waiting for a writer
        os.mkfifo(tmp_path / "fifo.dcq")
        fails(tmp_path / "fifo.dcq", NotADcqFileError)
    (tmp_path / "loop.dcq").symlink_to(tmp_path / "loop.dcq")
    fails(tmp_path / "loop.dcq", NotADcqFileError)


def test_trailing_bytes_after_the_hdf5_file_are_tolerated(tmp_path: Path) -> None:
    """A file longer than its HDF5 end-of-file address is not truncated (§10.2)."""
    path = tmp_path / "longer.dcq"
    path.write_bytes(VALID[0].read_bytes() + b"\0" * 100 + b"trailing")
    exercise(path)


def test_unusual_but_valid_paths(tmp_path: Path) -> None:
    folder = tmp_path / "a dir with spaces ünï\u00e7ode"
    folder.mkdir()
    shutil.copyfile(VALID[0], folder / "x y.dcq")
    exercise(folder / "x y.dcq")
    (tmp_path / "link.dcq").symlink_to(folder / "x y.dcq")
    exercise(tmp_path / "link.dcq")


# -- edits with h5py --------------------------------------------------------------------
def edited(write_dcq: Callable[..., Path], fn: Callable[[h5py.File], None], **kw: Any) -> Path:
    path = write_dcq(**kw)
    with h5py.File(path, "r+") as h5:
        fn(h5)
    return path


def set_attr(name: str, value: Any, **kw: Any) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        if value is None:
            del h5.attrs[name]
        else:
            h5.attrs.create(name, value, **kw)
    return fn


def set_field(path: str, i: int, value: int) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] = value
        h5[path][...] = arr
        h5[path].attrs["crc32"] = crc(arr)
    return fn


def replace(path: str, values: Any, *, fix_crc: bool = True, **kw: Any) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        old = h5[path].attrs.get("crc32") if path in h5 else None
        if path in h5:
            del h5[path]
        ds = h5.create_dataset(path, data=values, **kw)
        if fix_crc:
            ds.attrs["crc32"] = crc(np.asarray(values))
        elif old is not None:
            ds.attrs["crc32"] = old
    return fn


def drop(path: str) -> Callable[[h5py.File], None]:
    def fn(h5: h5py.File) -> None:
        del h5[path]
    return fn


def stored(h5: h5py.File) -> list[bytes]:
    payload = h5["payload"][()].tobytes()
    return [payload[int(o):int(o) + int(n)]
            for o, n in zip(h5["samples/offset"][()], h5["samples/length"][()], strict=True)]


def restore(h5: h5py.File, parts: list[bytes]) -> None:
    """Rewrite the payload from per-sample stored bytes with every checksum correct."""
    blob = b"".join(parts)
    lengths = np.array([len(p) for p in parts], "<u8")
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("<u8")
    replace("payload", np.frombuffer(blob, np.uint8))(h5)
    for name, values in (("offset", offsets), ("length", lengths),
                         ("crc32", np.array([zlib.crc32(p) for p in parts], "<u4"))):
        set_field_all(h5, f"samples/{name}", values)


def set_field_all(h5: h5py.File, path: str, values: np.ndarray) -> None:
    h5[path][...] = values
    h5[path].attrs["crc32"] = crc(values.astype(h5[path].dtype))


def zstd_sample(fn: Callable[[bytes, int], bytes], i: int = 2) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        parts = stored(h5)
        packed = zstandard.ZstdDecompressor().decompress(parts[i])
        parts[i] = fn(packed, len(packed))
        restore(h5, parts)
    return edit


def raw_block_frame(content: bytes, declared: int | None, dict_id: int | None = None) -> bytes:
    fhd = (0b11000000 if declared is not None else 0) | (1 if dict_id is not None else 0)
    head = struct.pack("<I", 0xFD2FB528) + bytes([fhd, 0x58])
    head += bytes([dict_id]) if dict_id is not None else b""
    head += struct.pack("<Q", declared) if declared is not None else b""
    return head + struct.pack("<I", (len(content) << 3) | 1)[:3] + content


def bad_checksum_frame(packed: bytes, n: int) -> bytes:
    frame = bytearray(zstandard.ZstdCompressor(write_checksum=True).compress(packed))
    frame[-1] ^= 0xFF
    return bytes(frame)


ROOT_ATTRS = ["dcq_format", "dcq_version", "must_understand", "bits", "channels", "palette_size",
              "num_samples", "num_clusters", "num_classes", "payload_encoding"]

CASES: dict[str, tuple[Callable[[h5py.File], None], dict[str, Any], Any, str]] = {
    # name: (edit, write_dcq kwargs, expected family, stage)
    "version_0_9": (set_attr("dcq_version", np.array([0, 9], "<u4")), {}, UnsupportedVersionError, "open"),
    "version_2_0_i8": (set_attr("dcq_version", np.array([2, 0], "<i8")), {}, UnsupportedVersionError, "open"),
    "version_three_ints": (set_attr("dcq_version", np.array([1, 0, 0], "<u4")), {}, StructureError, "open"),
    "version_floats": (set_attr("dcq_version", np.array([1.0, 0.0])), {}, StructureError, "open"),
    "version_string": (set_attr("dcq_version", "1.0"), {}, StructureError, "open"),
    # patch-mask is known since 1.1 (spec §13): listing it without a /masks group is a structure error
    "must_understand_patch_mask": (set_attr("must_understand", np.array(["patch-mask"], dtype=object), dtype=STR),
                                   {}, StructureError, "open"),
    "must_understand_scalar": (set_attr("must_understand", "zstd-dictionary"), {}, UnsupportedVersionError, "open"),
    "magic_trailing_space": (set_attr("dcq_format", "dcq "), {}, NotADcqFileError, "open"),
    "bits_0": (set_attr("bits", np.uint8(0)), {}, StructureError, "open"),
    "bits_float": (set_attr("bits", 3.0), {}, StructureError, "open"),
    "bits_string": (set_attr("bits", "3"), {}, StructureError, "open"),
    "bits_array": (set_attr("bits", np.array([3], "u1")), {}, StructureError, "open"),
    "channels_4": (set_attr("channels", np.uint8(4)), {}, StructureError, "open"),
    "channels_0": (set_attr("channels", np.uint8(0)), {}, StructureError, "open"),
    "palette_size_0": (set_attr("palette_size", np.uint16(0)), {}, StructureError, "open"),
    "palette_size_negative": (set_attr("palette_size", np.int64(-5)), {}, StructureError, "open"),
    "num_samples_negative": (set_attr("num_samples", np.int64(-1)), {}, StructureError, "open"),
    "num_samples_huge": (set_attr("num_samples", np.uint64(2**63)), {}, StructureError, "open"),
    "num_clusters_0": (set_attr("num_clusters", np.uint32(0)), {}, StructureError, "open"),
    "num_classes_mismatch": (set_attr("num_classes", np.uint32(3)), {}, StructureError, "open"),
    "num_classes_0": (set_attr("num_classes", np.uint32(0)), {}, StructureError, "open"),
    "encoding_uppercase": (set_attr("payload_encoding", "RAW"), {}, StructureError, "open"),
    "cluster_2_32_minus_1": (set_field("samples/cluster", 0, 2**32 - 1), {}, StructureError, "open"),
    "label_2_32_minus_1": (set_field("samples/label", 0, 2**32 - 1), {}, StructureError, "open"),
    "width_0": (set_field("samples/width", 1, 0), {"encoding": "zstd"}, StructureError, "open"),
    "height_65537": (set_field("samples/height", 1, 65537), {"encoding": "zstd"}, StructureError, "open"),
    "length_2_64_minus_1": (set_field("samples/length", 0, 2**64 - 1), {"encoding": "zstd"}, StructureError, "open"),
    "zstd_length_0": (zstd_sample(lambda p, n: b""), {"encoding": "zstd"}, StructureError, "open"),
    "label_shape_n_plus_1": (replace("samples/label", np.zeros(4, "<u4")), {}, StructureError, "open"),
    "label_2d": (replace("samples/label", np.zeros((3, 1), "<u4")), {}, StructureError, "open"),
    "classes_not_strings": (replace("classes", np.zeros(2, "<u4")), {}, StructureError, "open"),
    "classes_2d": (replace("classes", np.array([["a", "b"]], dtype=object), dtype=STR), {}, StructureError, "open"),
    "palettes_wrong_shape": (replace("palettes", np.zeros((2, 5, 1), "u1")), {}, StructureError, "open"),
    "palettes_u2": (replace("palettes", np.zeros((2, 5, 3), "<u2")), {}, StructureError, "open"),
    "payload_2d": (replace("payload", np.zeros((12, 1), "u1")), {}, StructureError, "open"),
    "payload_deflated": (lambda h5: replace("payload", h5["payload"][()], compression="gzip")(h5), {},
                         StructureError, "open"),
    "payload_no_crc": (lambda h5: h5["payload"].attrs.__delitem__("crc32"), {}, StructureError, "open"),
    "crc_attr_string": (lambda h5: h5["palettes"].attrs.__setitem__("crc32", "0"), {}, StructureError, "open"),
    "samples_is_a_dataset": (lambda h5: (drop("samples")(h5), h5.create_dataset("samples", data=[1])),
                             {}, StructureError, "open"),
    "stale_crc_sources_size": (lambda h5: h5["sources/size"].__setitem__(0, 7), {"sources": True},
                               ChecksumMismatchError, "open"),
    "stale_crc_sources_path": (lambda h5: h5["sources/path"].__setitem__(0, ord("X")), {"sources": True},
                               ChecksumMismatchError, "open"),
    "sources_path_count": (replace("sources/path", np.frombuffer(b"a\nb", "u1")), {"sources": True},
                           StructureError, "open"),
    "sources_path_not_utf8": (replace("sources/path", np.frombuffer(b"\xff\n\xfe\nx", "u1")),
                              {"sources": True}, StructureError, "open"),
    "sources_size_missing": (drop("sources/size"), {"sources": True}, StructureError, "open"),
    "sources_is_a_dataset": (lambda h5: (drop("sources")(h5), h5.create_dataset("sources", data=[1])),
                             {"sources": True}, StructureError, "open"),
    "zstd_frame_shorter": (zstd_sample(lambda p, n: raw_block_frame(p[:-1], n)), {"encoding": "zstd"},
                           PayloadError, "read"),
    "zstd_bad_content_checksum": (zstd_sample(bad_checksum_frame), {"encoding": "zstd"}, PayloadError, "read"),
    "zstd_skippable_frame": (zstd_sample(lambda p, n: struct.pack("<II", 0x184D2A50, 4) + b"abcd"),
                             {"encoding": "zstd"}, PayloadError, "read"),
    "zstd_dictionary_id": (zstd_sample(lambda p, n: raw_block_frame(p, n, dict_id=7)), {"encoding": "zstd"},
                           PayloadError, "read"),
    "zstd_window_too_large": (zstd_sample(lambda p, n: raw_block_frame(p, n)[:5] + b"\xf8" + raw_block_frame(p, n)[6:]),
                              {"encoding": "zstd"}, PayloadError, "read"),
    "zstd_truncated_header": (zstd_sample(lambda p, n: raw_block_frame(p, n)[:7]), {"encoding": "zstd"},
                              PayloadError, "read"),
}
for _name in ROOT_ATTRS:
    CASES[f"missing_attr_{_name}"] = (set_attr(_name, None), {},
                                      NotADcqFileError if _name == "dcq_format" else StructureError, "open")
for _name in ["classes", "palettes", "payload", "provenance", "samples", *(f"samples/{f}" for f in SAMPLE_FIELDS)]:
    CASES[f"missing_{_name.replace('/', '_')}"] = (drop(_name), {}, StructureError, "open")
for _name, _dt in SAMPLE_FIELDS.items():
    CASES[f"big_endian_{_name}"] = (
        lambda h5, n=_name, dt=_dt: replace(f"samples/{n}", h5[f"samples/{n}"][()].astype(dt.replace("<", ">")))(h5),
        {}, StructureError, "open")
    CASES[f"signed_{_name}"] = (
        lambda h5, n=_name, dt=_dt: replace(f"samples/{n}", h5[f"samples/{n}"][()].astype(dt.replace("<u", "<i")))(h5),
        {}, StructureError, "open")


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_edit(name: str, write_dcq: Callable[..., Path]) -> None:
    fn, kw, family, stage = CASES[name]
    fails(edited(write_dcq, fn, **kw), family, stage)


def test_provenance_and_selection_that_are_not_json_objects(write_dcq: Callable[..., Path]) -> None:
    # §4 says these hold a UTF-8 JSON object; whether a reader MUST reject other content is
    # not in §10, so only "fails with some DcqError, at open" is asserted.
    for blob in (b"not json", b"[1, 2]", b"\xff\xfe"):
        fails(edited(write_dcq, replace("provenance", np.frombuffer(blob, "u1"))), DcqError)
    sel = edited(write_dcq, lambda h5: (h5.create_group("selections/s"),
                                        replace("selections/s/ranking", np.array([0], "<i8"))(h5),
                                        replace("selections/s/selected", np.array([0], "<i8"))(h5),
                                        replace("selections/s/attrs", np.frombuffer(b"{", "u1"))(h5)))
    fails(sel, DcqError)
    for part, values in (("ranking", np.zeros((1, 1), "<i8")), ("selected", np.array([0.0]))):
        bad = edited(write_dcq, lambda h5, p=part, v=values: (
            h5.create_group("selections/s"),
            replace("selections/s/ranking", np.array([0], "<i8"))(h5),
            replace("selections/s/selected", np.array([0], "<i8"))(h5),
            replace("selections/s/attrs", np.frombuffer(b"{}", "u1"))(h5),
            replace(f"selections/s/{p}", v)(h5)))
        fails(bad, StructureError)
    fails(edited(write_dcq, lambda h5: h5.create_dataset("selections/s", data=[0])), StructureError)


def test_string_attributes_may_be_fixed_length_ascii_and_integers_any_type(write_dcq: Callable[..., Path]) -> None:
    """§3: strings UTF-8 or ASCII; integer attributes of any HDF5 integer type."""
    def fn(h5: h5py.File) -> None:
        h5.attrs.create("dcq_format", np.bytes_(b"dcq"))
        h5.attrs.create("payload_encoding", np.bytes_(b"zstd"))
        h5.attrs.create("bits", np.int64(3))
        h5.attrs.create("channels", np.uint64(3))
        h5.attrs.create("palette_size", np.int8(5))
        h5.attrs.create("num_samples", np.int16(3))
        h5.attrs.create("must_understand", np.array([], dtype="S1"))
    exercise(edited(write_dcq, fn, encoding="zstd"))


def test_created_by_is_optional_and_unknown_extras_are_ignored(write_dcq: Callable[..., Path]) -> None:
    def fn(h5: h5py.File) -> None:
        del h5.attrs["created_by"]
        h5.attrs["dcq_version"] = np.array([1, 99], "<u4")
        h5.create_dataset("masks/keep", data=np.zeros(3, "u1"))  # reserved, not must-understand
        h5.create_group("selections/empty_extra_group_member").create_dataset("future", data=[1])
        h5["selections/empty_extra_group_member"].create_dataset("ranking", data=np.array([], "<i8"))
        h5["selections/empty_extra_group_member/ranking"].attrs["crc32"] = crc(b"")
        h5["selections/empty_extra_group_member"].create_dataset("selected", data=np.array([], "<i8"))
        h5["selections/empty_extra_group_member/selected"].attrs["crc32"] = crc(b"")
        h5["selections/empty_extra_group_member"].create_dataset("attrs", data=np.frombuffer(b"{}", "u1"))
        h5["selections/empty_extra_group_member/attrs"].attrs["crc32"] = crc(b"{}")
    exercise(edited(write_dcq, fn))


@pytest.mark.parametrize("encoding", ["raw", "zstd"])
@pytest.mark.parametrize("bits", range(1, 9))
def test_index_ge_k_with_correct_checksums(tmp_path: Path, bits: int, encoding: str,
                                           write_dcq: Callable[..., Path]) -> None:
    """Written with K = 2**q, then declared K = 2**q - 1: the top index is out of range in
    sample 1 only. Every decode path must refuse it, with or without CRC checks."""
    k = 1 << bits
    rng = np.random.default_rng(bits)
    maps = [rng.integers(0, k - 1, size=s, dtype=np.uint8) for s in ((3, 3), (3, 3), (2, 7))]
    maps[1][1, 2] = k - 1
    path = edited(write_dcq, lambda h5: (h5.attrs.__setitem__("palette_size", np.uint16(k - 1)),
                                         replace("palettes", h5["palettes"][:, : k - 1, :])(h5)),
                  bits=bits, palette_size=k, maps=maps, encoding=encoding)
    for check_crc in (False, True):
        with DCQFile(path, check_crc=check_crc) as f:
            f[0], f[2]
            for call in (lambda: f[1], lambda: f.decode(1, "chw"), lambda: f.decode_batch([0, 1]),
                         lambda: f.decode_batch([2, 1, 0], layout="hwc"),
                         lambda: f.decode_into(1, np.empty((3, 3, 3), np.uint8)), f.verify):
                with pytest.raises(PayloadError, match="index"):
                    call()
            # the storage report fits a ctx model to the maps: it said "index 7 >= K = 7"
            # (an InvalidArgumentError naming neither file nor sample)
            with pytest.raises(PayloadError, match=f"sample 1 holds a palette index {k - 1} >= palette_size"):
                f.info()


# -- once bugs: resource exhaustion, data outside the file, trailing zstd bytes, writer state --
def test_unallocated_huge_dataset_is_rejected_without_allocating(write_dcq: Callable[..., Path]) -> None:
    size = 128 << 20
    path = edited(write_dcq, lambda h5: (drop("provenance")(h5),
                                         h5.create_dataset("provenance", shape=(size,), dtype="u1"),
                                         h5["provenance"].attrs.__setitem__("crc32", crc(bytes(size)))))
    assert path.stat().st_size < 64 << 10
    code = textwrap.dedent(PEAK_RSS) + textwrap.dedent(f"""
        import sys
        from dcqformat import DCQFile
        from dcqformat.errors import DcqError
        before = peak_rss_kib()
        try:
            DCQFile({str(path)!r})
        except DcqError:
            pass
        else:
            sys.exit("accepted")
        grew = peak_rss_kib() - before
        sys.exit(f"peak memory grew by {{grew // 1024}} MiB" if grew > 48 << 10 else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout


@pytest.mark.parametrize("kind", ["external", "virtual"])
def test_datasets_stored_outside_the_file_are_rejected(tmp_path: Path, kind: str,
                                                       write_dcq: Callable[..., Path]) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(bytes(range(30)))
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as o:
        o["h"] = np.array([2, 1, 4], "<u4")

    def fn(h5: h5py.File) -> None:
        if kind == "external":
            del h5["palettes"]
            ds = h5.create_dataset("palettes", shape=(2, 5, 3), dtype="u1", external=[(str(outside), 0, 30)])
            ds.attrs["crc32"] = crc(bytes(range(30)))
        else:
            layout = h5py.VirtualLayout(shape=(3,), dtype="<u4")
            layout[:] = h5py.VirtualSource(str(other), "h", shape=(3,))
            del h5["samples/height"]
            h5["samples"].create_virtual_dataset("height", layout).attrs["crc32"] = crc(np.array([2, 1, 4], "<u4"))
    fails(edited(write_dcq, fn), StructureError)


@pytest.mark.parametrize("tail", ["junk", "second_frame"])
def test_zstd_bytes_after_the_frame_are_rejected(tail: str, write_dcq: Callable[..., Path]) -> None:
    def frame(packed: bytes, n: int) -> bytes:
        one = zstandard.ZstdCompressor().compress(packed)
        return one + (b"junk" if tail == "junk" else one)
    fails(edited(write_dcq, zstd_sample(frame), encoding="zstd"), PayloadError, "read")


def test_info_shortens_a_hostile_provenance_capability(write_dcq: Callable[..., Path]) -> None:
    from dcqformat.format.info import format_report, storage_report

    prov = json.dumps({"torch_cpu_capability": "A" * 100_000, "torch_version": ["x"] * 10_000})
    path = edited(write_dcq, replace("provenance", np.frombuffer(prov.encode(), "u1")))
    with DCQFile(path) as f:
        text = format_report(storage_report(f))
    line = next(x for x in text.splitlines() if "CPU capability" in x)
    assert len(line) < 200 and "AAA..." in line
