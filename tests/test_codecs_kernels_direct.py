"""Kernels called directly, under exactly their documented preconditions, against the pure-NumPy
references of dcqformat.codecs.reference: every palette decode loop (the big-endian-only q = 8
loops too, which decode_kernel never picks on a little-endian machine), the strided loop over a
pixel range, q8_count_bad, table_slots, gather_bytes, the masked decode's status, and the
decoded-map cache's copies (format/cache.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import palette_grey as G
from dcqformat.codecs import palette_rgb as C
from dcqformat.codecs import reference as R
from dcqformat.codecs.gather import gather_bytes
from dcqformat.codecs.palette import table_slots
from dcqformat.codecs.palette_table import decode_by_table
from dcqformat.codecs.patches import decode_masked_into, grid_shape, pack_mask
from dcqformat.format.cache import PackedCache, take

SEEDS = st.integers(0, 2**32 - 1)
# (kernel, channels, planar, bits or None for "any q but 1, 2, 4, 8"); whole bytes only for q < 8
LOOPS = [(G.c1_q8, 1, False, 8), (G.c1_q4, 1, False, 4), (G.c1_q2, 1, False, 2),
         (G.c1_q1, 1, False, 1), (G.c1_qx, 1, False, None),
         (C.hwc3_q8, 3, False, 8), (C.hwc3_q4, 3, False, 4), (C.hwc3_q2, 3, False, 2),
         (C.hwc3_q1, 3, False, 1), (C.hwc3_qx, 3, False, None), (C.hwc3_q8_words, 3, False, 8),
         (C.chw3_q8, 3, True, 8), (C.chw3_q4, 3, True, 4), (C.chw3_q2, 3, True, 2),
         (C.chw3_q1, 3, True, 1), (C.chw3_qx, 3, True, None), (C.chw3_q8_words, 3, True, 8)]


def sample(rng: np.random.Generator, n: int, bits: int, ch: int, full: bool
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices over the whole q-bit range, their packing, and a palette of K <= 2**q colours."""
    k = 1 << bits if full else int(rng.integers(1, (1 << bits) + 1))
    idx = rng.integers(0, 1 << bits, n).astype(np.uint8)
    return idx, R.pack_ref(idx, bits), rng.integers(0, 256, (k, ch)).astype(np.uint8)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(LOOPS), st.sampled_from([3, 5, 6, 7]), st.integers(0, 40), st.booleans(), SEEDS)
def test_every_palette_loop_matches_the_reference(loop, qx: int, groups: int, full: bool, seed: int) -> None:  # type: ignore[no-untyped-def]
    kernel, ch, planar, bits = loop
    bits = qx if bits is None else bits
    rng = np.random.default_rng(seed)
    n = groups * (8 // bits if bits in (1, 2, 4) else 1) + (int(rng.integers(0, 4)) if bits in (3, 5, 6, 7, 8) else 0)
    idx, packed, palette = sample(rng, n, bits, ch, full)
    want, bad = R.decode_ref(packed, bits, n, palette, planar)
    out = np.full(n * ch, 0xAB, np.uint8)
    assert kernel(packed, bits, n, palette, out) == bad
    np.testing.assert_array_equal(out, want)
    if bits in (1, 2, 4) and ch in (1, 3) and n % (8 // bits) == 0:  # the byte-table path too
        out = np.full(n * ch, 0xAB, np.uint8)
        assert decode_by_table(packed, bits, n, palette, out, planar) == bad
        np.testing.assert_array_equal(out, want)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(0, 60), st.integers(1, 5), st.booleans(), st.booleans(), SEEDS)
def test_strided_loop_over_a_pixel_range(bits: int, n: int, ch: int, planar: bool, full: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx, packed, palette = sample(rng, n, bits, ch, full)
    lo, hi = sorted(int(v) for v in rng.integers(0, n + 1, 2))
    want, _ = R.decode_ref(packed, bits, n, palette, planar)
    out = np.full(n * ch, 0xAB, np.uint8)
    ps, cs = (1, n) if planar else (ch, 1)
    got = G.decode_strided(packed[:(n * bits + 7) // 8].copy(), bits, lo, hi, n, palette, out, ps, cs)
    assert got == int((idx[lo:hi] >= palette.shape[0]).sum())
    written = np.zeros((n, ch), bool)
    written[lo:hi] = True
    where = (written.T if planar else written).reshape(-1)
    np.testing.assert_array_equal(out[where], want[where])
    assert (out[~where] == 0xAB).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.integers(1, 256), SEEDS)
def test_q8_count_bad(n: int, k: int, seed: int) -> None:
    packed = np.random.default_rng(seed).integers(0, 256, n + 3).astype(np.uint8)
    assert G.q8_count_bad(packed, n, k) == R.q8_count_bad_ref(packed, n, k)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3000)), max_size=12),
       st.sampled_from([1, 2, 4]), st.sampled_from([0, 1, 100, 8192]))
