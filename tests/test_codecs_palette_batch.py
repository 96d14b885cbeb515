"""Tests of batched palette decode (``decode_many_into``) against per-sample decoding and the
pure-NumPy reference; single-sample decode is in test_codecs_palette.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import decode_into, decode_many_into, pack_indices, packed_size
from dcqformat.codecs.reference import decode_many_ref, decode_ref, pack_ref
from dcqformat.errors import DcqError, InvalidArgumentError, PayloadError

SETTINGS = settings(max_examples=80, deadline=None)


# --- batched decode ----------------------------------------------------------------------------


def make_batch(
    rng: np.random.Generator, bits: int, batch: int, n_palettes: int, n_colors: int, ch: int
) -> dict[str, object]:
    """A payload of ``batch`` samples in shuffled order with gaps, plus output offsets."""
    n_pixels = rng.integers(0, 90, size=batch).astype(np.int64)
    blobs = [
        pack_ref(rng.integers(0, 1 << bits, size=int(n), dtype=np.uint8), bits) for n in n_pixels
    ]
    order = rng.permutation(batch)
    payload_parts, offsets, pos = [], np.zeros(batch, dtype=np.int64), 0
    for i in order:
        gap = int(rng.integers(0, 3))
        payload_parts.append(rng.integers(0, 256, size=gap, dtype=np.uint8))
        pos += gap
        offsets[i] = pos
        payload_parts.append(blobs[i])
        pos += blobs[i].size
    payload_parts.append(np.zeros(int(rng.integers(0, 3)), dtype=np.uint8))
    payload = np.concatenate(payload_parts).astype(np.uint8)
    out_offsets = np.zeros(batch, dtype=np.int64)
    o = 0
    for i in range(batch):
        o += int(rng.integers(0, 4))
        out_offsets[i] = o
        o += int(n_pixels[i]) * ch
    return dict(
        payload=payload,
        offsets=offsets,
        n_pixels=n_pixels,
        palette_ids=rng.integers(0, n_palettes, size=batch).astype(np.int64),
        palettes=rng.integers(0, 256, size=(n_palettes, n_colors, ch), dtype=np.uint8),
        bits=bits,
        out_size=o + int(rng.integers(0, 4)),
        out_offsets=out_offsets,
    )


@SETTINGS
@given(
    bits=st.integers(1, 8),
    batch=st.integers(1, 12),
    n_palettes=st.integers(1, 4),
    ch=st.sampled_from([1, 3, 4]),
    planar=st.booleans(),
    full_palette=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_many_matches_per_sample(
    bits: int, batch: int, n_palettes: int, ch: int, planar: bool, full_palette: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n_colors = 1 << bits if full_palette else int(rng.integers(1, (1 << bits) + 1))
    b = make_batch(rng, bits, batch, n_palettes, n_colors, ch)
    out = np.zeros(int(b["out_size"]), dtype=np.uint8)  # type: ignore[call-overload]
    args = {k: v for k, v in b.items() if k != "out_size"}
    result = decode_many_into(out=out, planar=planar, **args)  # type: ignore[arg-type]
    expected, first_bad = decode_many_ref(out_size=out.size, planar=planar, **args)  # type: ignore[arg-type]
    assert result == first_bad
    if full_palette:
        assert result == -1
    # samples before the first invalid one are decoded exactly as decode_into does
    last = batch if result == -1 else result
    payload, palettes = b["payload"], b["palettes"]
    assert isinstance(payload, np.ndarray) and isinstance(palettes, np.ndarray)
    for i in range(last):
        n = int(args["n_pixels"][i])  # type: ignore[index]
        o = int(args["out_offsets"][i])  # type: ignore[index]
        single = np.empty(n * ch, dtype=np.uint8)
        start = int(args["offsets"][i])  # type: ignore[index]
        pal = palettes[int(args["palette_ids"][i])]  # type: ignore[index]
        assert decode_into(payload[start:], bits, n, pal, single, planar) == 0
        np.testing.assert_array_equal(out[o : o + n * ch], single)
    if result == -1:
        np.testing.assert_array_equal(out, expected)


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from([1, 2, 4, 3, 8]),
    batch=st.integers(1, 14),
    n_palettes=st.integers(1, 3),
    ch=st.sampled_from([1, 3, 4]),
    planar=st.booleans(),
    full_palette=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_many_shared_byte_tables_match_the_reference(
    bits: int, batch: int, n_palettes: int, ch: int, planar: bool, full_palette: bool, seed: int
) -> None:
    """Batches whose palettes are shared by enough pixels take one byte table per palette
    (q = 1, 2, 4; 1 or 3 channels); samples whose pixel count is not whole bytes, and palettes
    used by too few pixels, the per-sample kernels. Every layout agrees with the reference,
    invalid indices included, into outputs at odd offsets."""
    rng = np.random.default_rng(seed)
    n_colors = 1 << bits if full_palette else int(rng.integers(1, (1 << bits) + 1))
    per = 8 // bits if bits in (1, 2, 4) else 1
    n_pixels = rng.integers(0, 4000, size=batch) // per * per
    n_pixels[rng.random(batch) < 0.2] += 1  # not whole bytes: no table for this sample
    blobs = [pack_ref(rng.integers(0, 1 << bits, size=int(n), dtype=np.uint8), bits) for n in n_pixels]
    if not full_palette and rng.random() < 0.5:  # valid indices only: every sample decodes
        blobs = [pack_ref(rng.integers(0, n_colors, size=int(n), dtype=np.uint8), bits) for n in n_pixels]
    offsets = np.cumsum([0, *[b.size + 1 for b in blobs[:-1]]]).astype(np.int64)
    payload = np.concatenate([np.concatenate([b, np.zeros(1, np.uint8)]) for b in blobs])
    out_offsets = np.cumsum([1, *[int(n) * ch + int(rng.integers(0, 3)) for n in n_pixels[:-1]]])
    args = dict(payload=payload, offsets=offsets, n_pixels=n_pixels.astype(np.int64),
                palette_ids=rng.integers(0, n_palettes, size=batch).astype(np.int64),
                palettes=rng.integers(0, 256, size=(n_palettes, n_colors, ch), dtype=np.uint8),
                bits=bits, out_offsets=out_offsets.astype(np.int64), planar=planar)
    size = int(out_offsets[-1]) + int(n_pixels[-1]) * ch + 2
    out = np.zeros(size, dtype=np.uint8)
    result = decode_many_into(out=out, **args)  # type: ignore[arg-type]
    expected, first_bad = decode_many_ref(out_size=size, **args)  # type: ignore[arg-type]
    assert result == first_bad
    last = batch if result == -1 else result
    for i in range(last):
        o, n = int(out_offsets[i]), int(n_pixels[i]) * ch
        np.testing.assert_array_equal(out[o:o + n], expected[o:o + n])
    if result == -1:
        np.testing.assert_array_equal(out, expected)


def test_decode_many_shares_a_table_per_palette() -> None:
    from dcqformat.codecs.palette import table_slots
    ids = np.array([2, 0, 2, 7, 0, 2], np.int64)
    pixels = np.array([4096, 4096, 4096, 4096, 4097, 100], np.int64)
    slot, n = table_slots(ids, pixels, 2, 8192)
    assert n == 1 and slot.tolist() == [0, -1, 0, -1, -1, 0]  # palette 0: 4096 whole-byte px only
    slot, n = table_slots(ids, pixels, 2, 1)
    assert n == 3 and slot.tolist() == [1, 0, 1, 2, -1, 1]


def test_decode_many_reports_first_bad_sample() -> None:
    palettes = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    good = pack_indices(np.array([0, 1, 2, 3], dtype=np.uint8), 3)
    bad = pack_indices(np.array([0, 5, 2, 3], dtype=np.uint8), 3)
    payload = np.concatenate([good, bad, good, bad])
    offsets = np.arange(4, dtype=np.int64) * good.size
    n_pixels = np.full(4, 4, dtype=np.int64)
    out = np.zeros(4 * 12, dtype=np.uint8)
    out_offsets = np.arange(4, dtype=np.int64) * 12
    ids = np.array([0, 1, 1, 0], dtype=np.int64)
    assert (
        decode_many_into(payload, offsets, n_pixels, ids, palettes, 3, out, out_offsets, False) == 1
    )
    np.testing.assert_array_equal(out[:12].reshape(4, 3), palettes[0])
    # all-valid when the palettes have 8 colours
    pal8 = np.zeros((2, 8, 3), dtype=np.uint8)
    assert decode_many_into(payload, offsets, n_pixels, ids, pal8, 3, out, out_offsets, True) == -1


def test_decode_many_empty_batch() -> None:
    empty = np.zeros(0, dtype=np.int64)
    pal = np.zeros((1, 2, 3), dtype=np.uint8)
    out = np.zeros(0, dtype=np.uint8)
    assert (
        decode_many_into(np.zeros(0, np.uint8), empty, empty, empty, pal, 1, out, empty, False)
        == -1
    )


def _batch_args() -> dict[str, object]:
    """Two 4-pixel samples at q=2 (1 byte each), 3 channels, 2 palettes, out of 24 bytes."""
    return dict(
        payload=np.zeros(2, dtype=np.uint8),
        offsets=np.array([0, 1], dtype=np.int64),
        n_pixels=np.array([4, 4], dtype=np.int64),
        palette_ids=np.array([0, 1], dtype=np.int64),
        palettes=np.zeros((2, 4, 3), dtype=np.uint8),
        bits=2,
        out=np.zeros(24, dtype=np.uint8),
        out_offsets=np.array([0, 12], dtype=np.int64),
        planar=False,
    )


BIG = np.iinfo(np.int64).max


@pytest.mark.parametrize(
    ("change", "error", "sample"),
    [
        ({"offsets": np.array([0, 2])}, PayloadError, 1),  # past the payload
        ({"offsets": np.array([-1, 1])}, PayloadError, 0),
        ({"offsets": np.array([0, BIG])}, PayloadError, 1),
        ({"n_pixels": np.array([4, 5])}, PayloadError, 1),  # 2 bytes needed, 1 left
        ({"n_pixels": np.array([BIG, 4])}, PayloadError, 0),  # size arithmetic would overflow
        ({"n_pixels": np.array([2**61, 4])}, PayloadError, 0),
        ({"n_pixels": np.array([-4, 4])}, InvalidArgumentError, 0),
        ({"palette_ids": np.array([0, 2])}, InvalidArgumentError, 1),  # id >= C
        ({"palette_ids": np.array([-1, 0])}, InvalidArgumentError, 0),
        ({"out_offsets": np.array([0, 13])}, InvalidArgumentError, 1),  # past out
        ({"out_offsets": np.array([-3, 12])}, InvalidArgumentError, 0),
        ({"out_offsets": np.array([0, BIG])}, InvalidArgumentError, 1),
        ({"out": np.zeros(23, dtype=np.uint8)}, InvalidArgumentError, 1),
    ],
)
def test_decode_many_validation_names_sample(
    change: dict[str, object], error: type[DcqError], sample: int
) -> None:
    args = _batch_args()
    args.update(change)
    with pytest.raises(error, match=f"sample {sample}"):
        decode_many_into(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"offsets": np.array([0.0, 1.0])},
        {"offsets": np.array([0, 1, 2])},  # B comes from offsets: the others no longer match
        {"n_pixels": np.array([4])},
        {"palette_ids": np.array([0, 1, 0])},
        {"out_offsets": np.array([[0, 12]])},
        {"palettes": np.zeros((2, 4, 3), dtype=np.int16)},
        {"palettes": np.zeros((4, 3), dtype=np.uint8)},
        {"palettes": np.zeros((0, 4, 3), dtype=np.uint8)},
        {"palettes": np.zeros((2, 300, 3), dtype=np.uint8)},
        {"payload": np.zeros(2, dtype=np.int8)},
        {"out": np.zeros(24, dtype=np.float32)},
        {"bits": 9},
        {"offsets": np.array([0, 2**64 - 1], dtype=np.uint64)},
    ],
)
def test_decode_many_bad_arguments(change: dict[str, object]) -> None:
    args = _batch_args()
    args.update(change)
    with pytest.raises(DcqError):
        decode_many_into(**args)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(-5, 40), min_size=2, max_size=2),
    n_pixels=st.lists(st.integers(-5, 200), min_size=2, max_size=2),
    palette_ids=st.lists(st.integers(-2, 3), min_size=2, max_size=2),
    out_offsets=st.lists(st.integers(-5, 700), min_size=2, max_size=2),
    payload_size=st.integers(0, 40),
    out_size=st.integers(0, 700),
    bits=st.integers(1, 8),
)
def test_decode_many_hostile_arguments_never_crash(
    offsets: list[int],
    n_pixels: list[int],
    palette_ids: list[int],
    out_offsets: list[int],
    payload_size: int,
    out_size: int,
    bits: int,
) -> None:
    """Any combination either raises a DcqError or decodes exactly like the reference."""
    rng = np.random.default_rng(payload_size * 1000 + out_size)
    payload = rng.integers(0, 256, size=payload_size, dtype=np.uint8)
    palettes = rng.integers(0, 256, size=(2, 1 << bits, 3), dtype=np.uint8)
    # guard bytes around `out` catch any write outside the checked range
    guarded = np.full(out_size + 64, 0x5A, dtype=np.uint8)
    out = guarded[32 : 32 + out_size]
    args = dict(
        offsets=np.array(offsets, dtype=np.int64),
        n_pixels=np.array(n_pixels, dtype=np.int64),
        palette_ids=np.array(palette_ids, dtype=np.int64),
        palettes=palettes,
        bits=bits,
        out_offsets=np.array(out_offsets, dtype=np.int64),
        planar=False,
    )
    try:
        result = decode_many_into(payload=payload, out=out, **args)  # type: ignore[arg-type]
    except DcqError:
        assert (guarded == 0x5A).all()
        return
    assert result == -1
    assert (guarded[:32] == 0x5A).all() and (guarded[32 + out_size :] == 0x5A).all()
    for i in range(2):
        n, o = n_pixels[i], out_offsets[i]
        expected, _ = decode_ref(
            payload[offsets[i] : offsets[i] + packed_size(n, bits)],
            bits,
            n,
            palettes[palette_ids[i]],
            False,
        )
        if i == 1 or not (o < out_offsets[1] + n_pixels[1] * 3 and out_offsets[1] < o + n * 3):
            np.testing.assert_array_equal(out[o : o + n * 3], expected)
