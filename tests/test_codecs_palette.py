"""Tests of palette decode (single and batched) against the pure-NumPy reference."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import decode_into, decode_many_into, pack_indices, packed_size
from dcqformat.codecs.palette import decode_kernel
from dcqformat.codecs.reference import decode_many_ref, decode_ref, pack_ref
from dcqformat.errors import DcqError, InvalidArgumentError, PayloadError

SETTINGS = settings(max_examples=80, deadline=None)
REPO = Path(__file__).resolve().parents[1]


def random_sample(
    rng: np.random.Generator, n: int, bits: int, n_colors: int, ch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices over the full q-bit range (so some may be >= K), their packing, and a palette."""
    idx = rng.integers(0, 1 << bits, size=n, dtype=np.uint8)
    palette = rng.integers(0, 256, size=(n_colors, ch), dtype=np.uint8)
    return idx, pack_ref(idx, bits), palette


# --- single-sample decode ----------------------------------------------------------------------


@SETTINGS
@given(
    bits=st.integers(1, 8),
    n=st.one_of(st.integers(0, 70), st.sampled_from([1, 7, 8, 9, 1023, 1024, 5000])),
    ch=st.sampled_from([1, 3, 2, 4]),
    planar=st.booleans(),
    full_palette=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_matches_reference(
    bits: int, n: int, ch: int, planar: bool, full_palette: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n_colors = 1 << bits if full_palette else int(rng.integers(1, (1 << bits) + 1))
    idx, packed, palette = random_sample(rng, n, bits, n_colors, ch)
    expected, expected_bad = decode_ref(packed, bits, n, palette, planar)
    out = np.full(n * ch, 0xAB, dtype=np.uint8)  # garbage: every byte must be overwritten
    bad = decode_into(packed, bits, n, palette, out, planar)
    assert bad == expected_bad == int((idx >= n_colors).sum())
    np.testing.assert_array_equal(out, expected)
    if n_colors == 1 << bits:
        assert bad == 0
    # the raw kernel agrees with the wrapper
    out2 = np.full(n * ch, 0xCD, dtype=np.uint8)
    assert decode_kernel(packed, bits, n, palette, out2, planar) == expected_bad
    np.testing.assert_array_equal(out2, expected)


@settings(max_examples=40, deadline=None)
@given(
    bits=st.sampled_from([1, 2, 4, 8]),
    n=st.sampled_from([1, 3, 5, 784, 8192, 8200, 16384, 16392, 16385, 50176]),
    ch=st.sampled_from([1, 3]),
    planar=st.booleans(),
    full_palette=st.booleans(),
    misalign=st.integers(0, 7),
    seed=st.integers(0, 2**32 - 1),
)
def test_byte_table_path_matches_reference(
    bits: int, n: int, ch: int, planar: bool, full_palette: bool, misalign: int, seed: int
) -> None:
    """Large images at q = 1, 2, 4 take the byte-table kernel (whole words per packed byte) and
    q = 8 the word-store kernels, also into an output that starts at an odd address inside a
    bigger buffer."""
    rng = np.random.default_rng(seed)
    n_colors = 1 << bits if full_palette else int(rng.integers(1, (1 << bits) + 1))
    idx, packed, palette = random_sample(rng, n, bits, n_colors, ch)
    expected, expected_bad = decode_ref(packed, bits, n, palette, planar)
    buf = np.full(n * ch + 16, 0xAB, dtype=np.uint8)
    out = buf[misalign:misalign + n * ch]
    assert decode_kernel(packed, bits, n, palette, out, planar) == expected_bad
    np.testing.assert_array_equal(out, expected)
    assert (buf[:misalign] == 0xAB).all() and (buf[misalign + n * ch:] == 0xAB).all()


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("ch", [1, 3])
def test_decode_image_shapes(bits: int, ch: int) -> None:
    rng = np.random.default_rng(bits * 10 + ch)
    h, w = 13, 17
    idx = rng.integers(0, 1 << bits, size=(h, w), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(1 << bits, ch), dtype=np.uint8)
    packed = pack_indices(idx, bits)
    hwc = np.empty((h, w, ch), dtype=np.uint8)
    assert decode_into(packed, bits, h * w, palette, hwc, planar=False) == 0
    np.testing.assert_array_equal(hwc, palette[idx])
    chw = np.empty((ch, h, w), dtype=np.uint8)
    assert decode_into(packed, bits, h * w, palette, chw, planar=True) == 0
    np.testing.assert_array_equal(chw, np.moveaxis(palette[idx], -1, 0))


def test_decode_invalid_indices_written_as_zero() -> None:
    idx = np.array([0, 1, 2, 3, 4, 5, 6, 7, 6, 5], dtype=np.uint8)
    palette = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.uint8)
    out = np.full((10, 3), 0xFF, dtype=np.uint8)
    assert decode_into(pack_indices(idx, 3), 3, 10, palette, out, False) == 7
    np.testing.assert_array_equal(out[:3], palette)
    assert not out[3:].any()


def test_decode_accepts_longer_packed_readonly_and_bytes() -> None:
    idx = np.arange(16, dtype=np.uint8) % 8
    palette = np.arange(24, dtype=np.uint8).reshape(8, 3)
    packed = np.concatenate([pack_indices(idx, 3), np.full(5, 0xFF, dtype=np.uint8)])
    packed.flags.writeable = False
    out = np.empty(48, dtype=np.uint8)
    assert decode_into(packed, 3, 16, palette, out, False) == 0
    np.testing.assert_array_equal(out.reshape(16, 3), palette[idx])
    out[:] = 0
    assert decode_into(packed.tobytes(), 3, 16, palette, out, False) == 0
    np.testing.assert_array_equal(out.reshape(16, 3), palette[idx])


def test_decode_from_memmap(tmp_path: Path) -> None:
    idx = np.random.default_rng(3).integers(0, 4, size=101, dtype=np.uint8)
    path = tmp_path / "payload.bin"
    path.write_bytes(b"\x00" * 7 + pack_indices(idx, 2).tobytes())
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    palette = np.array([[1], [2], [3], [4]], dtype=np.uint8)
    out = np.empty(101, dtype=np.uint8)
    assert decode_into(mm[7:], 2, 101, palette, out, True) == 0
    np.testing.assert_array_equal(out, palette[idx, 0])
    del mm


def test_decode_zero_pixels() -> None:
    palette = np.zeros((2, 3), dtype=np.uint8)
    assert (
        decode_into(np.zeros(0, dtype=np.uint8), 1, 0, palette, np.empty(0, np.uint8), False) == 0
    )


# --- single-sample errors ----------------------------------------------------------------------


def _ok_args() -> dict[str, object]:
    return dict(
        packed=np.zeros(6, dtype=np.uint8),
        bits=3,
        n_pixels=16,
        palette=np.zeros((8, 3), dtype=np.uint8),
        out=np.empty(48, dtype=np.uint8),
        planar=False,
    )


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"bits": 0}, InvalidArgumentError),
        ({"bits": 9}, InvalidArgumentError),
        ({"n_pixels": -1}, InvalidArgumentError),
        ({"packed": np.zeros(5, dtype=np.uint8)}, PayloadError),
        ({"packed": np.zeros(6, dtype=np.int8)}, InvalidArgumentError),
        ({"packed": np.zeros((2, 3), dtype=np.uint8)}, InvalidArgumentError),
        ({"n_pixels": 17}, InvalidArgumentError),  # out no longer matches
        ({"out": np.empty(47, dtype=np.uint8)}, InvalidArgumentError),
        ({"out": np.empty(49, dtype=np.uint8)}, InvalidArgumentError),
        ({"out": np.empty(48, dtype=np.int16)}, InvalidArgumentError),
        ({"out": np.empty((48, 2), dtype=np.uint8)[:, 0]}, InvalidArgumentError),
        ({"out": [0] * 48}, InvalidArgumentError),
        ({"palette": np.zeros((8, 3), dtype=np.int32)}, InvalidArgumentError),
        ({"palette": np.zeros((3, 8), dtype=np.uint8).T}, InvalidArgumentError),
        ({"palette": np.zeros((0, 3), dtype=np.uint8)}, InvalidArgumentError),
        ({"palette": np.zeros((257, 3), dtype=np.uint8)}, InvalidArgumentError),
        ({"palette": np.zeros(24, dtype=np.uint8)}, InvalidArgumentError),
        (
            {"palette": np.zeros((8, 0), dtype=np.uint8), "out": np.empty(0, np.uint8)},
            InvalidArgumentError,
        ),
    ],
)
def test_decode_errors(change: dict[str, object], error: type[DcqError]) -> None:
    args = _ok_args()
    args.update(change)
    with pytest.raises(error):
        decode_into(**args)  # type: ignore[arg-type]


