"""gather_palette (dcqformat.codecs.gather) against its NumPy reference, ``palette[idx]``: every
path (HWC words, CHW pair tables for K <= 16, CHW quads for K > 16, the byte loops for other
channel counts, sizes and alignments), and that bytes outside ``out[o:o + n*ch]`` stay as they
were."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs.gather import gather_palette
from dcqformat.codecs.reference import gather_palette_ref as reference


def run(idx: np.ndarray, palette: np.ndarray, planar: bool, offset: int, idx_offset: int = 0,
        ) -> tuple[np.ndarray, int]:
    """gather_palette into a canary-filled buffer at ``offset``; the indices start at
    ``idx_offset`` of their buffer (to reach misaligned index arrays)."""
    n, ch = idx.size, palette.shape[1]
    buf = np.full(offset + n * ch + 9, 0xA5, np.uint8)
    holder = np.zeros(idx_offset + n, np.uint8)
    holder[idx_offset:] = idx
    gather_palette(holder[idx_offset:], n, palette, buf, offset, planar)
    return buf, n * ch


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), k=st.sampled_from([1, 2, 3, 4, 5, 16, 17, 64, 256]),
       ch=st.sampled_from([1, 3, 4]), planar=st.booleans(), offset=st.integers(0, 9),
       idx_offset=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_gather_equals_the_reference(n: int, k: int, ch: int, planar: bool, offset: int,
                                     idx_offset: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, n).astype(np.uint8)
    palette = rng.integers(0, 256, (k, ch)).astype(np.uint8)
    buf, size = run(idx, palette, planar, offset, idx_offset)
    assert np.array_equal(buf[offset:offset + size], reference(idx, palette, planar))
    assert (buf[:offset] == 0xA5).all() and (buf[offset + size:] == 0xA5).all()


def test_every_word_path_is_taken_and_exact() -> None:
    """Aligned RGB maps of 4m pixels, at the sizes the decoders use, at every K kind."""
    rng = np.random.default_rng(7)
    for n in (4, 784, 4096, 50176):
        for k in (2, 4, 16, 17, 256):
            idx = rng.integers(0, k, n).astype(np.uint8)
            palette = rng.integers(0, 256, (k, 3)).astype(np.uint8)
            for planar in (False, True):
                for offset in (0, 4, 12, 3):  # 3: misaligned, the byte loop
                    buf, size = run(idx, palette, planar, offset)
                    assert np.array_equal(buf[offset:offset + size], reference(idx, palette, planar))
                    assert (buf[offset + size:] == 0xA5).all()


def test_a_palette_of_extreme_colours() -> None:
    """Bytes 0x00 and 0xFF at every position of the packed words (shifts must not carry)."""
    palette = np.array([[0, 255, 0], [255, 0, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
    idx = np.tile(np.arange(4, dtype=np.uint8), 64)[np.random.default_rng(1).permutation(256)]
    for planar in (False, True):
        buf, size = run(idx, palette, planar, 0)
        assert np.array_equal(buf[:size], reference(idx, palette, planar))
