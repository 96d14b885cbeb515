"""The invalid golden vectors of spec/dcq-v1.md §14 (the ctx payload, version 1.2) and §15
(original sizes, version 1.3): ``INVALID_CTX_AND_SIZES``, with the edits only they use.
``tools/make_vectors.py`` writes them, in this order, after ``vectors_invalid.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
from vectors_bases import BASE_SIZES, InvalidSpec, base_maps, drop, h5_edit, set_at, shorten, stale
from vectors_spec import (
    STR,
    crc32,
    ctx_decode,
    ctx_pairs,
    ctx_rows,
    replace_dataset,
    set_stored,
    stored_samples,
)


def _ctx_stream(i: int, fn: Callable[[bytes], bytes]) -> Callable[[h5py.File], None]:
    """Replace sample i's stored ctx stream by ``fn(stream)``, every checksum correct."""
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        stored[i] = fn(stored[i])
        set_stored(h5, stored)
    return edit


def _ctx_sample_only_pairs(h5: h5py.File, i: int) -> list[tuple[int, int]]:
    """(context, symbol) pairs that sample i of the ctx base uses and no other sample does."""
    maps = base_maps()
    pairs = [ctx_pairs([int(v) for v in m.ravel()], [m.shape]) for m in maps]
    others = set().union(*(p for j, p in enumerate(pairs) if j != i))
    return sorted(pairs[i] - others)


def _ctx_zero_freq_for_used_symbol(h5: h5py.File) -> None:
    """A model row gives frequency 0 to a symbol that sample 2 (only) codes in that context;
    its mass moves to another symbol of the row, so the row still sums to 4096."""
    rows = ctx_rows(h5)
    keys = list(rows)
    freq = h5["ctx/freq"][()].astype(np.int64)
    for c, s in _ctx_sample_only_pairs(h5, 2):
        r = keys.index(c)
        row = freq[r * 5:(r + 1) * 5]
        if row[s] and (row > 0).sum() > 1:
            other = int(np.argmax(np.where(np.arange(5) == s, -1, row)))
            row[other] += row[s]
            row[s] = 0
            replace_dataset(h5, "ctx/freq", freq.astype("<u2"))
            return
    raise SystemExit("no row to edit")  # pragma: no cover


def _ctx_drop_row_of_sample_2(h5: h5py.File) -> None:
    """Delete a row only sample 2 uses (its frequencies with it)."""
    keys = list(ctx_rows(h5))
    maps = base_maps()
    ctx_of = [{c for c, _ in ctx_pairs([int(v) for v in m.ravel()], [m.shape])} for m in maps]
    only2 = sorted(ctx_of[2] - ctx_of[0] - ctx_of[1])
    r = keys.index(only2[0])
    freq = h5["ctx/freq"][()]
    replace_dataset(h5, "ctx/rows", np.delete(h5["ctx/rows"][()], r))
    replace_dataset(h5, "ctx/freq", np.delete(freq, np.arange(r * 5, r * 5 + 5)))


def _ctx_row_values(r: int, values: list[int]) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        freq = h5["ctx/freq"][()]
        freq[r * 5:(r + 1) * 5] = values
        replace_dataset(h5, "ctx/freq", freq.astype("<u2"))
    return edit