def test_decode_readonly_out_rejected() -> None:
    args = _ok_args()
    out = args["out"]
    assert isinstance(out, np.ndarray)
    out.flags.writeable = False
    with pytest.raises(InvalidArgumentError, match="writeable"):
        decode_into(**args)  # type: ignore[arg-type]


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


# --- NUMBA_DISABLE_JIT -------------------------------------------------------------------------


def test_kernels_work_with_jit_disabled() -> None:
    """With NUMBA_DISABLE_JIT=1 the kernels run as plain Python and still agree with the reference."""
    script = textwrap.dedent(
        """
        import numpy as np
        import numba
        from numba.core import config
        assert config.DISABLE_JIT
        from dcqformat.codecs import decode_into, decode_many_into, decode_masked_into, pack_indices as pk
        from dcqformat.codecs import pack_indices, unpack_indices
        from dcqformat.codecs.palette import decode_kernel
        from dcqformat.codecs.reference import decode_masked_ref, decode_ref, pack_ref
        assert not hasattr(decode_kernel, "signatures")  # a plain Python function
        rng = np.random.default_rng(0)
        for bits in range(1, 9):
            for n in (0, 1, 13, 64):
                for ch in (1, 3, 4):
                    idx = rng.integers(0, 1 << bits, size=n, dtype=np.uint8)
                    packed = pack_indices(idx, bits)
                    assert (packed == pack_ref(idx, bits)).all()
                    assert (unpack_indices(packed, n, bits) == idx).all()
                    pal = rng.integers(0, 256, size=(max(1, (1 << bits) - 1), ch), dtype=np.uint8)
                    for planar in (False, True):
                        out = np.empty(n * ch, dtype=np.uint8)
                        bad = decode_into(packed, bits, n, pal, out, planar)
                        exp, exp_bad = decode_ref(packed, bits, n, pal, planar)
                        assert bad == exp_bad and (out == exp).all(), (bits, n, ch, planar)
        pal3 = rng.integers(0, 256, size=(2, 4, 3), dtype=np.uint8)
        p = pack_indices(np.arange(8, dtype=np.uint8) % 4, 2)
        out = np.empty(24, dtype=np.uint8)
        z = np.zeros(1, dtype=np.int64)
        assert decode_many_into(p, z, z + 8, z + 1, pal3, 2, out, z, False) == -1
        assert (out.reshape(8, 3) == pal3[1][np.arange(8) % 4]).all()
        keep = np.packbits(np.array([1, 0, 1, 1, 0, 1], np.uint8), bitorder="little")  # 5x7 at P=3
        kept = rng.integers(0, 4, size=9 + 3 + 6 + 2, dtype=np.uint8)  # patches 0, 2, 3, 5
        fills = np.array([3, 1], np.uint8)
        pk_kept = pk(kept, 2)
        out = np.empty(5 * 7 * 3, dtype=np.uint8)
        assert decode_masked_into(pk_kept, 2, 5, 7, 3, keep, fills, pal3[0], out, True) == 0
        keep_bool = np.array([1, 0, 1, 1, 0, 1], bool)
        assert (out == decode_masked_ref(pk_kept, 2, 5, 7, 3, keep_bool, fills, pal3[0], True)).all()
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
