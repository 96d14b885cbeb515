"""The zstd frame walk (``frame_status``, ``_frames_kernel`` in dcqformat.codecs.zstd_frames)
against the RFC 8878 reference of dcqformat.codecs.zstd_reference, on frames built field by
field (every descriptor flag, window byte, 1/2/4/8-byte content sizes right and wrong, raw, RLE,
compressed and reserved blocks, checksums), real python-zstandard frames, and both damaged
(truncated, extended, a byte changed) and short inputs; many samples at random places of one
buffer with garbage around them, so a read outside a sample's range would change its verdict."""

from __future__ import annotations

import numpy as np
import zstandard
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dcqformat.codecs.zstd_frames import FRAME_OK, _frames_kernel, check_frames, frame_status
from dcqformat.codecs.zstd_reference import MAGIC, frame_walk_ref, frames_ref


@st.composite
def built_frames(draw: st.DrawFn) -> tuple[bytes, int]:
    """A frame assembled from its fields, mostly well-formed, and its expected content size."""
    expected = draw(st.one_of(st.integers(0, 300), st.integers(0, 2**40)))
    fcs_flag = draw(st.integers(0, 3))
    single = draw(st.booleans())
    checksum = draw(st.booleans())
    odd = draw(st.sampled_from([0] * 6 + [0x08, 0x01, 0x02, 0x03, 0x10]))  # reserved / dict / unused
    fhd = (fcs_flag << 6) | (single << 5) | (checksum << 2) | odd
    head = bytearray(MAGIC) + bytes([fhd])
    if not single:
        head.append(draw(st.integers(0, 255)))
    size = expected + draw(st.sampled_from([0, 0, 0, 1, -1]))
    n_fcs = 1 if (fcs_flag == 0 and single) else (0, 2, 4, 8)[fcs_flag]
    stored = size - 256 if n_fcs == 2 else size
    if n_fcs and 0 <= stored < 1 << (8 * n_fcs):
        head += stored.to_bytes(n_fcs, "little")
    else:
        head += draw(st.binary(min_size=n_fcs, max_size=n_fcs))
    n_blocks = draw(st.integers(1, 3))
    for j in range(n_blocks):
        kind = draw(st.sampled_from([0, 1, 2, 0, 1, 2, 3]))
        bsize = draw(st.integers(0, 12))
        last = j == n_blocks - 1 and draw(st.integers(0, 9)) > 0
        head += ((bsize << 3) | (kind << 1) | last).to_bytes(3, "little")
        head += draw(st.binary(min_size=1 if kind == 1 else bsize, max_size=1 if kind == 1 else bsize))
    if checksum:
        head += draw(st.binary(min_size=4, max_size=4))
    return bytes(head), expected


@st.composite
def real_frames(draw: st.DrawFn) -> tuple[bytes, int]:
    """A python-zstandard frame that declares its content size (as the writer stores them)."""
    content = draw(st.one_of(st.binary(max_size=300), st.integers(0, 3000).map(lambda n: b"\1" * n)))
    frame = zstandard.ZstdCompressor(level=draw(st.sampled_from([1, 3, 19])), write_content_size=True,
                                     write_checksum=draw(st.booleans())).compress(content)
    return frame, len(content)


@st.composite
def damaged(draw: st.DrawFn, frames: st.SearchStrategy[tuple[bytes, int]]) -> tuple[bytes, int]:
    """A frame as drawn, or cut, extended, or with one byte changed."""
    frame, expected = draw(frames)
    how = draw(st.sampled_from(["none", "none", "cut", "extend", "change"]))
    if how == "cut":
        frame = frame[:draw(st.integers(0, max(len(frame) - 1, 0)))]
    elif how == "extend":
        frame += draw(st.binary(min_size=1, max_size=4))
    elif how == "change" and frame:
        at = draw(st.integers(0, len(frame) - 1))
        frame = frame[:at] + bytes([frame[at] ^ draw(st.integers(1, 255))]) + frame[at + 1:]
    return frame, expected


SAMPLES = st.one_of(damaged(built_frames()), damaged(real_frames()),
                    st.tuples(st.binary(max_size=12), st.integers(0, 20)))


@settings(max_examples=200, deadline=None)
@given(st.lists(SAMPLES, max_size=5), st.binary(max_size=6), st.data())
@example([(b"\x28\0\0\0", 0)], b"", None)  # bytes 1-3 are not the magic: not a frame
@example([(MAGIC + b"\x08", 0)], b"", None)  # 5 bytes, reserved bit: a bad header
@example([(MAGIC + b"\x00", 0)], b"", None)  # 5 bytes, no content size declared
@example([(MAGIC + b"\x24\x00\x01\x00\x00\x00\x00", 0)], b"", None)  # checksum cut short
def test_frame_walk_matches_the_rfc_reference(samples: list[tuple[bytes, int]], lead: bytes,
                                              data: st.DataObject | None) -> None:
    buf, starts, lengths, expected = bytearray(lead), [], [], []
    for frame, e in samples:
        starts.append(len(buf))
        lengths.append(len(frame))
        expected.append(e if e < 2**62 else 0)
        buf += frame
        buf += data.draw(st.binary(max_size=3)) if data is not None else b""
    arr = np.frombuffer(bytes(buf), np.uint8)
    want, first = frames_ref(bytes(buf), starts, lengths, expected)
    s, n, e = (np.array(v, np.int64) for v in (starts, lengths, expected))
    status = np.full(len(samples), 99, np.int8)
    assert _frames_kernel(arr, s, n, e, status) == first
    assert status.tolist() == want
    for b in range(len(samples)):
        assert frame_status(arr, s[b], n[b], e[b]) == want[b]
    assert check_frames(arr, s, n, e) == ((-1, FRAME_OK) if first < 0 else (first, want[first]))


@settings(max_examples=50, deadline=None)
@given(real_frames())
def test_real_frames_are_ok_and_the_reference_agrees(case: tuple[bytes, int]) -> None:
    frame, size = case
    assert frame_walk_ref(frame, size) == FRAME_OK
    arr = np.frombuffer(frame, np.uint8)
    assert frame_status(arr, 0, arr.size, size) == FRAME_OK
