"""Spec-level helpers of ``tools/make_vectors.py`` (spec/dcq-v1.md): bit packing, §13 patch
order and fills, §14 ctx streams, and the h5py edits the vectors are made with.

No dcqformat code: bytes are computed from the spec text, so that the vectors check the
reference writer instead of repeating it.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SEED = 20261122
STR = h5py.string_dtype("utf-8")


# ---------------------------------------------------------------------------------------
# Small, spec-level helpers (no dcqformat code: bytes are computed from the spec text)
# ---------------------------------------------------------------------------------------
def crc32(data: bytes | np.ndarray) -> int:
    """§2: the CRC-32 of zlib/PNG, as an unsigned 32-bit value."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_numpy(indices: np.ndarray, bits: int) -> bytes:
    """§5: each index's q bits LSB first, concatenated, ``packbits(bitorder="little")``."""
    flat = np.asarray(indices, dtype=np.uint16).reshape(-1)
    stream = ((flat[:, None] >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little").tobytes()


def rng_for(name: str) -> np.random.Generator:
    """The generator of vector ``name``: seeded by SEED and the name's CRC-32."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def zstd_raw_block_frame(content: bytes, declared: int | None, *, block_type: int = 0) -> bytes:
    """A Zstandard frame (RFC 8878) holding ``content`` as one raw block.

    ``declared``: the Frame_Content_Size to write (8-byte field), or None for none.
    ``block_type`` 3 writes a reserved (invalid) block type.
    """
    magic = struct.pack("<I", 0xFD2FB528)
    if declared is None:
        header = bytes([0b00000000, 0x58])  # no FCS, not single-segment; window 2**21 bytes
    else:
        header = bytes([0b11000000, 0x58]) + struct.pack("<Q", declared)
    block = (len(content) << 3) | (block_type << 1) | 1  # last block
    return magic + header + struct.pack("<I", block)[:3] + content


def grid(h: int, w: int, p: int) -> tuple[int, int]:
    """§13: the patch grid of an H×W sample at patch size P (last row/column clipped)."""
    return -(-h // p), -(-w // p)


def patches(h: int, w: int, p: int, keep: np.ndarray) -> list[tuple[bool, slice, slice]]:
    """§13: the patches of an H×W sample in increasing g = r*gw + c: (kept, rows, columns),
    the last row and column clipped at the border."""
    gh, gw = grid(h, w, p)
    return [(bool(keep[r, c]), slice(r * p, min(r * p + p, h)), slice(c * p, min(c * p + p, w)))
            for r in range(gh) for c in range(gw)]


def kept_pixel_order(h: int, w: int, p: int, keep: np.ndarray) -> np.ndarray:
    """§13: flat pixel positions (y*W + x) of the kept pixels, in stored order: kept patches in
    increasing g, inside a patch its clipped pixels in raster order."""
    pos = np.arange(h * w, dtype=np.int64).reshape(h, w)
    parts = [pos[rows, cols].ravel() for kept, rows, cols in patches(h, w, p, keep) if kept]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def reference_fills(m: np.ndarray, p: int, keep: np.ndarray, k: int) -> list[int]:
    """§13: the reference encoder's fill of each dropped patch (increasing g): the index most
    frequent among the patch's own indices, ties to the smallest."""
    return [int(np.argmax(np.bincount(m[rows, cols].ravel(), minlength=k)))
            for kept, rows, cols in patches(*m.shape, p, keep) if not kept]


def masked_pixels(palette: np.ndarray, m: np.ndarray, p: int, keep: np.ndarray,
                  fills: list[int]) -> np.ndarray:
    """§13 decoding, in NumPy: kept pixels from their indices, a dropped patch in its fill colour."""
    out = palette[m].copy()
    dropped = iter(fills)
    for kept, rows, cols in patches(*m.shape, p, keep):
        if not kept:
            out[rows, cols] = palette[next(dropped)]
    return out


def pack_keep(keeps: list[np.ndarray]) -> bytes:
    """§13: each sample's mask bits (row-major g) LSB first, each mask on a byte boundary."""
    return b"".join(np.packbits(k.ravel().astype(np.uint8), bitorder="little").tobytes() for k in keeps)


# --- §14 ctx streams, from the spec text ---------------------------------------------------
def ctx_neighbours(m: list[int], base: int, w: int, y: int, x: int) -> tuple[int, ...]:
    """§14.2: (W, N, NW, NE, NN, WW, NNE, NWW) of pixel (y, x) of the rectangle at m[base:]."""
    def at(yy: int, xx: int) -> int:
        return m[base + yy * w + xx]
    W = at(y, x - 1) if x > 0 else (at(y - 1, x) if y > 0 else 0)
    N = at(y - 1, x) if y > 0 else W
    NW = at(y - 1, x - 1) if y > 0 and x > 0 else N
    NE = at(y - 1, x + 1) if y > 0 and x + 1 < w else N
    NN = at(y - 2, x) if y > 1 else N
    WW = at(y, x - 2) if x > 1 else W
    NNE = at(y - 2, x + 1) if y > 1 and x + 1 < w else NE
    NWW = at(y - 1, x - 2) if y > 0 and x > 1 else NW
    return W, N, NW, NE, NN, WW, NNE, NWW


def ctx_context(nb: tuple[int, ...]) -> int:
    """§14.2: the context number (10 equality bits) of neighbours ``nb``."""
    W, N, NW, NE, NN, WW, NNE, NWW = nb
    eq = (N == W, NW == W, NW == N, NE == W, NE == N, NE == NW, NN == N, WW == W, NNE == NE, NWW == NW)
    return sum(int(e) << b for b, e in enumerate(eq))


def ctx_distinct(nb: tuple[int, ...]) -> list[int]:
    """§14.3: the distinct values among W, N, NW, NE, in that order."""
    d: list[int] = []
    for v in nb[:4]:
        if v not in d:
            d.append(v)
    return d


def ctx_pairs(values: list[int], rects: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """§14.2-§14.3: the (context, rank symbol) pairs a sample's pixels use."""
    pairs, base = set(), 0
    for h, w in rects:
        for y in range(h):
            for x in range(w):
                nb = ctx_neighbours(values, base, w, y, x)
                v, d = values[base + y * w + x], ctx_distinct(nb)
                s = d.index(v) if v in d else len(d) + v - sum(u < v for u in d)
                pairs.add((ctx_context(nb), s))
        base += h * w
    return pairs


def ctx_decode(stream: bytes, rects: list[tuple[int, int]], rows: dict[int, list[int]],
               model: int, k: int) -> list[int] | None:
    """§14.4: the indices of one stream, or None where the spec refuses it."""
    if len(stream) < 4:
        return None
    x, pos, out, base = int.from_bytes(stream[:4], "little"), 4, [], 0
    if not 1 << 23 <= x < 1 << 31:
        return None
    for h, w in rects:
        for y in range(h):
            for xx in range(w):
                nb = ctx_neighbours(out, base, w, y, xx)
                f = rows.get(1024 * model + ctx_context(nb))
                if f is None:
                    return None
                slot, s, cum = x % 4096, 0, 0
                while not cum <= slot < cum + f[s]:
                    cum, s = cum + f[s], s + 1
                x = f[s] * (x // 4096) + slot - cum
                while x < 1 << 23:
                    if pos == len(stream):
                        return None
                    x, pos = x * 256 + stream[pos], pos + 1
                d = ctx_distinct(nb)
                out.append(d[s] if s < len(d) else [v for v in range(k + 4) if v not in d][s - len(d)])
        base += h * w
    return out if x == 1 << 23 and pos == len(stream) else None


def ctx_rows(h5: h5py.File) -> dict[int, list[int]]:
    """§14.1: row key -> K frequencies."""
    keys = [int(v) for v in h5["ctx/rows"][()]]
    k = int(h5.attrs["palette_size"])
    freq = h5["ctx/freq"][()]
    return {key: [int(v) for v in freq[r * k:(r + 1) * k]] for r, key in enumerate(keys)}


# --- h5py editing helpers -----------------------------------------------------------------
def set_values(h5: h5py.File, path: str, values: Any, *, fix_crc: bool = True) -> None:
    """Overwrite dataset ``path`` in place with ``values``; recompute its crc32 unless
    ``fix_crc`` is false."""
    ds = h5[path]
    arr = np.asarray(values, dtype=ds.dtype).reshape(ds.shape)
    ds[...] = arr
    if fix_crc:
        ds.attrs["crc32"] = np.uint32(crc32(arr))


def replace_dataset(h5: h5py.File, path: str, values: np.ndarray, *, fix_crc: bool = True,
                    crc: int | None = None, **kw: Any) -> None:
    """Recreate dataset ``path`` from ``values`` (``kw`` to create_dataset), with its crc32
    recomputed (or ``crc``), or, with ``fix_crc`` false, the old crc32 kept."""
    old_crc = h5[path].attrs.get("crc32") if path in h5 else None
    if path in h5:
        del h5[path]
    ds = h5.create_dataset(path, data=values, **kw)
    if fix_crc:
        ds.attrs["crc32"] = np.uint32(crc32(np.asarray(values)) if crc is None else crc)
    elif old_crc is not None:
        ds.attrs["crc32"] = old_crc


def stored_samples(h5: h5py.File) -> list[bytes]:
    """Each sample's stored bytes, as /samples/offset and /samples/length cut them."""
    payload = h5["payload"][()].tobytes()
    off, ln = h5["samples/offset"][()], h5["samples/length"][()]
    return [payload[int(o):int(o) + int(n)] for o, n in zip(off, ln, strict=True)]


def set_stored(h5: h5py.File, stored: list[bytes]) -> None:
    """Rewrite the payload from per-sample stored bytes, with every checksum correct."""
    blob = b"".join(stored)
    lengths = np.array([len(s) for s in stored], dtype="<u8")
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype("<u8")
    replace_dataset(h5, "payload", np.frombuffer(blob, dtype=np.uint8))
    set_values(h5, "samples/offset", offsets)
    set_values(h5, "samples/length", lengths)
    set_values(h5, "samples/crc32", np.array([crc32(s) for s in stored], dtype="<u4"))


def dataset_file_offset(path: Path, name: str) -> int:
    """File offset of a dataset's storage (of its first chunk when chunked)."""
    with h5py.File(path, "r") as h5:
        ds = h5[name]
        if ds.chunks is None:
            return int(ds.id.get_offset())
        info = ds.id.get_chunk_info(0)
        return int(info.byte_offset) + int(info.size) // 2  # inside the deflate stream
