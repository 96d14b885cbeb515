"""The invalid golden vectors (``spec/vectors/invalid/``) of spec/dcq-v1.md §10 and §13 (the
file, its metadata, checksums, per-sample values, selections, patch masks, links and
layouts): ``INVALID_STRUCTURE``, with the edits only they use. ``tools/make_vectors.py``
writes them, in this order, before those of ``vectors_invalid_ctx.py``.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard
from vectors_bases import (
    BASE_SIZES,
    MASK_BASE_KEEPS,
    MASK_BASE_P,
    InvalidSpec,
    byte_edit,
    drop,
    flip_at_dataset,
    from_bytes,
    h5_edit,
    masked_base_maps,
    set_at,
    shorten,
    stale,
    write_base,
)
from vectors_spec import (
    STR,
    crc32,
    dataset_file_offset,
    kept_pixel_order,
    pack_numpy,
    replace_dataset,
    rng_for,
    set_stored,
    set_values,
    stored_samples,
    zstd_raw_block_frame,
)

SAMPLE_FIELDS = ["height", "width", "label", "cluster", "offset", "length", "crc32"]


def _not_dcq_hdf5(bases: dict[str, Path]) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.h5"
        with h5py.File(p, "w", libver=("v110", "v110")) as h5:
            h5.attrs["title"] = "an ordinary HDF5 file"
            h5.create_dataset("images", data=np.arange(12, dtype=np.uint8).reshape(3, 4))
        return p.read_bytes()


def _payload_bit_flip_keeping_indices(h5: h5py.File) -> None:
    """Change one bit of sample 2 such that every index stays < K and padding stays zero:
    only the checksums (sample and /payload) reveal it."""
    stored = stored_samples(h5)
    s2 = bytearray(stored[2])
    n_bits = 4 * 5 * 3
    for bit in range(n_bits):
        trial = bytearray(s2)
        trial[bit // 8] ^= 1 << (bit % 8)
        bits = np.unpackbits(np.frombuffer(bytes(trial), np.uint8), bitorder="little")[:n_bits]
        if (bits.reshape(-1, 3) @ np.array([1, 2, 4])).max() < 5 and trial != s2:
            break
    else:  # pragma: no cover
        raise SystemExit("no suitable bit")
    off = int(h5["samples/offset"][2])
    payload = h5["payload"]
    payload[off + bit // 8] = trial[bit // 8]  # leaves /payload and /samples/crc32 stale


def _set_padding_bit(h5: h5py.File) -> None:
    stored = stored_samples(h5)
    s0 = bytearray(stored[0])  # 2x3 pixels at q=3: 18 bits, 6 padding bits in byte 2
    s0[2] |= 0x80
    stored[0] = bytes(s0)
    set_stored(h5, stored)


def _zstd_sample(fn: Callable[[bytes, int], bytes], i: int = 2) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        packed = zstandard.ZstdDecompressor().decompress(stored[i])
        stored[i] = fn(packed, len(packed))
        set_stored(h5, stored)
    return edit


def _index_ge_k(encoding: str) -> Callable[[Path, dict[str, Path]], None]:
    """Written with K=8, then declared K=5: sample 1 (1x1) holds index 7, crcs all correct."""
    def build(target: Path, bases: dict[str, Path]) -> None:
        rng = rng_for("base")
        maps = [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]
        maps[1][0, 0] = 7
        write_base(target, encoding, palette_size=8, maps=maps)
        with h5py.File(target, "r+") as h5:
            h5.attrs["palette_size"] = np.uint16(5)
            replace_dataset(h5, "palettes", h5["palettes"][:, :5, :])
    return build


def _attr(name: str, value: Any, **kw: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if value is None:
            del h5.attrs[name]
        else:
            h5.attrs.create(name, value, **kw)
    return edit


def _field(path: str, i: int, value: int) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] = value
        set_values(h5, path, arr)
    return edit


def _xor(i: Any, mask: int) -> Callable[[np.ndarray], None]:
    def change(arr: np.ndarray) -> None:
        arr[i] ^= mask
    return change


def _add(i: Any, delta: int) -> Callable[[np.ndarray], None]:
    def change(arr: np.ndarray) -> None:
        arr[i] = int(arr[i]) + delta
    return change


def _stale_classes(h5: h5py.File) -> None:
    h5["classes"][0] = "c"  # same length, crc32 attribute left as it was


def _payload_chunked(h5: h5py.File) -> None:
    data = h5["payload"][()]
    replace_dataset(h5, "payload", data, chunks=(8,))


def _payload_crc_stale(h5: h5py.File) -> None:
    h5["payload"].attrs["crc32"] = np.uint32(h5["payload"].attrs["crc32"] ^ 0x1)


def _retype(path: str, dtype: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, path, h5[path][()].astype(dtype))
    return edit


def _lengthen(path: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        replace_dataset(h5, path, np.concatenate([arr, arr[-1:]]))
    return edit


def _selection(part: str, i: int, value: int) -> Callable[[h5py.File], None]:
    return _field(f"selections/sel/{part}", i, value)


def _cut(base: str, where: Callable[[int], int]) -> Callable[[dict[str, Path]], bytes]:
    def fn(bases: dict[str, Path]) -> bytes:
        data = bases[base].read_bytes()
        return data[:where(len(data))]
    return fn


def _mask_attr(value: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if value is None:
            del h5["masks"].attrs["patch_size"]
        else:
            h5["masks"].attrs["patch_size"] = value
    return edit


def _or_byte(path: str, i: int, bit: int) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] |= bit
        set_values(h5, path, arr)
    return edit


def _masked_sample_2_unmasked(encoding: str) -> Callable[[h5py.File], None]:
    """Sample 2 stored as its whole map (H*W indices) instead of its kept pixels."""
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        full = pack_numpy(masked_base_maps()[2], 3)
        stored[2] = full if encoding == "raw" else zstd_raw_block_frame(full, len(full))
        set_stored(h5, stored)
    return edit


def _masked_kept_index_7(h5: h5py.File) -> None:
    """Sample 2's first kept index becomes 7 (K=5), every CRC correct."""
    stored = stored_samples(h5)
    m = masked_base_maps()[2]
    kept = m.ravel()[kept_pixel_order(*m.shape, MASK_BASE_P, MASK_BASE_KEEPS[2])].copy()
    kept[0] = 7
    stored[2] = pack_numpy(kept, 3)
    set_stored(h5, stored)


