"""``dcqformat merge SHARDS... OUT``: one ``.dcq`` file from the shards of a sharded conversion.

A shard is an ordinary ``.dcq`` file whose provenance carries a ``shard`` record (written by
``convert`` in shard or torchrun mode, :mod:`dcqformat.encode.state`): its index ``i`` of
``count``, the fit it was encoded against (``fit_sha256``), the listing positions of its samples
(half-open runs) and of its skipped files, and its quality / byte sums.

The merge refuses (:class:`ShardMismatchError`) shards that disagree on anything the merged file
shares -- bits, channels, palette size, classes, palettes, fit, source listing, parameters,
shard count -- and an incomplete or repeated set of shards. It then writes every sample, in
ascending listing position (the canonical order of a single-process run), through
:class:`~dcqformat.format.writer.DCQWriter` (an anonymous temporary file published at the end:
an interrupted merge leaves nothing under ``out``, and an ``out`` that appears meanwhile is not
replaced unless ``overwrite``). The provenance is the shards' common provenance without the
``shard`` record, with the union of skipped files, the quality over all samples (mean = sum of
the shards' PSNR sums / images; equal to a single-process run's up to float rounding) and a
``scale_out`` record of how the file was made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcqformat.checks import check_path
from dcqformat.errors import InvalidArgumentError, ShardMismatchError
from dcqformat.format.layout import DEFAULT_MAX_PIXELS
from dcqformat.format.reader import DCQFile
from dcqformat.format.writer import DCQWriter

__all__ = ["ShardMismatchError", "MergeResult", "merge_shards"]


@dataclass
class MergeResult:
    """What :func:`merge_shards` wrote."""

    path: str
    images: int
    shards: int
    file_bytes: int
    raw_pixel_bytes: int
    source_bytes: int
    psnr_mean_db: float
    psnr_min_db: float
    skipped: list[dict[str, str]]


def _expand(runs: Sequence[Sequence[int]]) -> np.ndarray:
    parts = [np.arange(int(a), int(b), dtype=np.int64) for a, b in runs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _shard_record(f: DCQFile) -> dict[str, Any]:
    rec = f.provenance.get("shard")
    if not isinstance(rec, dict) or not {"index", "count", "positions"} <= set(rec):
        raise ShardMismatchError(f"{f.path} is not a shard: its provenance has no 'shard' record "
                                 "(write shards with convert --shard i/N or torchrun)")
    return rec


def _check_same(ref: DCQFile, f: DCQFile) -> None:
    """Raise ShardMismatchError naming the first thing ``f`` does not share with ``ref``."""
    a, b = ref.provenance, f.provenance
    checks: list[tuple[str, Any, Any]] = [
        ("bits", ref.bits, f.bits), ("channels", ref.channels, f.channels),
        ("palette_size", ref.palette_size, f.palette_size), ("classes", ref.classes, f.classes),
        ("shard count", a["shard"]["count"], b["shard"]["count"]),
        ("fit (fit_sha256)", a["shard"].get("fit_sha256"), b["shard"].get("fit_sha256")),
        ("source listing (listing_sha256)", a.get("source", {}).get("listing_sha256"),
         b.get("source", {}).get("listing_sha256")),
        ("parameters", a.get("parameters"), b.get("parameters")),
    ]
    for what, x, y in checks:
        if x != y:
            raise ShardMismatchError(f"{f.path} differs from {ref.path} in {what}: {y!r} vs {x!r}")
    if ref.palettes.shape != f.palettes.shape or not np.array_equal(ref.palettes, f.palettes):
        raise ShardMismatchError(f"{f.path} differs from {ref.path} in its palettes "
                                 f"({f.palettes.shape} vs {ref.palettes.shape}); shards must be "
                                 "encoded against the same fit")


def _order(files: Sequence[DCQFile], records: Sequence[dict[str, Any]]) -> np.ndarray:
    """Rows ``(position, file, sample)`` sorted by listing position."""
    count = int(records[0]["count"])
    seen = sorted(int(r["index"]) for r in records)
    if seen != list(range(count)):
        missing = sorted(set(range(count)) - set(seen))
        repeated = sorted({i for i in seen if seen.count(i) > 1})
        raise ShardMismatchError(f"need shards 0..{count - 1} once each; missing {missing}, "
                                 f"repeated {repeated}")
    rows = []
    for j, (f, r) in enumerate(zip(files, records, strict=True)):
        pos = _expand(r["positions"])
        if len(pos) != len(f):
            raise ShardMismatchError(f"{f.path}: its shard record lists {len(pos)} positions "
                                     f"but it holds {len(f)} samples")
        rows.append(np.stack([pos, np.full_like(pos, j), np.arange(len(pos))], 1))
    table = np.concatenate(rows)
    table = table[np.argsort(table[:, 0], kind="stable")]
    dup = np.flatnonzero(np.diff(table[:, 0]) == 0)
    if dup.size:
        raise ShardMismatchError(f"listing position {int(table[dup[0], 0])} is in two shards")
    return table


def _provenance(files: Sequence[DCQFile], records: Sequence[dict[str, Any]],
                scale_out: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    prov = {k: v for k, v in files[0].provenance.items() if k != "shard"}
    images = sum(int(r["images"]) for r in records)
    skipped: dict[int, dict[str, str]] = {}
    for f, r in zip(files, records, strict=True):
        for p, item in zip(r["skipped_positions"], f.provenance.get("skipped", []), strict=False):
            skipped[int(p)] = item
    totals = {"images": images,
              "raw_pixel_bytes": sum(int(r["raw_pixel_bytes"]) for r in records),
              "source_bytes": sum(int(r["source_bytes"]) for r in records),
              "psnr_mean_db": sum(float(r["psnr_sum"]) for r in records) / max(1, images),
              "psnr_min_db": min(float(r["psnr_min"]) for r in records)}
    prov["skipped"] = [skipped[p] for p in sorted(skipped)]
    prov["quality"] = {"psnr_mean_db": totals["psnr_mean_db"], "psnr_min_db": totals["psnr_min_db"]}
    prov["scale_out"] = {
        "mode": records[0].get("mode"), "shards": len(files),
        "share_rule": records[0].get("rule"), "block": records[0].get("block"),
        "fit_sha256": records[0].get("fit_sha256"), **dict(scale_out or {}),
    }
    return prov, totals


def merge_shards(shards: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 overwrite: bool = False, scale_out: Mapping[str, Any] | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> MergeResult:
    """Merge the shard files ``shards`` (any order) into ``out``; see the module docstring.

    ``max_pixels``: the reader's pixel guard for the shards (:class:`DCQFile`).
    ``scale_out``: extra JSON-serialisable facts recorded under the provenance's
    ``scale_out`` (torchrun's byte counts). Raises :class:`ShardMismatchError` for shards that
    do not belong together and InvalidArgumentError when ``out`` exists (unless ``overwrite``)
    or is one of the shards.
    """
    if isinstance(shards, (str, bytes, os.PathLike)) or not hasattr(shards, "__iter__"):
        raise InvalidArgumentError(f"shards must be a sequence of paths, got {type(shards).__name__}")
    try:
        items = list(shards)
    except TypeError as exc:  # e.g. a 0-d array
        raise InvalidArgumentError(f"shards must be a sequence of paths ({exc})") from None
    paths = [check_path(s, "a shard") for s in items]
    if not paths:
        raise InvalidArgumentError("merge needs at least one shard file")
    out_path = check_path(out, "out")
    # realpath, not Path.resolve: that raises RuntimeError (OSError on 3.13) on a symlink loop
    if any(os.path.realpath(out_path) == os.path.realpath(p) for p in paths):
        raise InvalidArgumentError(f"output {str(out_path)!r} is one of the shards")
    if out_path.exists() and not overwrite:
        raise InvalidArgumentError(f"output {str(out_path)!r} exists (pass overwrite=True / --force)")
    files = [DCQFile(p, max_pixels=max_pixels) for p in paths]
    for f in files:
        if getattr(f, "patch_size", None) is not None:
            raise ShardMismatchError(f"{f.path} has patch masks; merging them is not supported yet")
    records = [_shard_record(f) for f in files]
    for f in files[1:]:
        _check_same(files[0], f)
    table = _order(files, records)
    prov, totals = _provenance(files, records, scale_out)
    ref = files[0]
    encoding = str(prov.get("parameters", {}).get("payload_encoding", ref.payload_encoding))
    with DCQWriter(out_path, ref.bits, ref.channels, ref.classes, palette_size=ref.palette_size,
                   payload_encoding=encoding, overwrite=overwrite) as w:
        w.set_palettes(np.asarray(ref.palettes))
        meta = [(f.heights, f.widths, f.clusters, f.labels, f.source_paths, f.source_sizes)
                for f in files]
        for _pos, j, i in table.tolist():
            hs, ws, cl, lb, sp, sz = meta[j]
            h, wd = int(hs[i]), int(ws[i])
            idx = files[j].index_map(i)  # validated, decompressed; shards have no masks
            if idx.shape != (h, wd):
                raise ShardMismatchError(f"{files[j].path}: sample {i} is {idx.shape}, expected {(h, wd)}")
            w.add_sample(idx, int(cl[i]), int(lb[i]),
                         source_path=None if sp is None else sp[i],
                         source_size=None if sz is None else int(sz[i]),
                         original_size=files[j].original_shape(i)[:2])  # spec §15
        w.set_provenance(prov)
    for f in files:
        f.close()
    return MergeResult(str(out_path), totals["images"], len(files), out_path.stat().st_size,
                       totals["raw_pixel_bytes"], totals["source_bytes"], totals["psnr_mean_db"],
                       totals["psnr_min_db"], prov["skipped"])