def test_table_slots(samples: list[tuple[int, int]], bits: int, minimum: int) -> None:
    ids = np.array([s[0] for s in samples], np.int64)
    npx = np.array([s[1] for s in samples], np.int64)
    slot, n_tables = table_slots(ids, npx, bits, minimum)
    want, n_want = R.table_slots_ref(ids, npx, bits, minimum)
    assert slot.tolist() == want.tolist() and n_tables == n_want


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 70), st.sampled_from([1, 2, 3, 4]), st.integers(1, 256), st.booleans(),
       st.integers(0, 5), SEEDS)
def test_gather_bytes(n: int, ch: int, k: int, planar: bool, offset: int, seed: int) -> None:
    """The plain loops at every size and alignment, 4-byte aligned RGB included (gather_palette
    sends those to its word paths, so only a direct call reaches gather_bytes with them)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, n).astype(np.uint8)
    palette = rng.integers(0, 256, (k, ch)).astype(np.uint8)
    out = np.full(offset + n * ch + 5, 0xA5, np.uint8)
    gather_bytes(idx, n, palette, out, offset, planar)
    np.testing.assert_array_equal(out[offset:offset + n * ch], R.gather_palette_ref(idx, palette, planar))
    assert (out[:offset] == 0xA5).all() and (out[offset + n * ch:] == 0xA5).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 5), st.integers(1, 8),
       st.booleans(), st.integers(-2, 1), st.integers(-1, 0), SEEDS)
def test_masked_decode_status(h: int, w: int, p: int, bits: int, use_fill: bool, cut: int,
                              fill_cut: int, seed: int) -> None:
    """Invalid kept indices, invalid fills, and packed bytes or fills that end too soon: the
    kernel's status (or the wrapper's PayloadError for 3 and 4) is the reference's verdict."""
    from dcqformat.errors import PayloadError
    rng = np.random.default_rng(seed)
    gh, gw = grid_shape(h, w, p)
    keep = rng.random(gh * gw) < 0.6
    k = int(rng.integers(1, (1 << bits) + 1))
    kept_pixels = int(np.bincount(R._patch_of_pixel(h, w, p), minlength=keep.size)[keep].sum())
    packed = R.pack_ref(rng.integers(0, 1 << bits, kept_pixels), bits)
    packed = packed[:max(packed.size + cut, 0)] if cut < 0 else np.concatenate([packed, [7] * cut]).astype(np.uint8)
    n_fills = max(int((~keep).sum()) + fill_cut, 0)
    fills = rng.integers(0, min(k + 1, 256), n_fills).astype(np.uint8) if use_fill else None
    palette = rng.integers(0, 256, (k, 3)).astype(np.uint8)
    want = R.masked_status_ref(packed, bits, h, w, p, keep, fills, k)
    out = np.empty(h * w * 3, np.uint8)
    try:
        got = decode_masked_into(packed, bits, h, w, p, pack_mask(keep), fills, palette, out, bool(seed % 2))
    except PayloadError as exc:
        got = 3 if "packed bytes" in str(exc) else 4
    assert got == want


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 40)), max_size=8), SEEDS)
def test_cache_take_and_put_batch(size: int, ranges: list[tuple[int, int]], seed: int) -> None:
    """take: ranges (empty, overlapping, repeated) of a buffer one after another; put_batch:
    sample parts scattered to their places in the cache, nothing else touched."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, size).astype(np.uint8)
    starts = np.array([s % (size + 1) for s, _ in ranges], np.int64)
    lengths = np.array([min(n, size - int(s)) for s, (_, n) in zip(starts, ranges, strict=True)], np.int64)
    data, offsets = take(src, starts, lengths)
    want, want_offsets = R.take_ref(src, starts, lengths)
    np.testing.assert_array_equal(data, want)
    np.testing.assert_array_equal(offsets, want_offsets)
    cache = PackedCache(rng.integers(0, 9, 10))
    cache.data[:] = rng.integers(0, 256, cache.nbytes).astype(np.uint8)
    idx = rng.permutation(10)[:int(rng.integers(0, 11))].astype(np.int64)
    sizes = np.diff(cache.offsets)[idx]
    part_offsets = np.zeros(idx.size + 1, np.int64)
    np.cumsum(sizes, out=part_offsets[1:])
    parts = rng.integers(0, 256, int(part_offsets[-1])).astype(np.uint8)
    expected = R.cache_scatter_ref(parts, part_offsets, cache.data, cache.offsets, idx)
    cache.put_batch(idx, parts, part_offsets)
    np.testing.assert_array_equal(cache.data, expected)