# --- hard links only, /classes rules, storage layouts (added with --append, 2026-12) ------
def _self_external_link(h5: h5py.File) -> None:
    """/classes becomes an external link into the file itself (to a self-consistent copy):
    a reader that follows links accepts it."""
    h5.copy("classes", "x_copy_of_classes")
    del h5["classes"]
    h5["classes"] = h5py.ExternalLink(Path(h5.filename).name, "/x_copy_of_classes")


def _soft_link_palettes(h5: h5py.File) -> None:
    h5.copy("palettes", "x_copy_of_palettes")
    del h5["palettes"]
    h5["palettes"] = h5py.SoftLink("/x_copy_of_palettes")


def _classes(names: list[bytes], dtype: Any = None) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, "classes", np.array(names, dtype=object if dtype is None else dtype),
                        dtype=STR if dtype is None else dtype, crc=crc32(b"\n".join(names)))
    return edit


def _payload_compact(h5: h5py.File) -> None:
    payload, stored = h5["payload"][()], h5["payload"].attrs["crc32"]
    del h5["payload"]
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    ds = h5py.Dataset(h5py.h5d.create(h5.id, b"payload", h5py.h5t.NATIVE_UINT8,
                                      h5py.h5s.create_simple(payload.shape), dcpl=dcpl))
    ds[...] = payload
    ds.attrs["crc32"] = stored


def _palettes_chunked(h5: h5py.File) -> None:
    replace_dataset(h5, "palettes", h5["palettes"][()], chunks=(1, 5, 3))


def _classes_vlen_length(data: bytearray, base_path: Path) -> None:
    at = dataset_file_offset(base_path, "classes")  # the first 16-byte descriptor of /classes
    assert struct.unpack_from("<I", data, at)[0] == 1  # 'a'
    struct.pack_into("<I", data, at, 1 << 20)



