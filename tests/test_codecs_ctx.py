"""The ctx coder (spec §14): the Numba kernels held to the plain-Python reference on random maps
at every q, odd shapes, one-colour and maximum-entropy maps, rectangles of masked samples; the
rank transform; the spec's worked example; hostile streams and models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import ctx_reference as R
from dcqformat.codecs.ctx import decode_indices, decode_pixels, encode_indices
from dcqformat.codecs.ctx_decode import ctx_decode_kernel
from dcqformat.codecs.ctx_model import CtxModel, ModelError, count_contexts, normalise_counts
from dcqformat.codecs.ctx_rans import OK
from dcqformat.errors import InvalidArgumentError, PayloadError

SETTINGS = settings(max_examples=40, deadline=None)
SHAPES = st.one_of(
    st.sampled_from([(1, 1), (1, 600), (600, 1), (2, 2), (3, 7), (1, 2), (2, 1)]),
    st.tuples(st.integers(1, 24), st.integers(1, 24)),
)
KINDS = st.sampled_from(["random", "flat", "max_entropy", "runs"])


def make_map(shape: tuple[int, int], k: int, kind: str, seed: int) -> np.ndarray:
    """An index map of ``shape`` with values < ``k``, drawn in the named way."""
    rng = np.random.default_rng(seed)
    if kind == "flat":
        return np.full(shape, k - 1, np.uint8)
    if kind == "max_entropy":
        return rng.integers(0, k, size=shape, dtype=np.uint8)
    if kind == "runs":
        yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
        return (((yy // 3) + (xx // 4)) % k).astype(np.uint8)
    m = rng.integers(0, k, size=shape, dtype=np.uint8)
    return np.where(rng.random(shape) < 0.7, m[:, :1], m).astype(np.uint8)  # rows of repeats


def fit(maps: list[np.ndarray], rects: list[list[tuple[int, int]]], k: int) -> tuple[CtxModel, np.ndarray]:
    counts = np.zeros((1, 1024, k), np.int64)
    for m, r in zip(maps, rects, strict=True):
        rr = np.array(r, np.int64).reshape(-1, 2)
        count_contexts(m.reshape(-1), rr[:, 0], rr[:, 1], counts[0])
    return CtxModel.fit(counts), counts


def as_lists(model: CtxModel) -> tuple[list[int], list[list[int]]]:
    return model.row_of.tolist(), model.freq.tolist()


# -- context helpers --------------------------------------------------------------------------
@given(st.lists(st.integers(0, 9), min_size=4, max_size=4), st.integers(10, 20))
def test_rank_transform_is_a_bijection(nb4: list[int], k: int) -> None:
    nb = (*nb4, 0, 0, 0, 0)
    symbols = [R.to_rank_ref(v, nb) for v in range(k)]
    assert sorted(symbols) == list(range(k))
    assert [R.from_rank_ref(s, nb) for s in symbols] == list(range(k))


def test_rank_transform_example_of_the_spec() -> None:
    nb = (2, 2, 0, 3, 0, 0, 0, 0)  # §14.3: D = (2, 0, 3)
    assert [R.to_rank_ref(v, nb) for v in (2, 0, 3, 1, 4)] == [0, 1, 2, 3, 4]


@SETTINGS
@given(SHAPES, st.integers(1, 8), KINDS, st.integers(0, 2**31))
def test_count_kernel_matches_reference(shape: tuple[int, int], bits: int, kind: str, seed: int) -> None:
    k = 1 << bits
    m = make_map(shape, k, kind, seed)
    counts = np.zeros((1024, k), np.int64)
    count_contexts(m.reshape(-1), np.array([shape[0]]), np.array([shape[1]]), counts)
    np.testing.assert_array_equal(counts, R.count_reference(m, [shape], k))


# -- coder: kernel == reference -----------------------------------------------------------------
@SETTINGS
@given(st.lists(SHAPES, min_size=1, max_size=4), st.integers(1, 8), KINDS, st.integers(0, 2**31))
def test_kernel_streams_equal_reference_and_round_trip(shapes: list[tuple[int, int]], bits: int,
                                                       kind: str, seed: int) -> None:
    k = (1 << bits) - (seed % 2 if bits > 1 else 0)  # also K < 2**q
    maps = [make_map(s, k, kind, seed + j) for j, s in enumerate(shapes)]
    model, _ = fit(maps, [[s] for s in shapes], k)
    row_of, freq = as_lists(model)
    one = np.ones(1, np.int64)
    for m in maps:
        h, w = m.shape
        stream = encode_indices(m.reshape(-1), one * h, one * w, model)
        assert stream.tobytes() == R.encode_reference(m, [m.shape], row_of, 0, freq)
        np.testing.assert_array_equal(decode_indices(stream, one * h, one * w, model), m.reshape(-1))
        np.testing.assert_array_equal(R.decode_reference(stream.tobytes(), [m.shape], row_of, 0, freq),
                                      m.reshape(-1))
        pal = np.arange(k * 3, dtype=np.uint8).reshape(k, 3)
        for planar in (False, True):
            out = np.empty(h * w * 3, np.uint8)
            decode_pixels(stream, 0, stream.size, h, w, model, 0, pal, out, planar)
            want = pal[m.reshape(-1)]
            np.testing.assert_array_equal(out, want.T.reshape(-1) if planar else want.reshape(-1))


@SETTINGS
@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 6), st.integers(1, 4), st.integers(0, 2**31))
def test_rectangles_of_a_masked_sample(h: int, w: int, p: int, bits: int, seed: int) -> None:
    """Kept patches are separate rectangles: neighbours never cross between them."""
    rng = np.random.default_rng(seed)
    k = 1 << bits
    gh, gw = -(-h // p), -(-w // p)
    keep = rng.random((gh, gw)) < 0.6
    rects = [(min(p, h - r * p), min(p, w - c * p)) for r in range(gh) for c in range(gw) if keep[r, c]]
    n = sum(a * b for a, b in rects)
    values = make_map((1, max(n, 1)), k, "random", seed).reshape(-1)[:n]
    model, counts = fit([values], [rects], k)
    np.testing.assert_array_equal(counts[0], R.count_reference(values, rects, k))
    rh = np.array([a for a, _ in rects], np.int64)
    rw = np.array([b for _, b in rects], np.int64)
    stream = encode_indices(values, rh, rw, model)
    row_of, freq = as_lists(model)
    assert stream.tobytes() == R.encode_reference(values, rects, row_of, 0, freq)
    np.testing.assert_array_equal(decode_indices(stream, rh, rw, model), values)
    if n == 0:
        assert stream.tobytes() == bytes([0, 0, 0x80, 0])  # §14.4: the empty stream


def test_worked_example_of_the_spec() -> None:
    """§14.6: the 1x3 map 0 0 1 under row 1023 = (2048, 2048) is the stream 00 20 00 04."""
    model = CtxModel.from_arrays(1, 2, np.array([1023], "<u4"), np.array([2048, 2048], "<u2"))
    one = np.ones(1, np.int64)
    stream = encode_indices(np.array([0, 0, 1], np.uint8), one, one * 3, model)
    assert stream.tobytes() == bytes([0x00, 0x20, 0x00, 0x04])
    assert decode_indices(stream, one, one * 3, model).tolist() == [0, 0, 1]


def test_coding_is_close_to_the_ideal_code_length() -> None:
    maps = [make_map((64, 64), 4, "random", s) for s in range(20)]
    model, counts = fit(maps, [[(64, 64)]] * 20, 4)
    one = np.ones(1, np.int64)
    total = sum(encode_indices(m.reshape(-1), one * 64, one * 64, model).size for m in maps)
    ideal = model.cost_bits(counts) / 8 + 4 * len(maps)
    assert ideal - 4 * len(maps) <= total <= ideal * 1.01 + 20  # the final state carries bits too


# -- models ----------------------------------------------------------------------------------
@given(st.lists(st.lists(st.integers(0, 10**6), min_size=5, max_size=5), min_size=1, max_size=8))
def test_normalised_rows_sum_to_4096_and_keep_every_symbol(rows: list[list[int]]) -> None:
    counts = np.array(rows, np.int64)
    f = normalise_counts(counts)
    for c, r in zip(counts, f, strict=True):
        if c.sum():
            assert r.sum() == 4096 and ((r > 0) == (c > 0)).all()
        else:
            assert not r.any()


@pytest.mark.parametrize(("rows", "freq", "what"), [
    ([3, 2], [4096, 0, 4096, 0], "strictly increasing"),
    ([1024], [4096, 0], "row key"),
    ([5], [4096, 61440], "sums to 65536"),
    ([5], [4095, 0], "sums to 4095"),
    ([5], [4096], "entries"),
])
def test_bad_models_are_refused(rows: list[int], freq: list[int], what: str) -> None:
    with pytest.raises(ModelError, match=what):
        CtxModel.from_arrays(1, 2, np.array(rows, "<u4"), np.array(freq, "<u2"))


def test_encoder_refuses_a_model_that_cannot_code_the_map() -> None:
    model = CtxModel.from_arrays(1, 2, np.array([1023], "<u4"), np.array([4096, 0], "<u2"))
    one = np.ones(1, np.int64)
    with pytest.raises(InvalidArgumentError, match="frequency 0"):
        encode_indices(np.array([0, 1], np.uint8), one, one * 2, model)
    model = CtxModel.from_arrays(1, 2, np.array([1023], "<u4"), np.array([2048, 2048], "<u2"))
    with pytest.raises(InvalidArgumentError, match="no row"):  # pixel 2: WW != W, context 895
        encode_indices(np.array([0, 1, 1], np.uint8), one, one * 3, model)


# -- hostile streams -------------------------------------------------------------------------
def _reference_accepts(stream: bytes, shape: tuple[int, int], model: CtxModel) -> bool:
    row_of, freq = as_lists(model)
    try:
        R.decode_reference(stream, [shape], row_of, 0, freq)
    except ValueError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.sampled_from([(1, 1), (3, 5), (8, 8), (1, 70)]))
def test_random_streams_never_crash_and_agree_with_reference(data: bytes, shape: tuple[int, int]) -> None:
    model, _ = fit([make_map(shape, 4, "random", 1)], [[shape]], 4)
    one = np.ones(1, np.int64)
    buf = np.frombuffer(data, np.uint8)
    out = np.empty(shape[0] * shape[1], np.uint8)
    status = ctx_decode_kernel(buf, 0, buf.size, one * shape[0], one * shape[1], model.entry, 0,
                               model.cum_flat, model.k, out)
    assert (status == OK) == _reference_accepts(data, shape, model)
    if status != OK:
        with pytest.raises(PayloadError, match="sample 7"):
            decode_indices(buf, one * shape[0], one * shape[1], model, where="f.dcq: sample 7")


@pytest.mark.parametrize("cut", ["truncate", "trail", "flip"])
def test_damaged_streams_are_payload_errors(cut: str) -> None:
    m = make_map((16, 16), 4, "random", 3)
    model, _ = fit([m], [[(16, 16)]], 4)
    one = np.ones(1, np.int64)
    stream = encode_indices(m.reshape(-1), one * 16, one * 16, model).tobytes()
    bad = {"truncate": stream[:-1], "trail": stream + b"\0", "flip": bytes([stream[0] ^ 0x80]) + stream[1:]}[cut]
    with pytest.raises(PayloadError, match="ctx stream"):
        decode_indices(np.frombuffer(bad, np.uint8), one * 16, one * 16, model)


@SETTINGS
@given(bits=st.integers(1, 8), n=st.integers(0, 70), offset=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_pack_into_equals_the_reference_packing(bits: int, n: int, offset: int, seed: int) -> None:
    """The batch kernel's packer (whole bytes for q = 1, 2, 4, then the bit accumulator) writes
    exactly the §5 bytes bitpack.pack_indices writes, at any offset, for lengths that do and do
    not fill the last byte, and touches nothing after them."""
    from dcqformat.codecs.bitpack import pack_indices
    from dcqformat.codecs.ctx_decode import pack_into
    idx = np.random.default_rng(seed).integers(0, 1 << bits, n, dtype=np.uint8)
    want = pack_indices(idx, bits)
    out = np.full(offset + want.size + 3, 0xAA, np.uint8)
    pack_into(idx, n, bits, out, offset)
    assert out[offset:offset + want.size].tobytes() == want.tobytes()
    assert (out[:offset] == 0xAA).all() and (out[offset + want.size:] == 0xAA).all()
