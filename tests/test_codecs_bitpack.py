"""Tests of the normative q-bit packing: fixed byte examples, round trips, kernel vs reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import pack_indices, packed_size, padding_is_zero, unpack_indices
from dcqformat.codecs.reference import pack_ref, unpack_ref
from dcqformat.errors import DcqError, InvalidArgumentError, PayloadError

SETTINGS = settings(max_examples=60, deadline=None)

# Shapes that matter: a single pixel, very wide single rows, odd sizes, sizes around the
# 8-pixel group boundary, plus arbitrary small shapes.
SHAPES = st.one_of(
    st.sampled_from([(1, 1), (1, 5000), (1, 4999), (3, 5), (7, 9), (1, 8), (1, 7), (2, 9), (0, 4)]),
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
)
FILLS = st.sampled_from(["random", "zeros", "max", "alternate"])


def make_indices(shape: tuple[int, int], bits: int, fill: str, seed: int) -> np.ndarray:
    """An index map of ``shape`` at ``bits`` filled in the named way."""
    top = (1 << bits) - 1
    if fill == "zeros":
        return np.zeros(shape, dtype=np.uint8)
    if fill == "max":
        return np.full(shape, top, dtype=np.uint8)
    if fill == "alternate":
        return (np.indices(shape).sum(axis=0) % 2 * top).astype(np.uint8)
    rng = np.random.default_rng(seed)
    return rng.integers(0, top + 1, size=shape, dtype=np.uint8)


# --- fixed, hand-computed examples -------------------------------------------------------------


def test_q3_worked_example() -> None:
    # 5 = 101b, 3 = 011b, 7 = 111b, LSB first: stream bits 1,0,1, 1,1,0, 1,1,1
    # byte 0 = bits 0..7 = 5 | 3<<3 | (7<<6 & 0xFF) = 0b11_011_101 = 0xDD
    # byte 1 = bit 8 (top bit of 7) + 7 zero padding bits = 0x01
    packed = pack_indices(np.array([5, 3, 7], dtype=np.uint8), 3)
    assert packed.dtype == np.uint8
    assert packed.tolist() == [0xDD, 0x01]
    assert unpack_indices(packed, 3, 3).tolist() == [5, 3, 7]
    assert padding_is_zero(packed, 3, 3)


@pytest.mark.parametrize(
    ("bits", "values", "expected"),
    [
        # q=5: pixel 1 (value 1) occupies bits 5..9, crossing from byte 0 into byte 1.
        # byte0 = 31 | 1<<5 = 0x3F; byte1 = 17<<2 = 0x44 (bit 15 is padding = 0).
        (5, [31, 1, 17], [0x3F, 0x44]),
        # q=6: 63 | 0<<6 | 42<<12 | 21<<18 = 0x56A03F (24 bits, no padding).
        (6, [63, 0, 42, 21], [0x3F, 0xA0, 0x56]),
        # q=7: 1 | 127<<7 | 64<<14 = 0x103F81 (21 bits, 3 padding bits).
        (7, [1, 127, 64], [0x81, 0x3F, 0x10]),
        # q=7, a full group of 8 pixels (7 bytes) plus one pixel into byte 7.
        (
            7,
            [85, 42, 127, 1, 64, 51, 12, 112, 17],
            [0x55, 0xD5, 0x3F, 0x00, 0x9C, 0x31, 0xE0, 0x11],
        ),
        # aligned widths
        (1, [1, 0, 1, 1, 0, 0, 0, 1, 1], [0x8D, 0x01]),
        (2, [3, 0, 1, 2, 1], [0x93, 0x01]),
        (4, [0xA, 0x5, 0xF], [0x5A, 0x0F]),
        (8, [0, 255, 17], [0x00, 0xFF, 0x11]),
    ],
)
def test_fixed_cross_byte_examples(bits: int, values: list[int], expected: list[int]) -> None:
    arr = np.array(values, dtype=np.uint8)
    assert pack_indices(arr, bits).tolist() == expected
    assert pack_ref(arr, bits).tolist() == expected
    assert unpack_indices(np.array(expected, dtype=np.uint8), len(values), bits).tolist() == values


def test_packed_size() -> None:
    assert packed_size(0, 3) == 0
    assert packed_size(1, 1) == 1
    assert packed_size(8, 1) == 1
    assert packed_size(9, 1) == 2
    assert packed_size(3, 3) == 2
    assert packed_size(224 * 224, 3) == 224 * 224 * 3 // 8
    assert packed_size(5, 8) == 5
    assert packed_size(np.int64(16), 2) == 4
    for bits in range(1, 9):
        for n in range(0, 40):
            assert packed_size(n, bits) == -(-n * bits // 8)


# --- properties --------------------------------------------------------------------------------


@SETTINGS
@given(bits=st.integers(1, 8), shape=SHAPES, fill=FILLS, seed=st.integers(0, 2**32 - 1))
def test_round_trip_and_reference(bits: int, shape: tuple[int, int], fill: str, seed: int) -> None:
    idx = make_indices(shape, bits, fill, seed)
    packed = pack_indices(idx, bits)
    assert packed.dtype == np.uint8 and packed.ndim == 1
    assert packed.size == packed_size(idx.size, bits)
    np.testing.assert_array_equal(packed, pack_ref(idx, bits))
    assert padding_is_zero(packed, idx.size, bits)
    back = unpack_indices(packed, idx.size, bits)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, idx.reshape(-1))


@SETTINGS
@given(bits=st.integers(1, 8), n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
def test_unpack_arbitrary_bytes_matches_reference(bits: int, n: int, seed: int) -> None:
    # Arbitrary bytes, padding included: unpack ignores padding, padding_is_zero reports it.
    rng = np.random.default_rng(seed)
    packed = rng.integers(0, 256, size=packed_size(n, bits), dtype=np.uint8)
    np.testing.assert_array_equal(unpack_indices(packed, n, bits), unpack_ref(packed, n, bits))
    used = (n * bits) % 8
    expected = used == 0 or int(packed[-1]) >> used == 0
    assert padding_is_zero(packed, n, bits) == expected
    # repacking what was unpacked clears the padding and nothing else
    repacked = pack_indices(unpack_indices(packed, n, bits), bits)
    if used:
        np.testing.assert_array_equal(repacked[:-1], packed[:-1])
        assert repacked[-1] == packed[-1] & ((1 << used) - 1)
    else:
        np.testing.assert_array_equal(repacked, packed)


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int32, np.int64]
)
def test_integer_dtypes_accepted(dtype: type) -> None:
    idx = np.array([[0, 5, 7], [1, 2, 3]], dtype=dtype)
    np.testing.assert_array_equal(pack_indices(idx, 3), pack_ref(idx.astype(np.uint8), 3))


def test_non_contiguous_input_is_flattened_row_major() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 8, size=(13, 11), dtype=np.uint8)
    for view in (base.T, base[::2, 1::3], base[:, ::-1]):
        np.testing.assert_array_equal(
            pack_indices(view, 3), pack_ref(np.ascontiguousarray(view), 3)
        )


def test_unpack_accepts_bytes_and_readonly_views() -> None:
    packed = pack_indices(np.array([5, 3, 7], dtype=np.uint8), 3)
    assert unpack_indices(packed.tobytes(), 3, 3).tolist() == [5, 3, 7]
    ro = packed.copy()
    ro.flags.writeable = False
    assert unpack_indices(ro, 3, 3).tolist() == [5, 3, 7]
    strided = np.zeros(4, dtype=np.uint8)
    strided[::2] = packed
    assert unpack_indices(strided[::2], 3, 3).tolist() == [5, 3, 7]


def test_flipped_padding_bit_detected() -> None:
    packed = pack_indices(np.array([5, 3, 7], dtype=np.uint8), 3)
    for bit in range(1, 8):
        bad = packed.copy()
        bad[-1] |= 1 << bit
        assert not padding_is_zero(bad, 3, 3)
        assert unpack_indices(bad, 3, 3).tolist() == [5, 3, 7]  # unpack ignores padding


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [0, 9, -1, 3.0, True, "3", None])
def test_bad_bits(bits: object) -> None:
    idx = np.zeros(4, dtype=np.uint8)
    with pytest.raises(InvalidArgumentError):
        pack_indices(idx, bits)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        unpack_indices(np.zeros(4, dtype=np.uint8), 4, bits)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        packed_size(4, bits)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        padding_is_zero(np.zeros(4, dtype=np.uint8), 4, bits)  # type: ignore[arg-type]


@pytest.mark.parametrize("bits", range(1, 9))
def test_value_out_of_range(bits: int) -> None:
    if bits < 8:
        idx = np.array([0, 1 << bits, 0], dtype=np.uint16)
        with pytest.raises(InvalidArgumentError, match=str(1 << bits)):
            pack_indices(idx, bits)
    else:
        with pytest.raises(InvalidArgumentError):
            pack_indices(np.array([0, 256], dtype=np.uint16), bits)
    with pytest.raises(InvalidArgumentError):
        pack_indices(np.array([0, -1], dtype=np.int16), bits)


@pytest.mark.parametrize(
    "indices",
    [
        np.array([0.0, 1.0]),
        np.array([True, False]),
        np.array(["a"]),
        np.array([1, 2], dtype=object),
        np.array([1 + 0j]),
    ],
)
def test_non_integer_dtype_rejected(indices: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError):
        pack_indices(indices, 3)


def test_wrong_packed_length() -> None:
    packed = pack_indices(np.arange(8, dtype=np.uint8), 3)  # 3 bytes
    for wrong in (packed[:-1], np.concatenate([packed, np.zeros(1, dtype=np.uint8)]), packed[:0]):
        with pytest.raises(PayloadError, match="expected 3"):
            unpack_indices(wrong, 8, 3)
        with pytest.raises(PayloadError):
            padding_is_zero(wrong, 8, 3)


def test_bad_packed_type_and_counts() -> None:
    with pytest.raises(InvalidArgumentError):
        unpack_indices(np.zeros(3, dtype=np.int16), 8, 3)
    with pytest.raises(InvalidArgumentError):
        unpack_indices(np.zeros((1, 3), dtype=np.uint8), 8, 3)
    with pytest.raises(InvalidArgumentError):
        unpack_indices([1, 2, 3], 8, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        unpack_indices(np.zeros(3, dtype=np.uint8), -8, 3)
    with pytest.raises(InvalidArgumentError):
        unpack_indices(np.zeros(3, dtype=np.uint8), 8.0, 3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        packed_size(-1, 3)


def test_errors_are_dcq_errors() -> None:
    assert issubclass(InvalidArgumentError, DcqError)
    assert issubclass(PayloadError, DcqError)