INVALID_STRUCTURE: list[InvalidSpec] = [
    # --- §10.1 not a .dcq file ---------------------------------------------------------
    InvalidSpec("empty", "NotADcqFileError", "open", "an empty file (0 bytes)",
                from_bytes(lambda b: b"")),
    InvalidSpec("random_bytes", "NotADcqFileError", "open",
                "256 random bytes: no HDF5 signature",
                from_bytes(lambda b: b"RND!" + rng_for("random").bytes(252))),
    InvalidSpec("hdf5_not_dcq", "NotADcqFileError", "open",
                "a valid HDF5 file without the root attribute dcq_format",
                from_bytes(_not_dcq_hdf5)),
    InvalidSpec("wrong_magic", "NotADcqFileError", "open",
                "dcq_format is 'DCQ', not exactly 'dcq'",
                h5_edit("raw", _attr("dcq_format", "DCQ"))),
    # --- §10.2 truncation ---------------------------------------------------------------
    InvalidSpec("truncated_in_header", "TruncatedFileError", "open",
                "the raw base cut after 200 bytes (past the superblock)", from_bytes(_cut("raw", lambda n: 200))),
    InvalidSpec("truncated_in_middle", "TruncatedFileError", "open",
                "the raw base cut to half its length",
                from_bytes(_cut("raw", lambda n: n // 2))),
    InvalidSpec("truncated_one_byte_short", "TruncatedFileError", "open",
                "the raw base without its last byte", from_bytes(_cut("raw", lambda n: n - 1))),
    # --- §10.3 versions -----------------------------------------------------------------
    InvalidSpec("version_2_0", "UnsupportedVersionError", "open",
                "dcq_version (2, 0): unknown major version",
                h5_edit("raw", _attr("dcq_version", np.array([2, 0], dtype="<u4")))),
    InvalidSpec("must_understand_unknown", "UnsupportedVersionError", "open",
                "must_understand lists 'x-golden-unknown-feature'",
                h5_edit("raw", _attr("must_understand",
                                     np.array(["x-golden-unknown-feature"], dtype=object), dtype=STR))),
    # --- §10.4 attributes and datasets --------------------------------------------------
    InvalidSpec("bits_9", "StructureError", "open", "bits = 9 (outside 1..8)",
                h5_edit("raw", _attr("bits", np.uint8(9)))),
    InvalidSpec("channels_2", "StructureError", "open", "channels = 2 (not 1 or 3)",
                h5_edit("raw", _attr("channels", np.uint8(2)))),
    InvalidSpec("palette_size_9_at_q3", "StructureError", "open",
                "palette_size K = 9 > 2**bits = 8", h5_edit("raw", _attr("palette_size", np.uint16(9)))),
    InvalidSpec("encoding_unknown", "StructureError", "open", "payload_encoding = 'lz4'",
                h5_edit("raw", _attr("payload_encoding", "lz4"))),
    InvalidSpec("missing_attr_bits", "StructureError", "open", "root attribute bits is missing",
                h5_edit("raw", _attr("bits", None))),
    InvalidSpec("missing_payload", "StructureError", "open", "dataset /payload is missing",
                h5_edit("raw", drop("payload"))),
    InvalidSpec("height_dtype_u8", "StructureError", "open",
                "/samples/height stored as <u8, not <u4",
                h5_edit("raw", _retype("samples/height", "<u8"))),
    InvalidSpec("num_samples_mismatch", "StructureError", "open",
                "num_samples = 4 but the per-sample arrays hold 3",
                h5_edit("raw", _attr("num_samples", np.uint64(4)))),
    InvalidSpec("payload_chunked", "StructureError", "open",
                "/payload is chunked (MUST be contiguous)",
                h5_edit("raw", _payload_chunked)),
    # --- §10.5 metadata checksums: h5py edits leaving the crc32 attribute stale ---------
    *[InvalidSpec(f"stale_crc_{name.replace('/', '_')}", "ChecksumMismatchError", "open",
                  f"{what}; its crc32 attribute left stale", h5_edit(base, fn))
      for name, what, base, fn in [
          ("palettes", "one palette colour changed", "raw", stale("palettes", _xor((0, 0, 0), 0x5A))),
          ("classes", "class name 'a' changed to 'c'", "raw", _stale_classes),
          ("samples/height", "zstd: height of sample 2 changed 4 -> 5", "zstd", stale("samples/height", _add(2, 1))),
          ("samples/width", "zstd: width of sample 2 changed 5 -> 4", "zstd",
           stale("samples/width", _add(2, -1))),
          ("samples/label", "label of sample 0 changed 0 -> 1", "raw", stale("samples/label", _xor(0, 1))),
          ("samples/cluster", "cluster of sample 0 changed 0 -> 1", "raw",
           stale("samples/cluster", _xor(0, 1))),
          ("samples/offset", "offset of sample 2 minus 1 (still in the payload)",
           "raw", stale("samples/offset", _add(2, -1))),
          ("samples/length", "zstd: length of sample 2 minus 1", "zstd",
           stale("samples/length", _add(2, -1))),
          ("samples/crc32", "stored CRC of sample 1 changed", "raw", stale("samples/crc32", _xor(1, 1))),
          ("provenance", "provenance seed 1 -> 2 (still valid JSON)", "raw",
           stale("provenance", lambda a: a.__setitem__(np.flatnonzero(a == ord("1"))[0], ord("2")))),
          ("selections/sel/ranking", "selection ranking reversed", "full",
           stale("selections/sel/ranking", lambda a: a.__setitem__(slice(None), a[::-1].copy()))),
      ]],
    # --- payload checksums ------------------------------------------------------------
    InvalidSpec("stale_crc_payload", "ChecksumMismatchError", "read",
                "a payload bit of sample 2 flipped (indices stay < K, padding zero); "
                "/samples/crc32[2] and the /payload crc32 left stale",
                h5_edit("raw", _payload_bit_flip_keeping_indices), sample=2),
    InvalidSpec("sample_crc_wrong", "ChecksumMismatchError", "read",
                "/samples/crc32[1] wrong (the dataset's own crc32 matches it)",
                h5_edit("raw", _field("samples/crc32", 1, 0xDEADBEEF)), sample=1),
    InvalidSpec("payload_crc_attr_wrong", "ChecksumMismatchError", "verify",
                "the /payload crc32 attribute is wrong, every per-sample CRC is right", h5_edit("raw", _payload_crc_stale)),
    # --- raw byte flips at each dataset's file offset (64-sample base: per-sample arrays
    #     are chunked with shuffle+deflate, so a flip corrupts the deflate stream) --------
    InvalidSpec("flip_payload", "ChecksumMismatchError", "read",
                "first byte of /payload (in the file) XOR 0xFF",
                byte_edit("chunked", flip_at_dataset("payload")), sample=0),
    *[InvalidSpec(f"flip_samples_{name}", "StructureError", "open",
                  f"a byte inside /samples/{name}'s deflated chunk XOR 0xFF: HDF5 cannot "
                  "read the dataset",
                  byte_edit("chunked", flip_at_dataset(f"samples/{name}")))
      for name in SAMPLE_FIELDS],
    # --- §10.6 per-sample values (all checksums consistent) ------------------------------
    InvalidSpec("height_0", "StructureError", "open", "height of sample 0 is 0",
                h5_edit("raw", _field("samples/height", 0, 0))),
    InvalidSpec("width_65537", "StructureError", "open", "width of sample 1 is 65537 > 65536",
                h5_edit("zstd", _field("samples/width", 1, 65537))),
    InvalidSpec("pixels_over_2_28", "StructureError", "open",
                "sample 1 is 16385x16385 (> 2**28 pixels)",
                h5_edit("zstd", lambda h5: (_field("samples/height", 1, 16385)(h5),
                                            _field("samples/width", 1, 16385)(h5)))),
    InvalidSpec("label_ge_num_classes", "StructureError", "open", "label of sample 1 is 2 = num_classes",
                h5_edit("raw", _field("samples/label", 1, 2))),
    InvalidSpec("cluster_ge_num_clusters", "StructureError", "open",
                "cluster of sample 1 is 2 = C", h5_edit("raw", _field("samples/cluster", 1, 2))),
    InvalidSpec("offset_past_payload", "StructureError", "open",
                "offset of sample 2 = payload size",
                h5_edit("raw", lambda h5: _field("samples/offset", 2, h5["payload"].shape[0])(h5))),
    InvalidSpec("offset_2_64_minus_1", "StructureError", "open",
                "offset of sample 0 is 2**64-1 (offset + length overflows)",
                h5_edit("raw", _field("samples/offset", 0, 2**64 - 1))),
    InvalidSpec("length_past_payload", "StructureError", "open",
                "zstd: length of the last sample plus 1 (past the payload)",
                h5_edit("zstd", lambda h5: _field("samples/length", 2, int(h5["samples/length"][2]) + 1)(h5))),
    InvalidSpec("raw_length_mismatch", "StructureError", "open",
                "raw: length of sample 0 is 2, ceil(2*3*3/8) = 3",
                h5_edit("raw", _field("samples/length", 0, 2))),
    InvalidSpec("zstd_huge_content_size", "PayloadError", "read",
                "sample 2's zstd frame declares 2**40 bytes (check before allocating)",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, 2**40))), sample=2),
    InvalidSpec("zstd_wrong_content_size", "PayloadError", "read",
                "sample 2's zstd frame declares and holds ceil(H*W*q/8)+1 bytes",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p + b"\0", n + 1))),
                sample=2),
    InvalidSpec("zstd_no_content_size", "PayloadError", "read",
                "sample 2's zstd frame does not declare its content size",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, None))), sample=2),
    InvalidSpec("zstd_reserved_block_type", "PayloadError", "read",
                "sample 2's zstd frame has a block of the reserved type 3",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, n, block_type=3))),
                sample=2),
    InvalidSpec("zstd_not_a_frame", "PayloadError", "read",
                "zstd file, sample 2 holds raw packed bytes (no frame)",
                h5_edit("zstd", _zstd_sample(lambda p, n: p)), sample=2),
    # --- §10.7 an index >= K with every checksum correct ------------------------------------
    InvalidSpec("index_ge_k_raw", "PayloadError", "read",
                "q=3, K=5: sample 1 (1x1) holds index 7; every CRC is correct",
                _index_ge_k("raw"), sample=1),
    InvalidSpec("index_ge_k_zstd", "PayloadError", "read",
                "as index_ge_k_raw with the zstd encoding", _index_ge_k("zstd"), sample=1),
    # --- §5 padding ----------------------------------------------------------------------
    InvalidSpec("padding_nonzero", "StructureError", "verify",
                "sample 0 (18 bits at q=3) has a non-zero padding bit (decoding MAY ignore it)", h5_edit("raw", _set_padding_bit)),
    # --- §10.8 selections --------------------------------------------------------------------
    InvalidSpec("selection_ranking_out_of_range", "StructureError", "open",
                "selection ranking holds index 3 = N", h5_edit("full", _selection("ranking", 0, 3))),
    InvalidSpec("selection_selected_negative", "StructureError", "open",
                "selection selected holds -1", h5_edit("full", _selection("selected", 0, -1))),
    # --- §13 patch masks (version 1.1; added with --append). Base: q=3 RGB, K=5, P=2, samples
    #     2x3 (keep 1,0), 1x1 (1), 4x5 (1,0,1,1,0,1: two padding bits), 5x6 (3x3 patches) ------
    InvalidSpec("masks_group_missing", "StructureError", "open",
                "must_understand lists patch-mask but /masks is missing",
                h5_edit("masked_raw", drop("masks"))),
    InvalidSpec("masks_patch_size_0", "StructureError", "open", "/masks patch_size = 0",
                h5_edit("masked_raw", _mask_attr(np.uint32(0)))),
    InvalidSpec("masks_patch_size_missing", "StructureError", "open",
                "/masks has no patch_size attribute", h5_edit("masked_raw", _mask_attr(None))),
    InvalidSpec("masks_keep_dtype_u2", "StructureError", "open", "/masks/keep stored as <u2, not u1",
                h5_edit("masked_raw", _retype("masks/keep", "<u2"))),
    InvalidSpec("masks_keep_one_byte_long", "StructureError", "open",
                "/masks/keep holds one byte more than the sum of ceil(G_i/8)",
                h5_edit("masked_raw", _lengthen("masks/keep"))),
    InvalidSpec("masks_keep_padding_nonzero", "StructureError", "open",
                "sample 2's mask (6 patches) has padding bit 6 set; its CRC is correct",
                h5_edit("masked_raw", _or_byte("masks/keep", 2, 0x40))),
    InvalidSpec("masks_fill_ge_k", "StructureError", "open", "the first fill index is 5 = K",
                h5_edit("masked_raw", set_at("masks/fill", 0, 5))),
    InvalidSpec("masks_fill_one_short", "StructureError", "open",
                "/masks/fill holds one fill fewer than there are dropped patches",
                h5_edit("masked_raw", shorten("masks/fill"))),
    InvalidSpec("masks_theta_nan", "StructureError", "open", "/masks/theta[1] is NaN",
                h5_edit("masked_raw", set_at("masks/theta", 1, np.nan))),
    InvalidSpec("masks_theta_above_1", "StructureError", "open", "/masks/theta[0] is 1.5",
                h5_edit("masked_raw", set_at("masks/theta", 0, 1.5))),
    InvalidSpec("masks_raw_length_unmasked", "StructureError", "open",
                "raw: sample 2 stores all 20 indices (8 bytes), not its 12 kept ones (5 bytes); "
                "every CRC correct", h5_edit("masked_raw", _masked_sample_2_unmasked("raw"))),
    InvalidSpec("masks_zstd_declares_unmasked_size", "PayloadError", "read",
                "zstd: sample 2's frame declares and holds ceil(H*W*q/8) = 8 bytes, not "
                "ceil(S*q/8) = 5", h5_edit("masked_zstd", _masked_sample_2_unmasked("zstd")),
                sample=2),
    InvalidSpec("masks_kept_index_ge_k", "PayloadError", "read",
                "sample 2's first kept index is 7 (K=5); every CRC correct",
                h5_edit("masked_raw", _masked_kept_index_7), sample=2),
    InvalidSpec("masks_stale_crc_theta", "ChecksumMismatchError", "open",
                "/masks/theta[0] changed (still in 0..1); its crc32 attribute left stale",
                h5_edit("masked_raw", stale("masks/theta", lambda a: a.__setitem__(0, 0.125)))),
    # --- §10.11-13 (2026-12; added with --append): hard links only, /classes rules, layouts
    InvalidSpec("link_external_classes", "StructureError", "open",
                "/classes is an external link into the file itself (to a copy with the right "
                "crc32): a reader that follows it reads valid names", h5_edit("raw", _self_external_link)),
    InvalidSpec("link_soft_palettes", "StructureError", "open",
                "/palettes is a soft link to a copy of the palettes at /x_copy_of_palettes",
                h5_edit("raw", _soft_link_palettes)),
    InvalidSpec("classes_duplicate", "StructureError", "open",
                "classes are ['a', 'a'] (crc32 right)", h5_edit("raw", _classes([b"a", b"a"]))),
    InvalidSpec("classes_empty_name", "StructureError", "open",
                "classes are ['', 'b'] (crc32 right)", h5_edit("raw", _classes([b"", b"b"]))),
    InvalidSpec("classes_newline", "StructureError", "open",
                "classes are ['a\\nx', 'b'] (crc32 over the names joined by newlines)",
                h5_edit("raw", _classes([b"a\nx", b"b"]))),
    InvalidSpec("classes_fixed_length", "StructureError", "open",
                "/classes stored as fixed-length 1-byte strings ('a', 'b'), not variable-length UTF-8",
                h5_edit("raw", _classes([b"a", b"b"], "S1"))),
    InvalidSpec("classes_vlen_length_mismatch", "StructureError", "open",
                "the descriptor of class 0 declares 1 MiB; its global heap object holds 1 byte "
                "(HDF5 would allocate the declared size before noticing)",
                byte_edit("raw", _classes_vlen_length)),
    InvalidSpec("payload_compact", "StructureError", "open",
                "/payload uses the compact layout (MUST be contiguous; not a truncation)",
                h5_edit("raw", _payload_compact)),
    InvalidSpec("palettes_chunked", "StructureError", "open",
                "/palettes is chunked (MUST be contiguous)", h5_edit("raw", _palettes_chunked)),
]
