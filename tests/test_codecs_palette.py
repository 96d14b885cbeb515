"""Tests of single-sample palette decode against the pure-NumPy reference, and of the kernels
with the JIT disabled; batched decode is in test_codecs_palette_batch.py."""

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

from dcqformat.codecs import decode_into, pack_indices
from dcqformat.codecs.palette import decode_kernel
from dcqformat.codecs.reference import decode_ref, pack_ref
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