def _move_one_count(freq: np.ndarray) -> None:
    """Move one unit of frequency between two non-zero entries of the first such row (K=5)."""
    for r in range(freq.size // 5):
        nz = np.flatnonzero(freq[r * 5:(r + 1) * 5] > 1)
        if nz.size >= 2:
            freq[r * 5 + nz[0]] -= 1
            freq[r * 5 + nz[1]] += 1
            return
    raise SystemExit("no row with two entries")  # pragma: no cover


def _ctx_last_key_past_models(h5: h5py.File) -> None:
    models = h5["ctx"].attrs["models"]
    m = int(h5.attrs["num_clusters"]) if models == "cluster" else 1
    set_at("ctx/rows", -1, 1024 * m)(h5)


def _ctx_swap_rows(h5: h5py.File) -> None:
    rows = h5["ctx/rows"][()]
    rows[[0, 1]] = rows[[1, 0]]
    replace_dataset(h5, "ctx/rows", rows)


def _ctx_attr(name: str, value: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        h5["ctx"].attrs[name] = value
    return edit


def _must_understand(features: list[str]) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        h5.attrs.create("must_understand", np.array(features, dtype=object), dtype=STR)
    return edit


def _ctx_flip_bit_ending_wrong(h5: h5py.File) -> None:
    """Flip the first bit of sample 2's stream after its state bytes that makes the stream end in
    another state (checksums fixed): only the coder's end check finds it."""
    stored = stored_samples(h5)
    rows, s2 = ctx_rows(h5), stored[2]
    for bit in range(32, 8 * len(s2)):
        trial = bytearray(s2)
        trial[bit // 8] ^= 1 << (bit % 8)
        if ctx_decode(bytes(trial), [BASE_SIZES[2]], rows, 0, 5) is None:
            stored[2] = bytes(trial)
            set_stored(h5, stored)
            return
    raise SystemExit("no bit found")  # pragma: no cover


def _original_sizes(drop: str | None = None, height_at: tuple[int, int] | None = None,
                    short: str | None = None, fix_crc: bool = True) -> Callable[[h5py.File], None]:
    """Add §15's two datasets (each sample's stored size doubled) to a valid file, then break
    one rule."""
    def edit(h5: h5py.File) -> None:
        n = int(h5.attrs["num_samples"])
        for name, src in (("original_height", "height"), ("original_width", "width")):
            if name == drop:
                continue
            values = np.asarray(h5[f"samples/{src}"][()], dtype="<u4") * 2
            if name == short:
                values = values[: n - 1]
            ds = h5.create_dataset(f"samples/{name}", data=values)
            ds.attrs["crc32"] = np.uint32(crc32(values))
        if height_at is not None:
            i, v = height_at
            ds = h5["samples/original_height"]
            values = ds[()]
            values[i] = v
            ds[...] = values
            if fix_crc:
                ds.attrs["crc32"] = np.uint32(crc32(values))
        h5.attrs["dcq_version"] = np.array([1, 3], dtype="<u4")
    return edit



INVALID_CTX_AND_SIZES: list[InvalidSpec] = [
    # --- §14 ctx payload (version 1.2; added with --append). Base: the raw base's maps (q=3
    #     RGB, K=5, 2 palettes, 3 samples 2x3, 1x1, 4x5) written with payload_encoding ctx -----
    InvalidSpec("ctx_stream_truncated", "PayloadError", "read",
                "sample 2's ctx stream without its last byte; every CRC correct",
                h5_edit("ctx", _ctx_stream(2, lambda b: b[:-1])), sample=2),
    InvalidSpec("ctx_stream_trailing_byte", "PayloadError", "read",
                "sample 2's ctx stream followed by one garbage byte 0x5A; every CRC correct",
                h5_edit("ctx", _ctx_stream(2, lambda b: b + b"\x5a")), sample=2),
    InvalidSpec("ctx_stream_3_bytes", "StructureError", "open",
                "sample 1's stored bytes cut to 3 (a ctx stream holds at least the 4 state bytes)",
                h5_edit("ctx", _ctx_stream(1, lambda b: b[:3]))),
    InvalidSpec("ctx_start_state_low", "PayloadError", "read",
                "sample 1's first state is 2**23 - 1 (below the state interval)",
                h5_edit("ctx", _ctx_stream(1, lambda b: (2**23 - 1).to_bytes(4, "little") + b[4:])),
                sample=1),
    InvalidSpec("ctx_stream_bit_flip", "PayloadError", "read",
                "one bit of sample 2's stream flipped so that it ends in another state; every "
                "CRC correct", h5_edit("ctx", _ctx_flip_bit_ending_wrong), sample=2),
    InvalidSpec("ctx_zero_freq_for_used_symbol", "PayloadError", "read",
                "a model row gives frequency 0 to a symbol only sample 2 codes in that context "
                "(the row still sums to 4096, its crc32 matches)",
                h5_edit("ctx", _ctx_zero_freq_for_used_symbol), sample=2),
    InvalidSpec("ctx_row_missing", "PayloadError", "read",
                "the model row of a context only sample 2 uses is deleted (rows and freq both)",
                h5_edit("ctx", _ctx_drop_row_of_sample_2), sample=2),
    InvalidSpec("ctx_freq_sum_overflow", "StructureError", "open",
                "row 0's frequencies are 4096, 61440, 0, 0, 0: they sum to 65536 (0 in 16-bit "
                "arithmetic)", h5_edit("ctx", _ctx_row_values(0, [4096, 61440, 0, 0, 0]))),
    InvalidSpec("ctx_freq_sum_4095", "StructureError", "open",
                "row 0's frequencies sum to 4095", h5_edit("ctx", _ctx_row_values(0, [4095, 0, 0, 0, 0]))),
    InvalidSpec("ctx_rows_not_increasing", "StructureError", "open",
                "/ctx/rows[0] and [1] swapped", h5_edit("ctx", _ctx_swap_rows)),
    InvalidSpec("ctx_row_key_out_of_range", "StructureError", "open",
                "the last /ctx/rows entry is 2048 = 1024 * M (models = cluster, M = C = 2)",
                h5_edit("ctx", _ctx_last_key_past_models)),
    InvalidSpec("ctx_freq_one_short", "StructureError", "open",
                "/ctx/freq holds R*K - 1 values", h5_edit("ctx", shorten("ctx/freq"))),
    InvalidSpec("ctx_prob_bits_16", "StructureError", "open", "/ctx prob_bits = 16",
                h5_edit("ctx", _ctx_attr("prob_bits", np.uint8(16)))),
    InvalidSpec("ctx_models_unknown", "StructureError", "open", "/ctx models = 'sample'",
                h5_edit("ctx", _ctx_attr("models", "sample"))),
    InvalidSpec("ctx_context_unknown", "StructureError", "open",
                "/ctx context = 'neighbours-12'", h5_edit("ctx", _ctx_attr("context", "neighbours-12"))),
    InvalidSpec("ctx_group_missing", "StructureError", "open",
                "payload_encoding ctx but no /ctx group", h5_edit("ctx", drop("ctx"))),
    InvalidSpec("ctx_feature_not_listed", "StructureError", "open",
                "payload_encoding ctx but must_understand is empty",
                h5_edit("ctx", _must_understand([]))),
    InvalidSpec("ctx_feature_on_raw_file", "StructureError", "open",
                "a raw file whose must_understand lists ctx-payload",
                h5_edit("raw", _must_understand(["ctx-payload"]))),
    InvalidSpec("ctx_stale_crc_freq", "ChecksumMismatchError", "open",
                "one /ctx/freq value changed (row sums kept); its crc32 attribute left stale",
                h5_edit("ctx", stale("ctx/freq", _move_one_count))),
    # --- version 1.3: §15 original sizes (added with --append) ------------------------------
    InvalidSpec("original_width_missing", "StructureError", "open",
                "/samples/original_height without /samples/original_width (§15: a pair)",
                h5_edit("raw", _original_sizes(drop="original_width"))),
    InvalidSpec("original_height_zero", "StructureError", "open",
                "/samples/original_height[1] = 0 (crc32 recomputed; §15: 1..2**24)",
                h5_edit("raw", _original_sizes(height_at=(1, 0)))),
    InvalidSpec("original_width_short", "StructureError", "open",
                "/samples/original_width holds N-1 values (§15: shape [N])",
                h5_edit("raw", _original_sizes(short="original_width"))),
    InvalidSpec("original_height_stale_crc", "ChecksumMismatchError", "open",
                "/samples/original_height[0] changed; its crc32 attribute left stale",
                h5_edit("raw", _original_sizes(height_at=(0, 9), fix_crc=False))),
]

