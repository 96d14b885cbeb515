"""The ctx kernels under random models, held to dcqformat.codecs.ctx_reference: models drawn
directly (not fitted: tiny frequencies, symbol 0 rare, several models, missing rows and zero
frequencies), so every renormalisation and refusal path runs. ``ctx_encode_kernel``'s streams and
statuses; ``ctx_decode_batch_kernel`` on batches of mixed sizes and models in all three modes
(packed maps, HWC, CHW), with damaged streams: it names the reference's first refused sample
and status, writes exactly the samples before it and nothing else; ``ctx_decode_pixels_kernel``
and ``ctx_decode_kernel`` (also on several rectangles, as a masked sample stores them) sample by
sample."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.codecs import ctx_reference as R
from dcqformat.codecs.ctx import batch_status
from dcqformat.codecs.ctx_decode import ctx_decode_kernel, ctx_decode_pixels_kernel
from dcqformat.codecs.ctx_model import CtxModel
from dcqformat.codecs.ctx_rans import OK, ctx_encode_kernel
from dcqformat.codecs.reference import gather_palette_ref, pack_ref

SHAPES = st.one_of(st.sampled_from([(1, 1), (1, 40), (40, 1), (2, 2), (3, 1)]),
                   st.tuples(st.integers(1, 14), st.integers(1, 14)))


def random_model(rng: np.random.Generator, num_models: int, k: int, holes: bool) -> CtxModel:
    """Every (model, context) row stored with positive frequencies, symbol 0's often tiny; with
    ``holes`` some rows left out and some frequencies 0."""
    keys = np.arange(num_models * 1024)
    if holes:
        keys = keys[rng.random(keys.size) < 0.9]
    p = rng.dirichlet(np.full(k, 0.5), size=keys.size)
    freq = 1 + rng.multinomial(4096 - k, p)  # [R, K], every entry >= 1, rows sum to 4096
    if k > 1:
        rare = rng.random(keys.size) < 0.3  # symbol 0 rare: two renormalisations after it
        small = np.minimum(freq[:, 0], 1 + freq[:, 0] % 15)
        freq[rare, 1] += freq[rare, 0] - small[rare]
        freq[rare, 0] = small[rare]
        if holes:
            zero = rng.random(keys.size) < 0.1
            freq[zero, 1] += freq[zero, 0]
            freq[zero, 0] = 0
    return CtxModel.from_arrays(num_models, k, keys.astype("<u4"), freq.reshape(-1).astype("<u2"))


def without_rows(rng: np.random.Generator, model: CtxModel) -> CtxModel:
    """``model`` with about one stored row in eight dropped (a hostile model for its streams)."""
    keep = rng.random(model.rows.size) < 0.875
    freq = model.stored_freq.reshape(model.rows.size, model.k)[keep]
    return CtxModel.from_arrays(model.num_models, model.k, model.rows[keep], freq.reshape(-1))


def random_map(rng: np.random.Generator, shape: tuple[int, int], k: int) -> np.ndarray:
    m = rng.integers(0, k, shape).astype(np.uint8)
    return np.where(rng.random(shape) < 0.6, m[:, :1], m).astype(np.uint8)


def reference_lists(model: CtxModel) -> tuple[list[int], list[list[int]]]:
    return model.row_of.tolist(), model.freq.tolist()


def encode(values: np.ndarray, rects: list[tuple[int, int]], model: CtxModel, base: int
           ) -> tuple[int, np.ndarray]:
    n = values.size
    rh = np.array([r[0] for r in rects], np.int64)
    rw = np.array([r[1] for r in rects], np.int64)
    out = np.empty(2 * n + 8, np.uint8)
    start, status = ctx_encode_kernel(values.reshape(-1), rh, rw, model.row_of, base, model.freq,
                                      model.cum, np.empty(n, np.int32), np.empty(n, np.int32), out)
    return status, out[start:]


@settings(max_examples=80, deadline=None)
@given(st.lists(SHAPES, min_size=1, max_size=4), st.integers(1, 8), st.integers(1, 2),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_encoder_streams_and_statuses(shapes: list[tuple[int, int]], bits: int, num_models: int,
                                      holes: bool, seed: int) -> None:
    """The map as one sample of rectangles ``shapes``: the kernel codes it exactly as the
    reference does, or refuses it with the reference's status (NO_ROW before NO_FREQ)."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, (1 << bits) + 1))
    model = random_model(rng, num_models, k, holes)
    values = np.concatenate([random_map(rng, s, k).reshape(-1) for s in shapes])
    base = int(rng.integers(0, num_models)) * 1024
    row_of, freq = reference_lists(model)
    status, stream = encode(values, shapes, model, base)
    assert status == R.encode_status_reference(values, shapes, row_of, base, freq)
    if status == OK:
        assert stream.tobytes() == R.encode_reference(values, shapes, row_of, base, freq)
        decoded = np.empty(values.size, np.uint8)
        rh, rw = (np.array(v, np.int64) for v in zip(*shapes, strict=True))
        assert ctx_decode_kernel(stream, 0, stream.size, rh, rw, model.entry, base, model.cum_flat,
                                 model.k, decoded) == OK
        np.testing.assert_array_equal(decoded, values)


