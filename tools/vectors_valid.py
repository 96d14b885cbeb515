"""The valid golden vectors (``spec/vectors/valid/``) of ``tools/make_vectors.py``: their
specs (``VALID``) and :func:`write_valid`, which writes one with the reference writer and
checks its stored bytes against an independent packing (spec/dcq-v1.md §5, §13, §14).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard
from vectors_spec import (
    SEED,
    ctx_decode,
    ctx_rows,
    grid,
    kept_pixel_order,
    masked_pixels,
    pack_keep,
    pack_numpy,
    patches,
    reference_fills,
    replace_dataset,
    rng_for,
    set_stored,
)


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
    """One valid vector: the file's parameters, its samples and how they are drawn."""
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
    originals: list[tuple[int, int] | None] | None = None  # §15: add_sample(original_size=)


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
    # --- version 1.3: §15 original sizes (added with --append) ------------------------------
    ValidSpec("q2_rgb_zstd_original_sizes", 2, 3, 4, 2, ["a", "b"],
              [(32, 24), (1, 1), (5, 7), (16, 16)], "zstd",
              "v1.3 original sizes: §15's worked example (64x48 stored as 32x24), a 1x1 stored "
              "from 3x2, one sample at its stored size (recorded equal), 16x16 from 33x31; "
              "expected.npz adds original_sizes", smooth=(0, 3),
              originals=[(64, 48), (3, 2), None, (33, 31)]),
]


def _indices(rng: np.random.Generator, h: int, w: int, k: int, smooth: bool) -> np.ndarray:
    if smooth:  # a diagonal ramp of runs: compressible
        yy, xx = np.mgrid[0:h, 0:w]
        return (((yy + xx) // 3) % k).astype(np.uint8)
    return rng.integers(0, k, size=(h, w), dtype=np.uint8)


def write_valid(spec: ValidSpec, folder: Path) -> dict[str, Any]:
    """Write vector ``spec`` and its expected.npz into ``folder``, after checking the
    writer's stored bytes; returns its README row fields."""
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
            if spec.originals is not None:
                kw["original_size"] = spec.originals[i]
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
    if spec.originals is not None:  # §15: (H0, W0) per sample, the stored size where None
        expected["original_sizes"] = np.array(
            [o if o is not None else hw for o, hw in zip(spec.originals, spec.sizes, strict=True)],
            dtype=np.int64)
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
