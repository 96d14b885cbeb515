"""Patch masks (spec §13): kernels against their NumPy references, writer/reader round trips,
kept-patch identity, fills, and corrupted /masks sections rejected with a DcqError."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat import DCQFile, DCQWriter
from dcqformat.codecs import patches as M
from dcqformat.codecs import reference as R
from dcqformat.codecs.bitpack import pack_indices, unpack_indices
from dcqformat.errors import (
    ChecksumMismatchError,
    DcqError,
    InvalidArgumentError,
    PayloadError,
    StructureError,
    UnsupportedVersionError,
)

# ----------------------------------------------------------------------------- kernels


@st.composite
def masked_maps(draw: st.DrawFn) -> tuple[np.ndarray, int, np.ndarray, int]:
    h = draw(st.integers(1, 19))
    w = draw(st.integers(1, 19))
    p = draw(st.integers(1, 9))
    bits = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 1 << bits, (h, w)).astype(np.uint8)
    gh, gw = M.grid_shape(h, w, p)
    keep = rng.random(gh * gw) < draw(st.floats(0.0, 1.0))
    return idx, p, keep, bits


@settings(max_examples=150, deadline=None)
@given(masked_maps())
def test_gather_scatter_kernels_match_reference(case: tuple[np.ndarray, int, np.ndarray, int]) -> None:
    idx, p, keep, bits = case
    h, w = idx.shape
    kept = M.gather_kept(idx, p, keep)
    assert np.array_equal(kept, R.gather_ref(idx, p, keep))
    assert kept.size == int(M.patch_areas(h, w, p).reshape(-1)[keep].sum())
    fills = M.most_common_fills(idx, p, keep, 1 << bits)
    assert fills.size == int((~keep).sum())
    got = M.scatter_kept(kept, h, w, p, keep, fills)
    assert np.array_equal(got, R.scatter_ref(kept, h, w, p, keep, fills))
    pm = M.pixel_mask(keep, h, w, p)
    assert np.array_equal(got[pm], idx[pm])  # kept pixels come back where they were
    assert np.array_equal(M.scatter_kept(kept, h, w, p, keep, None)[~pm], np.zeros((~pm).sum(), np.uint8))


@settings(max_examples=150, deadline=None)
@given(masked_maps(), st.sampled_from([1, 3]), st.booleans(), st.booleans())
def test_decode_masked_kernel_matches_reference(case: tuple[np.ndarray, int, np.ndarray, int], ch: int,
                                                planar: bool, use_fill: bool) -> None:
    idx, p, keep, bits = case
    h, w = idx.shape
    k = 1 << bits
    pal = np.random.default_rng(1).integers(0, 256, (k, ch), dtype=np.uint8)
    kept = M.gather_kept(idx, p, keep)
    fills = M.most_common_fills(idx, p, keep, k)
    out = np.full(h * w * ch, 7, np.uint8)
    packed = pack_indices(kept, bits)
    status = M.decode_masked_into(packed, bits, h, w, p, M.pack_mask(keep), fills if use_fill else None,
                                  pal, out, planar)
    assert status == 0
    want = R.decode_masked_ref(packed, bits, h, w, p, keep, fills if use_fill else None, pal, planar)
    # the reference is independent of the scatter: it agrees with a plain lookup of the map
    ref_idx = R.scatter_ref(unpack_indices(packed, kept.size, bits), h, w, p, keep, fills if use_fill else None)
    ref = pal[ref_idx]
    if not use_fill:
        ref[~M.pixel_mask(keep, h, w, p)] = 0
    assert np.array_equal(want, ref.transpose(2, 0, 1).reshape(-1) if planar else ref.reshape(-1))
    assert np.array_equal(out, want)
    # a packed buffer one byte short, or fills one short, is refused, never read past
    if kept.size and len(packed) > 1:
        with pytest.raises(PayloadError):
            M.decode_masked_into(packed[:-1], bits, h, w, p, M.pack_mask(keep), None, pal, out, planar)
    if use_fill and fills.size:
        with pytest.raises(PayloadError):
            M.decode_masked_into(packed, bits, h, w, p, M.pack_mask(keep), fills[:-1], pal, out, planar)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=6),
       st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_mask_stats_kernel_matches_reference(sizes: list[tuple[int, int]], p: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    hs = np.array([s[0] for s in sizes], np.int64)
    ws = np.array([s[1] for s in sizes], np.int64)
    keep = b"".join(M.pack_mask(rng.random(int(np.prod(M.grid_shape(h, w, p)))) < 0.5).tobytes()
                    for h, w in sizes)
    arr = np.frombuffer(keep, np.uint8).copy()
    got = M.mask_stats(arr, hs, ws, p)
    ref = R.mask_stats_ref(arr, hs, ws, p)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1]) and got[2] == ref[2] == -1
    # a set padding bit is found by both
    offs = M.mask_offsets(hs, ws, p)
    for i, (h, w) in enumerate(sizes):
        g = int(np.prod(M.grid_shape(h, w, p)))
        if g % 8:
            bad = arr.copy()
            bad[offs[i + 1] - 1] |= 0x80
            assert M.mask_stats(bad, hs, ws, p)[2] == i == R.mask_stats_ref(bad, hs, ws, p)[2]
            break


def test_pack_mask_bit_order_and_spec_worked_example() -> None:
    # spec §13: a 5x6 sample at P=4, keep (1, 0, 0, 1) -> 0x09, 18 kept pixels, 5 bytes at q=2
    keep = np.array([[1, 0], [0, 1]], bool)
    assert M.pack_mask(keep).tobytes() == b"\x09"
    assert M.grid_shape(5, 6, 4) == (2, 2)
    assert M.patch_areas(5, 6, 4).tolist() == [[16, 8], [4, 2]]
    idx = (np.arange(30).reshape(5, 6) % 4).astype(np.uint8)
    kept = M.gather_kept(idx, 4, keep)
    assert kept.size == 18 and len(pack_indices(kept, 2)) == 5
    assert kept[:16].tolist() == idx[:4, :4].reshape(-1).tolist()
    assert kept[16:].tolist() == [idx[4, 4], idx[4, 5]]
    # q=1 packing: bit g is bit g%8 of byte g//8
    nine = np.array([1, 0, 1, 1, 0, 0, 1, 0, 1], bool)
    assert M.pack_mask(nine).tobytes() == bytes([0x4D, 0x01])
    assert np.array_equal(M.unpack_mask(np.array([0x4D, 0x01], np.uint8), 9), nine)


def test_most_common_fill_ties_take_smallest_index() -> None:
    idx = np.array([[3, 1], [1, 3]], np.uint8)
    assert M.most_common_fills(idx, 2, np.array([False]), 4).tolist() == [1]
    idx = np.array([[2, 2], [0, 3]], np.uint8)
    assert M.most_common_fills(idx, 2, np.array([False]), 4).tolist() == [2]


# ----------------------------------------------------------------------------- files


SIZES = [(5, 6), (8, 8), (1, 1), (13, 7), (16, 3)]


def _write(path: Path, *, encoding: str = "raw", p: int | None = 4, bits: int = 2, k: int | None = None,
           seed: int = 0, keep_fraction: float = 0.6, fills: bool = False
           ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray | None]]:
    rng = np.random.default_rng(seed)
    kk = k or (1 << bits)
    pal = rng.integers(0, 256, (2, kk, 3), dtype=np.uint8)
    maps, keeps = [], []
    with DCQWriter(path, bits, 3, ["a", "b"], payload_encoding=encoding, patch_size=p,
                   palette_size=kk) as w:
        w.set_palettes(pal)
        for j, (h, ww) in enumerate(SIZES):
            idx = rng.integers(0, kk, (h, ww)).astype(np.uint8)
            keep = rng.random(M.grid_shape(h, ww, p or 4)) < keep_fraction  # same draws with p=None
            if p is not None:
                if j == 2:
                    keep[:] = False  # every patch dropped: zero kept pixels
                f = np.full(int((~keep).sum()), kk - 1, np.uint8) if fills else None
                w.add_sample(idx, j % 2, j % 2, keep_mask=keep, fills=f, theta=0.25 if j == 1 else None)
            else:
                keep = None
                w.add_sample(idx, j % 2, j % 2)
            maps.append(idx)
            keeps.append(keep)
    return pal, maps, keeps


@pytest.mark.parametrize("encoding", ["raw", "zstd"])
def test_round_trip_kept_identity_and_fill(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "m.dcq"
    pal, maps, keeps = _write(path, encoding=encoding)
    plain = tmp_path / "plain.dcq"
    _write(plain, encoding=encoding, p=None)
    f, g = DCQFile(path), DCQFile(plain)
    assert f.version == (1, 1) and f.patch_size == 4
    assert g.version == (1, 0) and g.patch_size is None and g.thetas is None
    with h5py.File(path) as h5:
        assert [x.decode() if isinstance(x, bytes) else x for x in h5.attrs["must_understand"]] == ["patch-mask"]
    with h5py.File(plain) as h5:
        assert len(h5.attrs["must_understand"]) == 0 and "masks" not in h5
    for i, (idx, keep) in enumerate(zip(maps, keeps, strict=True)):
        dec, full = f.decode(i), g.decode(i)
        assert np.array_equal(full, pal[i % 2][idx])
        assert np.array_equal(f.patch_mask(i), keep)
        pm = f.pixel_mask(i)
        assert np.array_equal(dec[pm], full[pm])  # kept patches: pixel-identical to the unmasked decode
        fills = M.most_common_fills(idx, 4, keep, 4)
        assert np.array_equal(f.patch_fills(i), fills) and g.patch_fills(i).size == 0
        pid = M.patch_ids(*idx.shape, 4)
        for d, gnum in enumerate(np.flatnonzero(~keep.reshape(-1))):  # each dropped patch: its fill colour
            assert (dec[pid == gnum] == pal[i % 2][fills[d]]).all()
        assert np.array_equal(f.decode(i, "chw"), dec.transpose(2, 0, 1))
        assert np.array_equal(pal[i % 2][f.index_map(i)], dec) and np.array_equal(g.index_map(i), idx)
        assert np.array_equal(f[i][0], dec)
    expected_theta = [float((~k).mean()) if j != 1 else 0.25 for j, k in enumerate(keeps)]
    assert np.allclose(f.thetas, expected_theta)
    batch = f.decode_batch(range(len(SIZES)), layout="hwc")
    assert all(np.array_equal(b, f.decode(i)) for i, b in enumerate(batch))
    f.verify()
    z = DCQFile(path, fill="zero")
    assert z.fill == "zero" and f.fill == "stored"
    for i in range(len(SIZES)):
        dz, pm = z.decode(i), z.pixel_mask(i)
        assert (dz[~pm] == 0).all() and np.array_equal(dz[pm], f.decode(i)[pm])
    assert f.info()["patch_mask"]["kept_patches"] == sum(int(k.sum()) for k in keeps)


def test_explicit_fills_and_payload_is_smaller(tmp_path: Path) -> None:
    pal, _maps, keeps = _write(tmp_path / "m.dcq", fills=True)
    f = DCQFile(tmp_path / "m.dcq")
    for i in range(len(keeps)):
        dec, pm = f.decode(i), f.pixel_mask(i)
        if (~pm).any():
            assert (dec[~pm] == pal[i % 2][3]).all()
    _write(tmp_path / "p.dcq", p=None)
    assert f.metadata.payload_size < DCQFile(tmp_path / "p.dcq").metadata.payload_size
    with pytest.raises(InvalidArgumentError, match="fill"):
        DCQFile(tmp_path / "m.dcq", fill="mae")


def test_writer_refuses_bad_mask_arguments(tmp_path: Path) -> None:
    idx = np.zeros((5, 6), np.uint8)
    with DCQWriter(tmp_path / "a.dcq", 2, 1, ["a"], patch_size=4) as w:
        w.set_palettes(np.zeros((1, 4, 1), np.uint8))
        for kwargs, what in [
            ({"keep_mask": np.ones((3, 2), bool)}, "keep_mask must have shape"),
            ({"keep_mask": np.full((2, 2), 2)}, "boolean"),
            ({"keep_mask": np.array([[1, 0], [1, 1]], bool), "fills": [0, 1]}, "one index per dropped"),
            ({"keep_mask": np.array([[1, 0], [1, 1]], bool), "fills": [4]}, "0..3"),
            ({"theta": 1.5}, "theta"),
            ({"theta": float("nan")}, "theta"),
        ]:
            with pytest.raises(InvalidArgumentError, match=what):
                w.add_sample(idx, 0, 0, **kwargs)
        assert len(w) == 0  # refused samples leave no trace
        w.add_sample(idx, 0, 0)  # keep_mask=None: every patch kept
    f = DCQFile(tmp_path / "a.dcq")
    assert f.patch_mask(0).all() and float(f.thetas[0]) == 0.0
    with DCQWriter(tmp_path / "b.dcq", 2, 1, ["a"]) as w:
        w.set_palettes(np.zeros((1, 4, 1), np.uint8))
        with pytest.raises(InvalidArgumentError, match="patch_size"):
            w.add_sample(idx, 0, 0, keep_mask=np.ones((2, 2), bool))
        w.add_sample(idx, 0, 0)
    with pytest.raises(InvalidArgumentError, match="patch_size"):
        DCQWriter(tmp_path / "c.dcq", 2, 1, ["a"], patch_size=0)


# ----------------------------------------------------------------------------- corrupted sections


def _set(h5: h5py.File, name: str, values: np.ndarray, crc: bool = True) -> None:
    if name in h5:
        del h5[name]
    ds = h5.create_dataset(name, data=values)
    if crc:
        ds.attrs["crc32"] = np.uint32(zlib.crc32(np.ascontiguousarray(values).tobytes()) & 0xFFFFFFFF)


def _corrupt(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    with h5py.File(path, "r+") as h5:
        edit(h5)
    return path


@pytest.fixture()
def masked(tmp_path: Path) -> Path:
    _write(tmp_path / "m.dcq", bits=3, k=5)
    return tmp_path / "m.dcq"


def _keep(h5: h5py.File) -> np.ndarray:
    return np.asarray(h5["masks/keep"][()])


def _first_byte_or(keep: np.ndarray, bits: int) -> np.ndarray:
    out = keep.copy()
    out[0] |= bits
    return out


CORRUPTIONS = {
    "keep_too_long": (lambda h5: _set(h5, "masks/keep", np.append(_keep(h5), np.uint8(0))),
                      StructureError, "masks/keep"),
    "keep_too_short": (lambda h5: _set(h5, "masks/keep", _keep(h5)[:-1]), StructureError, "masks/keep"),
    "keep_2d": (lambda h5: _set(h5, "masks/keep", _keep(h5)[None]), StructureError, "masks/keep"),
    "keep_dtype": (lambda h5: _set(h5, "masks/keep", _keep(h5).astype("<u2")), StructureError, "dtype"),
    # sample 0 (5x6, P=4) has 4 patches: bit 7 of its byte is padding
    "keep_padding": (lambda h5: _set(h5, "masks/keep", _first_byte_or(_keep(h5), 0x80)), StructureError,
                     "sample 0: the padding bits"),
    "keep_crc": (lambda h5: h5["masks/keep"].attrs.modify("crc32", np.uint32(1)), ChecksumMismatchError, "masks/keep"),
    "keep_flip_more_kept": (lambda h5: _set(h5, "masks/keep", _keep(h5) | np.uint8(0x0F)), StructureError,
                            "kept pixels|padding"),
    "fill_ge_k": (lambda h5: _set(h5, "masks/fill", np.full(h5["masks/fill"].shape, 7, np.uint8)),
                  StructureError, "fill index 7"),
    "fill_wrong_count": (lambda h5: _set(h5, "masks/fill", np.zeros(h5["masks/fill"].shape[0] + 1, np.uint8)),
                         StructureError, "masks/fill"),
    "theta_nan": (lambda h5: _set(h5, "masks/theta", np.full(5, np.nan, "<f4")), StructureError, "theta"),
    "theta_above_1": (lambda h5: _set(h5, "masks/theta", np.full(5, 1.5, "<f4")), StructureError, "theta"),
    "theta_f8": (lambda h5: _set(h5, "masks/theta", np.zeros(5, "<f8")), StructureError, "dtype"),
    "theta_missing": (lambda h5: h5.__delitem__("masks/theta"), StructureError, "missing"),
    "patch_size_missing": (lambda h5: h5["masks"].attrs.__delitem__("patch_size"), StructureError, "patch_size"),
    "patch_size_0": (lambda h5: h5["masks"].attrs.modify("patch_size", np.uint32(0)), StructureError, "patch_size"),
    "patch_size_changed": (lambda h5: h5["masks"].attrs.modify("patch_size", np.uint32(3)), StructureError, "masks/keep"),
    "group_without_feature": (lambda h5: h5.attrs.create("must_understand", np.array([], dtype=object),
                                                         dtype=h5py.string_dtype()),
                              StructureError, r"raw payload length \d+ != ceil\(H\*W\*bits/8\)"),
    "feature_without_group": (lambda h5: h5.__delitem__("masks"), StructureError, "is missing"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupted_mask_sections_are_rejected(masked: Path, name: str) -> None:
    edit, err, what = CORRUPTIONS[name]
    _corrupt(masked, edit)
    with pytest.raises(err, match=what) as info:
        DCQFile(masked)
    assert isinstance(info.value, DcqError) and str(masked) in str(info.value)


def test_raw_length_disagreeing_with_kept_pixels_is_rejected(masked: Path) -> None:
    def edit(h5: h5py.File) -> None:
        length = np.asarray(h5["samples/length"][()])
        offset = np.asarray(h5["samples/offset"][()])
        length[1] -= 1
        _set(h5, "samples/length", length)
        _set(h5, "samples/offset", offset)
    _corrupt(masked, edit)
    with pytest.raises(StructureError, match=r"sample 1: raw payload length .* kept pixels"):
        DCQFile(masked)


def test_kept_index_ge_k_is_a_payload_error(masked: Path) -> None:
    def edit(h5: h5py.File) -> None:
        payload = np.asarray(h5["payload"][()])
        payload[:] = 0xFF  # every 3-bit index 7 >= K=5
        h5["payload"][...] = payload
    _corrupt(masked, edit)
    f = DCQFile(masked)
    with pytest.raises(PayloadError, match="sample 0 holds a kept palette index"):
        f.decode(0)


def test_reader_without_the_feature_refuses_masked_files(masked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dcqformat.format import layout as L

    monkeypatch.setattr(L, "KNOWN_FEATURES", frozenset())  # a 1.0 reader
    with pytest.raises(UnsupportedVersionError, match="patch-mask"):
        DCQFile(masked)