def damage(rng: np.random.Generator, stream: bytes) -> bytes:
    """The stream unchanged (mostly), cut, extended or with one byte changed."""
    how = rng.integers(0, 7)
    if how == 0 and stream:
        return stream[:int(rng.integers(0, len(stream)))]
    if how == 1:
        return stream + bytes(rng.integers(0, 256, int(rng.integers(1, 3))).astype(np.uint8))
    if how == 2 and stream:
        at = int(rng.integers(0, len(stream)))
        return stream[:at] + bytes([stream[at] ^ int(rng.integers(1, 256))]) + stream[at + 1:]
    return stream


def build_batch(rng: np.random.Generator, shapes: list[tuple[int, int]], model: CtxModel, k: int
                ) -> tuple[list[np.ndarray], list[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """Maps, their (maybe damaged) streams laid out in one buffer with gaps, and the starts,
    lengths and model ids."""
    maps, streams, ids = [], [], []
    for s in shapes:
        m = random_map(rng, s, k)
        mid = int(rng.integers(0, model.num_models))
        status, stream = encode(m.reshape(-1), [s], model, mid * 1024)
        assert status == OK
        maps.append(m.reshape(-1))
        streams.append(damage(rng, stream.tobytes()))
        ids.append(mid)
    buf, starts = bytearray(), []
    for st_ in streams:
        buf += bytes(rng.integers(0, 256, int(rng.integers(0, 3))).astype(np.uint8))
        starts.append(len(buf))
        buf += st_
    buf += bytes(rng.integers(0, 256, 3).astype(np.uint8))  # bytes past the last sample's end
    lengths = np.array([len(x) for x in streams], np.int64)
    return maps, [bytes(buf)], np.array(starts, np.int64), lengths, np.array(ids, np.int64)


@settings(max_examples=60, deadline=None)
@given(st.lists(SHAPES, min_size=0, max_size=6), st.integers(1, 8), st.integers(1, 3),
       st.sampled_from([0, 1, 2]), st.booleans(), st.integers(0, 2**32 - 1))
def test_batch_kernel_matches_the_reference(shapes: list[tuple[int, int]], bits: int, num_models: int,
                                            mode: int, hostile: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, (1 << bits) + 1))
    model = random_model(rng, num_models, k, holes=False)
    maps, (buf,), starts, lengths, ids = build_batch(rng, shapes, model, k)
    if hostile:  # decoded with rows missing from the model that coded them: NO_ROW
        model = without_rows(rng, model)
    ch = int(rng.integers(1, 4))
    palettes = rng.integers(0, 256, (2, k, ch)).astype(np.uint8)
    clusters = rng.integers(0, 2, len(shapes)).astype(np.int64)
    row_of, freq = reference_lists(model)
    verdicts = [R.decode_status_reference(buf[s:s + n], [sh], row_of, int(m) * 1024, freq)
                for s, n, sh, m in zip(starts, lengths, shapes, ids, strict=True)]
    first = next((b for b, (v, _) in enumerate(verdicts) if v != OK), -1)
    sizes = [(h * w * bits + 7) // 8 if mode == 0 else h * w * ch for h, w in shapes]
    out_offsets = np.cumsum([1, *[z + int(rng.integers(0, 3)) for z in sizes]])[:len(shapes)].astype(np.int64)
    out = np.full(int(out_offsets[-1]) + sizes[-1] + 2 if shapes else 4, 0xA5, np.uint8)
    data = np.frombuffer(buf, np.uint8)
    hs = np.array([s[0] for s in shapes], np.int64)
    ws = np.array([s[1] for s in shapes], np.int64)
    got = batch_status(data, starts, lengths, hs, ws, ids, model, bits, palettes, clusters, out,
                       out_offsets, mode)
    assert got == ((-1, OK) if first < 0 else (first, verdicts[first][0]))
    written = np.zeros(out.size, bool)
    for b in range(len(shapes) if first < 0 else first):
        o, values = int(out_offsets[b]), verdicts[b][1]
        assert values is not None and np.array_equal(values, maps[b])
        want = pack_ref(values, bits) if mode == 0 else gather_palette_ref(values, palettes[clusters[b]], mode == 2)
        np.testing.assert_array_equal(out[o:o + sizes[b]], want)
        written[o:o + sizes[b]] = True
    assert (out[~written] == 0xA5).all()
    for b, (h, w) in enumerate(shapes):  # the one-sample kernels give the same verdicts
        pixels = np.full(h * w * ch, 0xA5, np.uint8)
        status = ctx_decode_pixels_kernel(data, starts[b], lengths[b], h, w, model.entry, ids[b] * 1024,
                                          model.cum_flat, k, palettes[clusters[b]], pixels, mode == 2)
        assert status == verdicts[b][0]
        if status == OK:
            np.testing.assert_array_equal(pixels, gather_palette_ref(maps[b], palettes[clusters[b]], mode == 2))
        one = np.ones(1, np.int64)
        idx = np.empty(h * w, np.uint8)
        assert ctx_decode_kernel(data, starts[b], lengths[b], one * h, one * w, model.entry,
                                 ids[b] * 1024, model.cum_flat, k, idx) == verdicts[b][0]
