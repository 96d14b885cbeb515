#!/usr/bin/env python3
"""Write the golden test vectors of ``spec/vectors/`` (spec/dcq-v1.md §12).

Run once; the outputs are committed and never regenerated::

    python tools/make_vectors.py                 # writes spec/vectors/ (refuses if it exists)
    python tools/make_vectors.py --append        # adds vectors whose names are not there yet

There is deliberately no ``--force``: the vectors are append-only. To add a vector, add a
new entry to ``VALID`` or ``INVALID`` under a *new* name and run with ``--append``; files
that already exist are never touched, only new names are written (and their checksums
appended to ``SHA256SUMS``, their rows to ``README.md``).

Valid vectors (``valid/<name>.dcq``) are written by the reference writer
(:class:`dcqformat.DCQWriter`) from index maps generated here with a fixed seed. Beside
each one, ``<name>.expected.npz`` holds ``pixels_<i>`` (uint8 H×W×ch) and ``labels``,
computed *independently* of dcqformat's decoder: ``palettes[cluster][indices]`` in NumPy
from the generated indices. The tool also checks the writer's stored bytes against a
NumPy ``packbits`` of the same indices before it keeps a vector.

Invalid vectors (``invalid/<name>.dcq.gz``) are hostile files, each with exactly one
defect, derived from small valid files by editing them with h5py or at the byte level.
They are gzip-compressed (mtime 0) because an HDF5 .dcq file is at least ~8 KiB, mostly
zero padding (the global heap alone is 4 KiB), and dozens of them would not fit the
folder's 200 KB budget; ``gunzip`` gives the file. ``<name>.expected.json`` records
``error`` (the DcqError subclass name), ``stage`` (``open``: ``DCQFile(path)`` raises;
``read``: opening succeeds and reading ``sample`` raises; ``verify``: every sample reads,
``verify()`` raises) and ``reason``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard

SEED = 20261122
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "spec" / "vectors"


# ---------------------------------------------------------------------------------------
# Small, spec-level helpers (no dcqformat code: bytes are computed from the spec text)
# ---------------------------------------------------------------------------------------
def crc32(data: bytes | np.ndarray) -> int:
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_numpy(indices: np.ndarray, bits: int) -> bytes:
    """§5: each index's q bits LSB first, concatenated, ``packbits(bitorder="little")``."""
    flat = np.asarray(indices, dtype=np.uint16).reshape(-1)
    stream = ((flat[:, None] >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(stream.reshape(-1), bitorder="little").tobytes()


def rng_for(name: str) -> np.random.Generator:
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
    W, N, NW, NE, NN, WW, NNE, NWW = nb
    eq = (N == W, NW == W, NW == N, NE == W, NE == N, NE == NW, NN == N, WW == W, NNE == NE, NWW == NW)
    return sum(int(e) << b for b, e in enumerate(eq))


def ctx_distinct(nb: tuple[int, ...]) -> list[int]:
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


def _ctx_worked_example(h5: h5py.File) -> None:
    """§14.6: row 1023 = (2048, 2048) and the stream 00 20 00 04 for the 1x3 map 0 0 1."""
    replace_dataset(h5, "ctx/rows", np.array([1023], dtype="<u4"))
    replace_dataset(h5, "ctx/freq", np.array([2048, 2048], dtype="<u2"))
    set_stored(h5, [bytes([0x00, 0x20, 0x00, 0x04])])


# ---------------------------------------------------------------------------------------
# Valid vectors
# ---------------------------------------------------------------------------------------
@dataclass
class ValidSpec:
    name: str
    bits: int
    channels: int
    palette_size: int
    clusters: int
    classes: list[str]
    sizes: list[tuple[int, int]]
    encoding: str
    what: str
    sources: bool = False
    selection: bool = False
    smooth: tuple[int, ...] = ()  # samples drawn as smooth ramps (so zstd has work to do)
    post: Callable[[h5py.File], None] | None = None  # an h5py edit after writing
    patch_size: int | None = None  # §13: written with patch masks (version 1.1)
    keeps: Callable[[np.random.Generator, int, int, int], np.ndarray] | None = None  # (rng, i, gh, gw)
    flat: tuple[int, ...] = ()  # samples of one colour (index K-1)
    writer_kw: dict[str, Any] = field(default_factory=dict)  # more DCQWriter keywords


def _future_minor(h5: h5py.File) -> None:
    """§9: a later minor version may add attributes and datasets a 1.0 reader ignores."""
    h5.attrs["dcq_version"] = np.array([1, 7], dtype="<u4")
    h5.attrs["x_future_attribute"] = "ignore me"
    h5.create_dataset("x_future_dataset", data=np.arange(5, dtype="<u2"))  # no crc32 either


def _ignored_masks(h5: h5py.File) -> None:
    """§9/§13: a /masks group in a file whose must_understand does not list patch-mask (here a
    1.0 file) is a reserved path and is ignored, even though it is nonsense."""
    g = h5.create_group("masks")
    g.attrs["patch_size"] = np.uint32(0)
    g.create_dataset("keep", data=np.array([0xFF, 0x07], dtype=np.uint8))
    g.create_dataset("theta", data=np.array([7.5], dtype="<f4"))


def _keeps_p4(rng: np.random.Generator, i: int, gh: int, gw: int) -> np.ndarray:
    if i == 0:  # §13's worked example: 5x6 at P = 4, keep (1, 0, 0, 1) -> byte 0x09
        return np.array([[True, False], [False, True]])
    if i == 3:  # every patch dropped: S = 0, nothing stored
        return np.zeros((gh, gw), dtype=bool)
    if i == 4:  # every patch kept: still stored in patch order, not raster order
        return np.ones((gh, gw), dtype=bool)
    return rng.random((gh, gw)) < 0.6


def _keeps_half(rng: np.random.Generator, i: int, gh: int, gw: int) -> np.ndarray:
    if i == 3:
        return np.zeros((gh, gw), dtype=bool)  # S = 0 with zstd: a frame of 0 bytes
    return rng.random((gh, gw)) < 0.5


VALID: list[ValidSpec] = [
    ValidSpec("q1_grey_raw", 1, 1, 2, 2, ["zero", "one"],
              [(1, 1), (3, 5), (8, 8), (2, 9), (5, 1)], "raw",
              "q=1 grey, K=2, 2 palettes; 1x1, a 5x1 column, sizes that do not fill the last byte"),
    ValidSpec("q2_rgb_raw_k3_64samples", 2, 3, 3, 3, ["cat", "dog", "eel"],
              [(1 + i % 4, 1 + (i * 7) % 6) for i in range(64)], "raw",
              "q=2 RGB, K=3 < 4, 3 palettes, 64 samples: the per-sample arrays are chunked "
              "with shuffle+deflate (the writer does so from 64 samples); with sources "
              "(some unknown) and a selection", sources=True, selection=True),
    ValidSpec("q3_rgb_zstd_k5", 3, 3, 5, 2, ["a", "b"],
              [(1, 300), (1, 1), (6, 7), (16, 16)], "zstd",
              "q=3 RGB (indices cross byte boundaries), K=5 < 8, zstd; a very wide 1x300",
              smooth=(3,)),
    ValidSpec("q5_grey_raw_k20_version_1_7", 5, 1, 20, 1, ["only"],
              [(1, 1), (5, 5), (3, 11), (1, 300)], "raw",
              "q=5 grey, K=20 < 32, one palette, one class; a very wide 1x300. Version 1.7 "
              "with an unknown root attribute and an unknown dataset /x_future_dataset (no "
              "crc32): a 1.0 reader must ignore both (§9)", post=_future_minor),
    ValidSpec("q8_rgb_zstd", 8, 3, 256, 2, ["x", "y", "z"],
              [(1, 300), (1, 1), (9, 13), (12, 12)], "zstd",
              "q=8 RGB, K=256, zstd; 1x300 and 1x1; one class never used", smooth=(3,)),
    # --- version 1.1: §13 patch masks (added with --append) ------------------------------
    ValidSpec("q2_rgb_raw_masks_p4", 2, 3, 4, 2, ["a", "b"],
              [(5, 6), (9, 7), (1, 1), (4, 4), (8, 8), (13, 3)], "raw",
              "v1.1 patch masks, P=4, q=2 RGB raw: sample 0 is §13's worked example (5x6, keep "
              "1,0,0,1); clipped patches; sample 3 drops every patch (S=0, length 0); sample 4 "
              "keeps every patch (stored in patch order); expected.npz adds keep_<i>",
              patch_size=4, keeps=_keeps_p4),
    ValidSpec("q3_grey_zstd_masks_p3", 3, 1, 6, 2, ["a", "b", "c"],
              [(7, 7), (3, 10), (1, 300), (6, 6), (10, 4)], "zstd",
              "v1.1 patch masks, P=3, q=3 grey zstd, K=6: indices cross byte boundaries inside "
              "the kept stream; a 1x300 strip of 1x3 patches; sample 3 drops every patch (a "
              "zstd frame of 0 bytes)", smooth=(0, 2), patch_size=3, keeps=_keeps_half),
    ValidSpec("q2_grey_raw_masks_ignored", 2, 1, 4, 1, ["a"], [(3, 4), (2, 2)], "raw",
              "a 1.0 file holding a nonsense /masks group (patch_size 0, no fill) that "
              "must_understand does not list: a reader ignores it (§9, §13)",
              post=_ignored_masks),
    # --- version 1.2: §14 ctx payload (added with --append) --------------------------------
    ValidSpec("q1_grey_ctx", 1, 1, 2, 2, ["a", "b"],
              [(1, 1), (3, 5), (8, 8), (1, 300), (40, 1), (12, 12), (16, 16)], "ctx",
              "v1.2 ctx payload, q=1 grey, K=2: 1x1, a 1x300 row, a 40x1 column, a ramp and a "
              "sample of one colour (sample 6)", smooth=(5,), flat=(6,)),
    ValidSpec("q2_rgb_ctx_masks_p4", 2, 3, 4, 2, ["a", "b"],
              [(5, 6), (9, 7), (1, 1), (4, 4), (8, 8), (13, 3), (20, 20)], "ctx",
              "v1.2 ctx with v1.1 patch masks, P=4, q=2 RGB: kept patches coded as separate "
              "rectangles; sample 3 drops every patch (the 4-byte stream 00 00 80 00); sample 4 "
              "keeps every patch", smooth=(6,), patch_size=4, keeps=_keeps_p4),
    ValidSpec("q4_rgb_ctx_k11_cluster_models", 4, 3, 11, 3, ["a", "b", "c"],
              [(7, 9), (1, 1), (16, 16), (1, 100), (10, 3), (24, 24)], "ctx",
              "v1.2 ctx, q=4 RGB, K=11 < 16, one model per cluster (models = cluster, 3 models)",
              smooth=(2, 5), writer_kw={"ctx_models": "cluster"}),
    ValidSpec("q8_grey_ctx", 8, 1, 256, 2, ["x", "y"], [(1, 300), (1, 1), (16, 16), (9, 13)],
              "ctx", "v1.2 ctx, q=8 grey, K=256: rank symbols up to 255 (random 9x13 sample)",
              smooth=(2,)),
    ValidSpec("q1_grey_ctx_worked_example", 1, 1, 2, 1, ["a"], [(1, 3)], "ctx",
              "v1.2 ctx: spec §14.6's worked example, the 1x3 map 0 0 1 as the stream 00 20 00 04 "
              "under row 1023 = (2048, 2048)", post=_ctx_worked_example),
]


def _indices(rng: np.random.Generator, h: int, w: int, k: int, smooth: bool) -> np.ndarray:
    if smooth:  # a diagonal ramp of runs: compressible
        yy, xx = np.mgrid[0:h, 0:w]
        return (((yy + xx) // 3) % k).astype(np.uint8)
    return rng.integers(0, k, size=(h, w), dtype=np.uint8)


def write_valid(spec: ValidSpec, folder: Path) -> dict[str, Any]:
    from dcqformat import DCQWriter  # the reference writer writes the valid vectors

    rng = rng_for(spec.name)
    palettes = rng.integers(0, 256, size=(spec.clusters, spec.palette_size, spec.channels),
                            dtype=np.uint8)
    n = len(spec.sizes)
    clusters = np.arange(n) % spec.clusters
    used_classes = 2 if spec.name == "q8_rgb_zstd" else len(spec.classes)  # "z" never used
    labels = rng.integers(0, used_classes, size=n)
    maps = [_indices(rng, h, w, spec.palette_size, i in spec.smooth) for i, (h, w) in enumerate(spec.sizes)]
    for m in maps[:1]:  # make sure the largest index K-1 occurs somewhere
        m.flat[-1] = spec.palette_size - 1
    for i in spec.flat:
        maps[i][...] = spec.palette_size - 1
    if spec.post is _ctx_worked_example:
        maps = [np.array([[0, 0, 1]], dtype=np.uint8)]
    p = spec.patch_size
    keeps = None if p is None or spec.keeps is None else [
        spec.keeps(rng, i, *grid(h, w, p)) for i, (h, w) in enumerate(spec.sizes)]
    path = folder / f"{spec.name}.dcq"
    with DCQWriter(path, bits=spec.bits, channels=spec.channels, classes=spec.classes,
                   palette_size=spec.palette_size, payload_encoding=spec.encoding,
                   patch_size=p, **spec.writer_kw) as w:
        w.set_palettes(palettes)
        w.set_provenance({"purpose": "dcq v1 golden vector", "vector": spec.name, "seed": SEED})
        for i, m in enumerate(maps):
            kw: dict[str, Any] = {}
            if spec.sources:
                kw = ({"source_path": f"train/{spec.classes[labels[i]]}/img_{i:03d}.png",
                       "source_size": int(100 + 17 * i)} if i % 5 else {})
            if keeps is not None:
                kw["keep_mask"] = keeps[i]
            w.add_sample(m, cluster=int(clusters[i]), label=int(labels[i]), **kw)
        if spec.selection:
            ranking = rng.permutation(n)
            w.add_selection("golden", ranking, np.sort(ranking[: n // 3]),
                            {"method": "random", "seed": SEED, "fraction": 1 / 3})
    if spec.post is not None:  # rebuilt by copying, so the edit leaves no free space behind
        written = path.with_suffix(".tmp")
        path.rename(written)
        with h5py.File(written, "r") as src, h5py.File(path, "w", libver=("v110", "v110")) as dst:
            for key in src.attrs:
                dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)
            for key in src:
                src.copy(src[key], dst, key)
            spec.post(dst)
        written.unlink()
    # Expected pixels, independently of any decoder: palette lookup of the generated indices.
    expected = {f"pixels_{i}": palettes[clusters[i]][m] for i, m in enumerate(maps)}
    if keeps is not None and p is not None:
        for i, (m, keep) in enumerate(zip(maps, keeps, strict=True)):
            fills = reference_fills(m, p, keep, spec.palette_size)
            expected[f"pixels_{i}"] = masked_pixels(palettes[clusters[i]], m, p, keep, fills)
            expected[f"keep_{i}"] = keep
    expected["labels"] = labels.astype(np.int64)
    _check_writer_bytes(path, spec, maps, keeps)
    write_npz(folder / f"{spec.name}.expected.npz", expected)
    return {"name": spec.name, "what": spec.what}


def _check_writer_bytes(path: Path, spec: ValidSpec, maps: list[np.ndarray],
                        keeps: list[np.ndarray] | None = None) -> None:
    """Refuse to keep a vector whose stored bytes differ from an independent packing (and,
    for masks, from an independent §13 patch order, mask packing and fill choice)."""
    with h5py.File(path, "r") as h5:
        payload = h5["payload"][()].tobytes()
        off, ln = h5["samples/offset"][()], h5["samples/length"][()]
        assert h5.attrs["payload_encoding"] == spec.encoding
        if keeps is not None and spec.patch_size is not None:
            p = spec.patch_size
            assert list(np.asarray(h5.attrs["dcq_version"])) == [1, 2 if spec.encoding == "ctx" else 1]
            assert "patch-mask" in [str(f) if not isinstance(f, bytes) else f.decode()
                                    for f in np.asarray(h5.attrs["must_understand"]).ravel()]
            assert int(h5["masks"].attrs["patch_size"]) == p
            if h5["masks/keep"][()].tobytes() != pack_keep(keeps):
                raise SystemExit(f"{path}: /masks/keep differs from §13's packing")
            fills = [f for m, k in zip(maps, keeps, strict=True)
                     for f in reference_fills(m, p, k, spec.palette_size)]
            if h5["masks/fill"][()].tolist() != fills:
                raise SystemExit(f"{path}: /masks/fill differs from the reference fills")
        rows = ctx_rows(h5) if spec.encoding == "ctx" else {}
        per_cluster = spec.encoding == "ctx" and h5["ctx"].attrs["models"] == "cluster"
        clusters = h5["samples/cluster"][()]
    for i, m in enumerate(maps):
        stored = payload[int(off[i]):int(off[i]) + int(ln[i])]
        if spec.encoding == "zstd":
            stored = zstandard.ZstdDecompressor().decompress(stored)
        kept = m if keeps is None or spec.patch_size is None else \
            m.ravel()[kept_pixel_order(*m.shape, spec.patch_size, keeps[i])]
        if spec.encoding == "ctx":  # §14: decode the stream from the spec text
            rects = [m.shape] if keeps is None or spec.patch_size is None else [
                (r.stop - r.start, c.stop - c.start)
                for kp, r, c in patches(*m.shape, spec.patch_size, keeps[i]) if kp]
            got = ctx_decode(stored, rects, rows, int(clusters[i]) if per_cluster else 0, spec.palette_size)
            if got is None or got != [int(v) for v in np.ravel(kept)]:
                raise SystemExit(f"{path}: sample {i}: the writer's ctx stream does not decode (§14)")
            continue
        if stored != pack_numpy(kept, spec.bits):
            raise SystemExit(f"{path}: sample {i}: the writer's packed bytes differ from §5/§13")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez_compressed, but byte-deterministic (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


# ---------------------------------------------------------------------------------------
# Bases for the invalid vectors
# ---------------------------------------------------------------------------------------
BASE_SIZES = [(2, 3), (1, 1), (4, 5)]


def write_base(path: Path, encoding: str, *, palette_size: int = 5,
               maps: list[np.ndarray] | None = None, extras: bool = False) -> list[np.ndarray]:
    """q=3 RGB, K=5 (< 8), 2 palettes, 2 classes, 3 samples; ``extras`` adds sources and a
    selection."""
    from dcqformat import DCQWriter

    rng = rng_for("base")
    palettes = rng.integers(0, 256, size=(2, palette_size, 3), dtype=np.uint8)
    if maps is None:
        maps = [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]
    with DCQWriter(path, bits=3, channels=3, classes=["a", "b"], palette_size=palette_size,
                   payload_encoding=encoding) as w:
        w.set_palettes(palettes)
        w.set_provenance({"purpose": "base of invalid golden vectors", "seed": 1})
        for i, m in enumerate(maps):
            kw = {"source_path": f"s/{i}.png", "source_size": 100 + i} if extras else {}
            w.add_sample(m, cluster=i % 2, label=i % 2, **kw)
        if extras:
            w.add_selection("sel", np.array([2, 0, 1]), np.array([0, 2]), {"method": "test"})
    return maps


def write_base_chunked(path: Path) -> None:
    """64 samples of 1x1, so every per-sample array is chunked with shuffle+deflate."""
    from dcqformat import DCQWriter

    rng = rng_for("base_chunked")
    with DCQWriter(path, bits=2, channels=1, classes=["a", "b"], payload_encoding="raw") as w:
        w.set_palettes(rng.integers(0, 256, size=(2, 4, 1), dtype=np.uint8))
        for i in range(64):
            w.add_sample(rng.integers(0, 4, size=(1, 1), dtype=np.uint8), cluster=i % 2,
                         label=(i // 2) % 2)


MASK_BASE_SIZES = [(2, 3), (1, 1), (4, 5), (5, 6)]
MASK_BASE_KEEPS = [np.array([[True, False]]), np.array([[True]]),
                   np.array([[True, False, True], [True, False, True]]),  # 6 bits: 2 padding
                   np.array([[True, False, False], [False, True, False], [True, True, False]])]
MASK_BASE_P = 2


def masked_base_maps() -> list[np.ndarray]:
    rng = rng_for("base_masked")
    return [rng.integers(0, 5, size=s, dtype=np.uint8) for s in MASK_BASE_SIZES]


def write_base_masked(path: Path, encoding: str) -> None:
    """v1.1: q=3 RGB, K=5, 2 palettes, 4 samples with patch masks at P=2."""
    from dcqformat import DCQWriter

    palettes = rng_for("base_masked_palettes").integers(0, 256, size=(2, 5, 3), dtype=np.uint8)
    with DCQWriter(path, bits=3, channels=3, classes=["a", "b"], palette_size=5,
                   payload_encoding=encoding, patch_size=MASK_BASE_P) as w:
        w.set_palettes(palettes)
        w.set_provenance({"purpose": "base of invalid golden vectors (patch masks)", "seed": 1})
        for i, (m, keep) in enumerate(zip(masked_base_maps(), MASK_BASE_KEEPS, strict=True)):
            w.add_sample(m, cluster=i % 2, label=i % 2, keep_mask=keep)


# --- h5py editing helpers -----------------------------------------------------------------
def set_values(h5: h5py.File, path: str, values: Any, *, fix_crc: bool = True) -> None:
    ds = h5[path]
    arr = np.asarray(values, dtype=ds.dtype).reshape(ds.shape)
    ds[...] = arr
    if fix_crc:
        ds.attrs["crc32"] = np.uint32(crc32(arr))


def replace_dataset(h5: h5py.File, path: str, values: np.ndarray, *, fix_crc: bool = True,
                    crc: int | None = None, **kw: Any) -> None:
    old_crc = h5[path].attrs.get("crc32") if path in h5 else None
    if path in h5:
        del h5[path]
    ds = h5.create_dataset(path, data=values, **kw)
    if fix_crc:
        ds.attrs["crc32"] = np.uint32(crc32(np.asarray(values)) if crc is None else crc)
    elif old_crc is not None:
        ds.attrs["crc32"] = old_crc


def stored_samples(h5: h5py.File) -> list[bytes]:
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


# ---------------------------------------------------------------------------------------
# Invalid vectors
# ---------------------------------------------------------------------------------------
@dataclass
class InvalidSpec:
    name: str
    error: str
    stage: str
    reason: str
    build: Callable[[Path, dict[str, Path]], None]  # (target path, bases) -> writes target
    sample: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def from_bytes(data_fn: Callable[[dict[str, Path]], bytes]) -> Callable[[Path, dict[str, Path]], None]:
    def build(target: Path, bases: dict[str, Path]) -> None:
        target.write_bytes(data_fn(bases))
    return build


def h5_edit(base: str, fn: Callable[[h5py.File], None]) -> Callable[[Path, dict[str, Path]], None]:
    def build(target: Path, bases: dict[str, Path]) -> None:
        shutil.copyfile(bases[base], target)
        with h5py.File(target, "r+") as h5:
            fn(h5)
    return build


def byte_edit(base: str, fn: Callable[[bytearray, Path], None]) -> Callable[[Path, dict[str, Path]], None]:
    def build(target: Path, bases: dict[str, Path]) -> None:
        data = bytearray(bases[base].read_bytes())
        fn(data, bases[base])
        target.write_bytes(bytes(data))
    return build


def flip_at_dataset(name: str) -> Callable[[bytearray, Path], None]:
    def fn(data: bytearray, base_path: Path) -> None:
        data[dataset_file_offset(base_path, name)] ^= 0xFF
    return fn


def _not_dcq_hdf5(bases: dict[str, Path]) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.h5"
        with h5py.File(p, "w", libver=("v110", "v110")) as h5:
            h5.attrs["title"] = "an ordinary HDF5 file"
            h5.create_dataset("images", data=np.arange(12, dtype=np.uint8).reshape(3, 4))
        return p.read_bytes()


def _payload_bit_flip_keeping_indices(h5: h5py.File) -> None:
    """Change one bit of sample 2 such that every index stays < K and padding stays zero:
    only the checksums (sample and /payload) reveal it."""
    stored = stored_samples(h5)
    s2 = bytearray(stored[2])
    n_bits = 4 * 5 * 3
    for bit in range(n_bits):
        trial = bytearray(s2)
        trial[bit // 8] ^= 1 << (bit % 8)
        bits = np.unpackbits(np.frombuffer(bytes(trial), np.uint8), bitorder="little")[:n_bits]
        if (bits.reshape(-1, 3) @ np.array([1, 2, 4])).max() < 5 and trial != s2:
            break
    else:  # pragma: no cover
        raise SystemExit("no suitable bit")
    off = int(h5["samples/offset"][2])
    payload = h5["payload"]
    payload[off + bit // 8] = trial[bit // 8]  # leaves /payload and /samples/crc32 stale


def _set_padding_bit(h5: h5py.File) -> None:
    stored = stored_samples(h5)
    s0 = bytearray(stored[0])  # 2x3 pixels at q=3: 18 bits, 6 padding bits in byte 2
    s0[2] |= 0x80
    stored[0] = bytes(s0)
    set_stored(h5, stored)


def _zstd_sample(fn: Callable[[bytes, int], bytes], i: int = 2) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        packed = zstandard.ZstdDecompressor().decompress(stored[i])
        stored[i] = fn(packed, len(packed))
        set_stored(h5, stored)
    return edit


def _index_ge_k(encoding: str) -> Callable[[Path, dict[str, Path]], None]:
    """Written with K=8, then declared K=5: sample 1 (1x1) holds index 7, crcs all correct."""
    def build(target: Path, bases: dict[str, Path]) -> None:
        rng = rng_for("base")
        maps = [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]
        maps[1][0, 0] = 7
        write_base(target, encoding, palette_size=8, maps=maps)
        with h5py.File(target, "r+") as h5:
            h5.attrs["palette_size"] = np.uint16(5)
            replace_dataset(h5, "palettes", h5["palettes"][:, :5, :])
    return build


def _attr(name: str, value: Any, **kw: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if value is None:
            del h5.attrs[name]
        else:
            h5.attrs.create(name, value, **kw)
    return edit


def _field(path: str, i: int, value: int) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] = value
        set_values(h5, path, arr)
    return edit


def _stale(path: str, change: Callable[[np.ndarray], None]) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        change(arr)
        set_values(h5, path, arr, fix_crc=False)
    return edit


def _xor(i: Any, mask: int) -> Callable[[np.ndarray], None]:
    def change(arr: np.ndarray) -> None:
        arr[i] ^= mask
    return change


def _add(i: Any, delta: int) -> Callable[[np.ndarray], None]:
    def change(arr: np.ndarray) -> None:
        arr[i] = int(arr[i]) + delta
    return change


def _replace_json(path: str, text: bytes, fix_crc: bool) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, path, np.frombuffer(text, dtype=np.uint8), fix_crc=fix_crc)
    return edit


def _stale_classes(h5: h5py.File) -> None:
    h5["classes"][0] = "c"  # same length, crc32 attribute left as it was


def _payload_chunked(h5: h5py.File) -> None:
    data = h5["payload"][()]
    replace_dataset(h5, "payload", data, chunks=(8,))


def _payload_crc_stale(h5: h5py.File) -> None:
    h5["payload"].attrs["crc32"] = np.uint32(h5["payload"].attrs["crc32"] ^ 0x1)


def _drop(path: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        del h5[path]
    return edit


def _retype(path: str, dtype: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, path, h5[path][()].astype(dtype))
    return edit


def _lengthen(path: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        replace_dataset(h5, path, np.concatenate([arr, arr[-1:]]))
    return edit


def _selection(part: str, i: int, value: int) -> Callable[[h5py.File], None]:
    return _field(f"selections/sel/{part}", i, value)


def _cut(base: str, where: Callable[[int], int]) -> Callable[[dict[str, Path]], bytes]:
    def fn(bases: dict[str, Path]) -> bytes:
        data = bases[base].read_bytes()
        return data[:where(len(data))]
    return fn


def _mask_attr(value: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        if value is None:
            del h5["masks"].attrs["patch_size"]
        else:
            h5["masks"].attrs["patch_size"] = value
    return edit


def _or_byte(path: str, i: int, bit: int) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] |= bit
        set_values(h5, path, arr)
    return edit


def _set_at(path: str, i: int, value: Any) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        arr = h5[path][()]
        arr[i] = value
        set_values(h5, path, arr)
    return edit


def _shorten(path: str) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, path, h5[path][()][:-1])
    return edit


def _masked_sample_2_unmasked(encoding: str) -> Callable[[h5py.File], None]:
    """Sample 2 stored as its whole map (H*W indices) instead of its kept pixels."""
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        full = pack_numpy(masked_base_maps()[2], 3)
        stored[2] = full if encoding == "raw" else zstd_raw_block_frame(full, len(full))
        set_stored(h5, stored)
    return edit


def _masked_kept_index_7(h5: h5py.File) -> None:
    """Sample 2's first kept index becomes 7 (K=5), every CRC correct."""
    stored = stored_samples(h5)
    m = masked_base_maps()[2]
    kept = m.ravel()[kept_pixel_order(*m.shape, MASK_BASE_P, MASK_BASE_KEEPS[2])].copy()
    kept[0] = 7
    stored[2] = pack_numpy(kept, 3)
    set_stored(h5, stored)


# --- hard links only, /classes rules, storage layouts (added with --append, 2026-12) ------
def _self_external_link(h5: h5py.File) -> None:
    """/classes becomes an external link into the file itself (to a self-consistent copy):
    a reader that follows links accepts it."""
    h5.copy("classes", "x_copy_of_classes")
    del h5["classes"]
    h5["classes"] = h5py.ExternalLink(Path(h5.filename).name, "/x_copy_of_classes")


def _soft_link_palettes(h5: h5py.File) -> None:
    h5.copy("palettes", "x_copy_of_palettes")
    del h5["palettes"]
    h5["palettes"] = h5py.SoftLink("/x_copy_of_palettes")


def _classes(names: list[bytes], dtype: Any = None) -> Callable[[h5py.File], None]:
    def edit(h5: h5py.File) -> None:
        replace_dataset(h5, "classes", np.array(names, dtype=object if dtype is None else dtype),
                        dtype=STR if dtype is None else dtype, crc=crc32(b"\n".join(names)))
    return edit


def _payload_compact(h5: h5py.File) -> None:
    payload, stored = h5["payload"][()], h5["payload"].attrs["crc32"]
    del h5["payload"]
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    ds = h5py.Dataset(h5py.h5d.create(h5.id, b"payload", h5py.h5t.NATIVE_UINT8,
                                      h5py.h5s.create_simple(payload.shape), dcpl=dcpl))
    ds[...] = payload
    ds.attrs["crc32"] = stored


def _palettes_chunked(h5: h5py.File) -> None:
    replace_dataset(h5, "palettes", h5["palettes"][()], chunks=(1, 5, 3))


def _classes_vlen_length(data: bytearray, base_path: Path) -> None:
    at = dataset_file_offset(base_path, "classes")  # the first 16-byte descriptor of /classes
    assert struct.unpack_from("<I", data, at)[0] == 1  # 'a'
    struct.pack_into("<I", data, at, 1 << 20)


def _ctx_stream(i: int, fn: Callable[[bytes], bytes]) -> Callable[[h5py.File], None]:
    """Replace sample i's stored ctx stream by ``fn(stream)``, every checksum correct."""
    def edit(h5: h5py.File) -> None:
        stored = stored_samples(h5)
        stored[i] = fn(stored[i])
        set_stored(h5, stored)
    return edit


def base_maps() -> list[np.ndarray]:
    """The index maps write_base draws (after its palettes)."""
    rng = rng_for("base")
    rng.integers(0, 256, size=(2, 5, 3), dtype=np.uint8)
    return [rng.integers(0, 5, size=s, dtype=np.uint8) for s in BASE_SIZES]


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
    _set_at("ctx/rows", -1, 1024 * m)(h5)


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


SAMPLE_FIELDS = ["height", "width", "label", "cluster", "offset", "length", "crc32"]
STR = h5py.string_dtype("utf-8")

INVALID: list[InvalidSpec] = [
    # --- §10.1 not a .dcq file ---------------------------------------------------------
    InvalidSpec("empty", "NotADcqFileError", "open", "an empty file (0 bytes)",
                from_bytes(lambda b: b"")),
    InvalidSpec("random_bytes", "NotADcqFileError", "open",
                "256 random bytes: no HDF5 signature",
                from_bytes(lambda b: b"RND!" + rng_for("random").bytes(252))),
    InvalidSpec("hdf5_not_dcq", "NotADcqFileError", "open",
                "a valid HDF5 file without the root attribute dcq_format",
                from_bytes(_not_dcq_hdf5)),
    InvalidSpec("wrong_magic", "NotADcqFileError", "open",
                "dcq_format is 'DCQ', not exactly 'dcq'",
                h5_edit("raw", _attr("dcq_format", "DCQ"))),
    # --- §10.2 truncation ---------------------------------------------------------------
    InvalidSpec("truncated_in_header", "TruncatedFileError", "open",
                "the raw base cut after 200 bytes (past the superblock)", from_bytes(_cut("raw", lambda n: 200))),
    InvalidSpec("truncated_in_middle", "TruncatedFileError", "open",
                "the raw base cut to half its length",
                from_bytes(_cut("raw", lambda n: n // 2))),
    InvalidSpec("truncated_one_byte_short", "TruncatedFileError", "open",
                "the raw base without its last byte", from_bytes(_cut("raw", lambda n: n - 1))),
    # --- §10.3 versions -----------------------------------------------------------------
    InvalidSpec("version_2_0", "UnsupportedVersionError", "open",
                "dcq_version (2, 0): unknown major version",
                h5_edit("raw", _attr("dcq_version", np.array([2, 0], dtype="<u4")))),
    InvalidSpec("must_understand_unknown", "UnsupportedVersionError", "open",
                "must_understand lists 'x-golden-unknown-feature'",
                h5_edit("raw", _attr("must_understand",
                                     np.array(["x-golden-unknown-feature"], dtype=object), dtype=STR))),
    # --- §10.4 attributes and datasets --------------------------------------------------
    InvalidSpec("bits_9", "StructureError", "open", "bits = 9 (outside 1..8)",
                h5_edit("raw", _attr("bits", np.uint8(9)))),
    InvalidSpec("channels_2", "StructureError", "open", "channels = 2 (not 1 or 3)",
                h5_edit("raw", _attr("channels", np.uint8(2)))),
    InvalidSpec("palette_size_9_at_q3", "StructureError", "open",
                "palette_size K = 9 > 2**bits = 8", h5_edit("raw", _attr("palette_size", np.uint16(9)))),
    InvalidSpec("encoding_unknown", "StructureError", "open", "payload_encoding = 'lz4'",
                h5_edit("raw", _attr("payload_encoding", "lz4"))),
    InvalidSpec("missing_attr_bits", "StructureError", "open", "root attribute bits is missing",
                h5_edit("raw", _attr("bits", None))),
    InvalidSpec("missing_payload", "StructureError", "open", "dataset /payload is missing",
                h5_edit("raw", _drop("payload"))),
    InvalidSpec("height_dtype_u8", "StructureError", "open",
                "/samples/height stored as <u8, not <u4",
                h5_edit("raw", _retype("samples/height", "<u8"))),
    InvalidSpec("num_samples_mismatch", "StructureError", "open",
                "num_samples = 4 but the per-sample arrays hold 3",
                h5_edit("raw", _attr("num_samples", np.uint64(4)))),
    InvalidSpec("payload_chunked", "StructureError", "open",
                "/payload is chunked (MUST be contiguous)",
                h5_edit("raw", _payload_chunked)),
    # --- §10.5 metadata checksums: h5py edits leaving the crc32 attribute stale ---------
    *[InvalidSpec(f"stale_crc_{name.replace('/', '_')}", "ChecksumMismatchError", "open",
                  f"{what}; its crc32 attribute left stale", h5_edit(base, fn))
      for name, what, base, fn in [
          ("palettes", "one palette colour changed", "raw", _stale("palettes", _xor((0, 0, 0), 0x5A))),
          ("classes", "class name 'a' changed to 'c'", "raw", _stale_classes),
          ("samples/height", "zstd: height of sample 2 changed 4 -> 5", "zstd", _stale("samples/height", _add(2, 1))),
          ("samples/width", "zstd: width of sample 2 changed 5 -> 4", "zstd",
           _stale("samples/width", _add(2, -1))),
          ("samples/label", "label of sample 0 changed 0 -> 1", "raw", _stale("samples/label", _xor(0, 1))),
          ("samples/cluster", "cluster of sample 0 changed 0 -> 1", "raw",
           _stale("samples/cluster", _xor(0, 1))),
          ("samples/offset", "offset of sample 2 minus 1 (still in the payload)",
           "raw", _stale("samples/offset", _add(2, -1))),
          ("samples/length", "zstd: length of sample 2 minus 1", "zstd",
           _stale("samples/length", _add(2, -1))),
          ("samples/crc32", "stored CRC of sample 1 changed", "raw", _stale("samples/crc32", _xor(1, 1))),
          ("provenance", "provenance seed 1 -> 2 (still valid JSON)", "raw",
           _stale("provenance", lambda a: a.__setitem__(np.flatnonzero(a == ord("1"))[0], ord("2")))),
          ("selections/sel/ranking", "selection ranking reversed", "full",
           _stale("selections/sel/ranking", lambda a: a.__setitem__(slice(None), a[::-1].copy()))),
      ]],
    # --- payload checksums ------------------------------------------------------------
    InvalidSpec("stale_crc_payload", "ChecksumMismatchError", "read",
                "a payload bit of sample 2 flipped (indices stay < K, padding zero); "
                "/samples/crc32[2] and the /payload crc32 left stale",
                h5_edit("raw", _payload_bit_flip_keeping_indices), sample=2),
    InvalidSpec("sample_crc_wrong", "ChecksumMismatchError", "read",
                "/samples/crc32[1] wrong (the dataset's own crc32 matches it)",
                h5_edit("raw", _field("samples/crc32", 1, 0xDEADBEEF)), sample=1),
    InvalidSpec("payload_crc_attr_wrong", "ChecksumMismatchError", "verify",
                "the /payload crc32 attribute is wrong, every per-sample CRC is right", h5_edit("raw", _payload_crc_stale)),
    # --- raw byte flips at each dataset's file offset (64-sample base: per-sample arrays
    #     are chunked with shuffle+deflate, so a flip corrupts the deflate stream) --------
    InvalidSpec("flip_payload", "ChecksumMismatchError", "read",
                "first byte of /payload (in the file) XOR 0xFF",
                byte_edit("chunked", flip_at_dataset("payload")), sample=0),
    *[InvalidSpec(f"flip_samples_{name}", "StructureError", "open",
                  f"a byte inside /samples/{name}'s deflated chunk XOR 0xFF: HDF5 cannot "
                  "read the dataset",
                  byte_edit("chunked", flip_at_dataset(f"samples/{name}")))
      for name in SAMPLE_FIELDS],
    # --- §10.6 per-sample values (all checksums consistent) ------------------------------
    InvalidSpec("height_0", "StructureError", "open", "height of sample 0 is 0",
                h5_edit("raw", _field("samples/height", 0, 0))),
    InvalidSpec("width_65537", "StructureError", "open", "width of sample 1 is 65537 > 65536",
                h5_edit("zstd", _field("samples/width", 1, 65537))),
    InvalidSpec("pixels_over_2_28", "StructureError", "open",
                "sample 1 is 16385x16385 (> 2**28 pixels)",
                h5_edit("zstd", lambda h5: (_field("samples/height", 1, 16385)(h5),
                                            _field("samples/width", 1, 16385)(h5)))),
    InvalidSpec("label_ge_num_classes", "StructureError", "open", "label of sample 1 is 2 = num_classes",
                h5_edit("raw", _field("samples/label", 1, 2))),
    InvalidSpec("cluster_ge_num_clusters", "StructureError", "open",
                "cluster of sample 1 is 2 = C", h5_edit("raw", _field("samples/cluster", 1, 2))),
    InvalidSpec("offset_past_payload", "StructureError", "open",
                "offset of sample 2 = payload size",
                h5_edit("raw", lambda h5: _field("samples/offset", 2, h5["payload"].shape[0])(h5))),
    InvalidSpec("offset_2_64_minus_1", "StructureError", "open",
                "offset of sample 0 is 2**64-1 (offset + length overflows)",
                h5_edit("raw", _field("samples/offset", 0, 2**64 - 1))),
    InvalidSpec("length_past_payload", "StructureError", "open",
                "zstd: length of the last sample plus 1 (past the payload)",
                h5_edit("zstd", lambda h5: _field("samples/length", 2, int(h5["samples/length"][2]) + 1)(h5))),
    InvalidSpec("raw_length_mismatch", "StructureError", "open",
                "raw: length of sample 0 is 2, ceil(2*3*3/8) = 3",
                h5_edit("raw", _field("samples/length", 0, 2))),
    InvalidSpec("zstd_huge_content_size", "PayloadError", "read",
                "sample 2's zstd frame declares 2**40 bytes (check before allocating)",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, 2**40))), sample=2),
    InvalidSpec("zstd_wrong_content_size", "PayloadError", "read",
                "sample 2's zstd frame declares and holds ceil(H*W*q/8)+1 bytes",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p + b"\0", n + 1))),
                sample=2),
    InvalidSpec("zstd_no_content_size", "PayloadError", "read",
                "sample 2's zstd frame does not declare its content size",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, None))), sample=2),
    InvalidSpec("zstd_reserved_block_type", "PayloadError", "read",
                "sample 2's zstd frame has a block of the reserved type 3",
                h5_edit("zstd", _zstd_sample(lambda p, n: zstd_raw_block_frame(p, n, block_type=3))),
                sample=2),
    InvalidSpec("zstd_not_a_frame", "PayloadError", "read",
                "zstd file, sample 2 holds raw packed bytes (no frame)",
                h5_edit("zstd", _zstd_sample(lambda p, n: p)), sample=2),
    # --- §10.7 an index >= K with every checksum correct ------------------------------------
    InvalidSpec("index_ge_k_raw", "PayloadError", "read",
                "q=3, K=5: sample 1 (1x1) holds index 7; every CRC is correct",
                _index_ge_k("raw"), sample=1),
    InvalidSpec("index_ge_k_zstd", "PayloadError", "read",
                "as index_ge_k_raw with the zstd encoding", _index_ge_k("zstd"), sample=1),
    # --- §5 padding ----------------------------------------------------------------------
    InvalidSpec("padding_nonzero", "StructureError", "verify",
                "sample 0 (18 bits at q=3) has a non-zero padding bit (decoding MAY ignore it)", h5_edit("raw", _set_padding_bit)),
    # --- §10.8 selections --------------------------------------------------------------------
    InvalidSpec("selection_ranking_out_of_range", "StructureError", "open",
                "selection ranking holds index 3 = N", h5_edit("full", _selection("ranking", 0, 3))),
    InvalidSpec("selection_selected_negative", "StructureError", "open",
                "selection selected holds -1", h5_edit("full", _selection("selected", 0, -1))),
    # --- §13 patch masks (version 1.1; added with --append). Base: q=3 RGB, K=5, P=2, samples
    #     2x3 (keep 1,0), 1x1 (1), 4x5 (1,0,1,1,0,1: two padding bits), 5x6 (3x3 patches) ------
    InvalidSpec("masks_group_missing", "StructureError", "open",
                "must_understand lists patch-mask but /masks is missing",
                h5_edit("masked_raw", _drop("masks"))),
    InvalidSpec("masks_patch_size_0", "StructureError", "open", "/masks patch_size = 0",
                h5_edit("masked_raw", _mask_attr(np.uint32(0)))),
    InvalidSpec("masks_patch_size_missing", "StructureError", "open",
                "/masks has no patch_size attribute", h5_edit("masked_raw", _mask_attr(None))),
    InvalidSpec("masks_keep_dtype_u2", "StructureError", "open", "/masks/keep stored as <u2, not u1",
                h5_edit("masked_raw", _retype("masks/keep", "<u2"))),
    InvalidSpec("masks_keep_one_byte_long", "StructureError", "open",
                "/masks/keep holds one byte more than the sum of ceil(G_i/8)",
                h5_edit("masked_raw", _lengthen("masks/keep"))),
    InvalidSpec("masks_keep_padding_nonzero", "StructureError", "open",
                "sample 2's mask (6 patches) has padding bit 6 set; its CRC is correct",
                h5_edit("masked_raw", _or_byte("masks/keep", 2, 0x40))),
    InvalidSpec("masks_fill_ge_k", "StructureError", "open", "the first fill index is 5 = K",
                h5_edit("masked_raw", _set_at("masks/fill", 0, 5))),
    InvalidSpec("masks_fill_one_short", "StructureError", "open",
                "/masks/fill holds one fill fewer than there are dropped patches",
                h5_edit("masked_raw", _shorten("masks/fill"))),
    InvalidSpec("masks_theta_nan", "StructureError", "open", "/masks/theta[1] is NaN",
                h5_edit("masked_raw", _set_at("masks/theta", 1, np.nan))),
    InvalidSpec("masks_theta_above_1", "StructureError", "open", "/masks/theta[0] is 1.5",
                h5_edit("masked_raw", _set_at("masks/theta", 0, 1.5))),
    InvalidSpec("masks_raw_length_unmasked", "StructureError", "open",
                "raw: sample 2 stores all 20 indices (8 bytes), not its 12 kept ones (5 bytes); "
                "every CRC correct", h5_edit("masked_raw", _masked_sample_2_unmasked("raw"))),
    InvalidSpec("masks_zstd_declares_unmasked_size", "PayloadError", "read",
                "zstd: sample 2's frame declares and holds ceil(H*W*q/8) = 8 bytes, not "
                "ceil(S*q/8) = 5", h5_edit("masked_zstd", _masked_sample_2_unmasked("zstd")),
                sample=2),
    InvalidSpec("masks_kept_index_ge_k", "PayloadError", "read",
                "sample 2's first kept index is 7 (K=5); every CRC correct",
                h5_edit("masked_raw", _masked_kept_index_7), sample=2),
    InvalidSpec("masks_stale_crc_theta", "ChecksumMismatchError", "open",
                "/masks/theta[0] changed (still in 0..1); its crc32 attribute left stale",
                h5_edit("masked_raw", _stale("masks/theta", lambda a: a.__setitem__(0, 0.125)))),
    # --- §10.11-13 (2026-12; added with --append): hard links only, /classes rules, layouts
    InvalidSpec("link_external_classes", "StructureError", "open",
                "/classes is an external link into the file itself (to a copy with the right "
                "crc32): a reader that follows it reads valid names", h5_edit("raw", _self_external_link)),
    InvalidSpec("link_soft_palettes", "StructureError", "open",
                "/palettes is a soft link to a copy of the palettes at /x_copy_of_palettes",
                h5_edit("raw", _soft_link_palettes)),
    InvalidSpec("classes_duplicate", "StructureError", "open",
                "classes are ['a', 'a'] (crc32 right)", h5_edit("raw", _classes([b"a", b"a"]))),
    InvalidSpec("classes_empty_name", "StructureError", "open",
                "classes are ['', 'b'] (crc32 right)", h5_edit("raw", _classes([b"", b"b"]))),
    InvalidSpec("classes_newline", "StructureError", "open",
                "classes are ['a\\nx', 'b'] (crc32 over the names joined by newlines)",
                h5_edit("raw", _classes([b"a\nx", b"b"]))),
    InvalidSpec("classes_fixed_length", "StructureError", "open",
                "/classes stored as fixed-length 1-byte strings ('a', 'b'), not variable-length UTF-8",
                h5_edit("raw", _classes([b"a", b"b"], "S1"))),
    InvalidSpec("classes_vlen_length_mismatch", "StructureError", "open",
                "the descriptor of class 0 declares 1 MiB; its global heap object holds 1 byte "
                "(HDF5 would allocate the declared size before noticing)",
                byte_edit("raw", _classes_vlen_length)),
    InvalidSpec("payload_compact", "StructureError", "open",
                "/payload uses the compact layout (MUST be contiguous; not a truncation)",
                h5_edit("raw", _payload_compact)),
    InvalidSpec("palettes_chunked", "StructureError", "open",
                "/palettes is chunked (MUST be contiguous)", h5_edit("raw", _palettes_chunked)),
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
                "/ctx/freq holds R*K - 1 values", h5_edit("ctx", _shorten("ctx/freq"))),
    InvalidSpec("ctx_prob_bits_16", "StructureError", "open", "/ctx prob_bits = 16",
                h5_edit("ctx", _ctx_attr("prob_bits", np.uint8(16)))),
    InvalidSpec("ctx_models_unknown", "StructureError", "open", "/ctx models = 'sample'",
                h5_edit("ctx", _ctx_attr("models", "sample"))),
    InvalidSpec("ctx_context_unknown", "StructureError", "open",
                "/ctx context = 'neighbours-12'", h5_edit("ctx", _ctx_attr("context", "neighbours-12"))),
    InvalidSpec("ctx_group_missing", "StructureError", "open",
                "payload_encoding ctx but no /ctx group", h5_edit("ctx", _drop("ctx"))),
    InvalidSpec("ctx_feature_not_listed", "StructureError", "open",
                "payload_encoding ctx but must_understand is empty",
                h5_edit("ctx", _must_understand([]))),
    InvalidSpec("ctx_feature_on_raw_file", "StructureError", "open",
                "a raw file whose must_understand lists ctx-payload",
                h5_edit("raw", _must_understand(["ctx-payload"]))),
    InvalidSpec("ctx_stale_crc_freq", "ChecksumMismatchError", "open",
                "one /ctx/freq value changed (row sums kept); its crc32 attribute left stale",
                h5_edit("ctx", _stale("ctx/freq", _move_one_count))),
]


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_invalid_stage(path: Path, spec: InvalidSpec) -> None:
    """The vector must fail exactly as recorded with the reference reader (sanity check)."""
    import dcqformat.errors as E
    from dcqformat import DCQFile

    want = getattr(E, spec.error)
    try:
        f = DCQFile(path, check_crc=True)
    except E.DcqError as exc:
        stage, got = "open", exc
    else:
        stage, got = "", None
        try:
            for i in range(len(f)):
                try:
                    f[i]
                except E.DcqError as exc:
                    stage, got = "read", exc
                    if spec.sample is not None and i != spec.sample:
                        raise SystemExit(f"{spec.name}: failed at sample {i}, expected {spec.sample}") from None
                    break
            try:
                f.verify()
            except E.DcqError as exc:
                if got is None:
                    stage, got = "verify", exc
                elif type(exc) is not type(got):
                    raise SystemExit(f"{spec.name}: read raised {type(got).__name__}, verify "
                                     f"{type(exc).__name__}") from None
            else:
                if got is not None:
                    raise SystemExit(f"{spec.name}: read failed but verify passed")
        finally:
            f.close()
    if stage != spec.stage or type(got) is not want:
        raise SystemExit(f"{spec.name}: expected {spec.error} at {spec.stage}, got "
                         f"{type(got).__name__} at {stage or 'nowhere'}: {got}")


def generate(out: Path, *, append: bool) -> list[str]:
    """Write every vector not yet in ``out``; returns the relative paths written."""
    written: list[str] = []
    readme_rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stage_dir = tmp / "stage"
        (stage_dir / "valid").mkdir(parents=True)
        (stage_dir / "invalid").mkdir(parents=True)
        for spec in VALID:
            if append and (out / "valid" / f"{spec.name}.dcq").exists():
                continue
            row = write_valid(spec, stage_dir / "valid")
            readme_rows.append(f"| `valid/{spec.name}.dcq` | decodes to `{spec.name}.expected.npz`; "
                               f"passes verify | {row['what']} |")
        bases = {"raw": tmp / "base_raw.dcq", "zstd": tmp / "base_zstd.dcq",
                 "full": tmp / "base_full.dcq", "chunked": tmp / "base_chunked.dcq"}
        write_base(bases["raw"], "raw")
        write_base(bases["zstd"], "zstd")
        write_base(bases["full"], "raw", extras=True)
        write_base_chunked(bases["chunked"])
        bases["masked_raw"], bases["masked_zstd"] = tmp / "base_masked_raw.dcq", tmp / "base_masked_zstd.dcq"
        write_base_masked(bases["masked_raw"], "raw")
        write_base_masked(bases["masked_zstd"], "zstd")
        bases["ctx"] = tmp / "base_ctx.dcq"
        write_base(bases["ctx"], "ctx")
        for spec in INVALID:
            if append and (out / "invalid" / f"{spec.name}.dcq.gz").exists():
                continue
            target = tmp / f"{spec.name}.dcq"
            spec.build(target, bases)
            _check_invalid_stage(target, spec)
            data = target.read_bytes()
            (stage_dir / "invalid" / f"{spec.name}.dcq.gz").write_bytes(
                gzip.compress(data, compresslevel=9, mtime=0))
            record: dict[str, Any] = {"error": spec.error, "stage": spec.stage, "reason": spec.reason}
            if spec.sample is not None:
                record["sample"] = spec.sample
            record.update(spec.extra)
            (stage_dir / "invalid" / f"{spec.name}.expected.json").write_text(
                json.dumps(record, indent=2, sort_keys=True) + "\n")
            where = {"open": "`DCQFile(path)`", "read": f"reading sample {spec.sample}",
                     "verify": "`verify()`"}[spec.stage]
            readme_rows.append(f"| `invalid/{spec.name}.dcq.gz` | **{spec.error}** at {where} | "
                               f"{spec.reason} |")
        for sub in ("valid", "invalid"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            for p in sorted((stage_dir / sub).iterdir()):
                dest = out / sub / p.name
                if dest.exists():  # never overwrite a vector
                    raise SystemExit(f"{dest} exists; vectors are append-only")
                shutil.copyfile(p, dest)
                written.append(f"{sub}/{p.name}")
    with open(out / "SHA256SUMS", "a") as fh:
        for rel in written:
            fh.write(f"{sha256((out / rel).read_bytes())}  {rel}\n")
    readme = out / "README.md"
    if not readme.exists():
        readme.write_text(README_HEAD)
    with open(readme, "a") as fh:
        if append:
            fh.write("\n")
        fh.write("\n".join(readme_rows) + "\n")
    return written


README_HEAD = """\
# Golden vectors of the .dcq format, version 1.0

Written once by `tools/make_vectors.py` (fixed seed) and **never regenerated**: any change
that alters these bytes or their decoding is a format change (spec/dcq-v1.md §12). New
vectors are added under new names only (`tools/make_vectors.py --append`). `SHA256SUMS`
lists every file except this README (`cd spec/vectors && sha256sum -c SHA256SUMS`).

## Valid files: `valid/<name>.dcq`

Written by the reference writer (`dcqformat.DCQWriter`; the `version_1_7` one then copied
into a new HDF5 file with h5py and edited as its row says). Each decodes to the arrays in
`<name>.expected.npz`: `pixels_<i>` (uint8 H×W×ch, sample i) and `labels` (int64 [N]).
These expected pixels were computed from the generated index maps by a palette lookup in
NumPy (`palettes[cluster][indices]`), not by any .dcq decoder. Every valid file also passes
a verifier (all checksums, zero padding, every sample decoded).

## Invalid files: `invalid/<name>.dcq.gz`

Hostile files, each with exactly one defect. They are gzip-compressed (`gunzip -k` gives the
`.dcq` file) only to keep this folder small: the reference writer's smallest file is ~12 KiB,
mostly zero padding. `<name>.expected.json` holds:

- `error`: the error family a reader must raise, named as in `dcqformat.errors`:
  `NotADcqFileError` (not a .dcq file at all), `TruncatedFileError`,
  `UnsupportedVersionError` (major version or must-understand feature), `StructureError`
  (a missing/ill-typed/out-of-range field, or HDF5 data that cannot be read),
  `ChecksumMismatchError`, `PayloadError` (a sample's stored bytes cannot be decoded);
- `stage`: `open` (opening the file, which validates all metadata, must fail), `read`
  (opening succeeds; reading sample `sample` must fail, and so must a verifier), or
  `verify` (every sample reads; only a verifier must fail). For `ChecksumMismatchError` at
  `read` the reader must check each sample's CRC-32 as it reads it (§10.5;
  `DCQFile(path, check_crc=True)`); a reader that skips that check finds it at `verify`;
- `reason`: the defect, in words; the error message must name the file.

Unless stated, the invalid files derive from one valid base: q=3 RGB, K=5, two palettes, two
classes, three samples of 2×3, 1×1 and 4×5 pixels (raw or zstd; sources and a selection
`sel` where a vector needs them); the `flip_*` files derive from a 64-sample q=2 grey base
whose per-sample arrays are chunked with shuffle+deflate.

| file | must | what |
|---|---|---|
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vectors folder")
    parser.add_argument("--append", action="store_true",
                        help="add only vectors whose files do not exist yet; never touch others")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and not args.append:
        print(f"{out} exists: golden vectors are written once and never regenerated. "
              "Add new vectors under new names with --append.", file=sys.stderr)
        return 1
    written = generate(out, append=args.append)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(written)} files to {out} (folder now {total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
