"""Scale-out without torch.distributed: ``fit_only`` and ``state`` + ``shard`` runs.

``convert(src, state.npz, fit_only=True)`` runs every stage up to ``refine`` and writes the
fit state (:class:`~dcqformat.encode.state.FitState`); ``convert(src, part_i.dcq, state=S,
shard="i/N")`` analyses only share ``i`` (features only: no Grad-CAM++ or per-image palettes
are needed), gives each image the cluster of the nearest centroid of its standardised features
and writes its samples with the state's palettes; ``dcqformat merge`` joins the parts. The
pieces shared with the torchrun driver (checks, the fit state, the shard record, the
from-state run) live here too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from dcqformat.encode.drivers.common import (
    Prepared,
    check_readable,
    identity,
    model_for,
    prepare,
    running,
    summarise,
)
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.stages.analyse import Analysis, analyse
from dcqformat.encode.stages.context import RunContext
from dcqformat.encode.stages.fit import Clusters, PaletteTable, RefineStats
from dcqformat.encode.stages.provenance import RunRecord, provenance
from dcqformat.encode.stages.write import WriteStats, write
from dcqformat.encode.state import (
    FitState,
    Share,
    empty_share_error,
    feature_moments,
    parse_shard,
    position_runs,
    proxy_payload,
)
from dcqformat.encode.summary import ConvertSummary, FitSummary
from dcqformat.errors import InvalidArgumentError

__all__ = ["run_sharded", "check_scale_out", "fit_state", "fit_id", "shard_record",
           "encode_from_state", "fit_summary", "provenance_with_shard"]


def check_scale_out(prep: Prepared, *, shard: Any, state: FitState | None, fit_only: bool,
                    torchrun: bool) -> None:
    """Refuse what scale-out does not support, and parameters that differ from the fit."""
    if prep.opts.palette == "image":
        raise InvalidArgumentError("palette='image' cannot be sharded or fitted (its palettes are "
                                   "refined during the write pass); use 'cluster' or 'global'")
    if prep.selection.active or prep.dropper is not None:
        raise InvalidArgumentError("coreset / dedup selection and patch dropping are not "
                                   "supported with --shard, --state, --fit-only or torchrun yet")
    if shard is not None and (state is None or torchrun):
        raise InvalidArgumentError("shard needs a fit state (state=...) and no torchrun")
    if fit_only and state is not None:
        raise InvalidArgumentError("fit_only and state exclude each other")
    if state is not None:
        state.check_parameters(prep.opts)


def fit_id(palettes: np.ndarray, opts: ConvertOptions) -> str:
    """The identity shards of one torchrun job record: palettes + shard parameters."""
    h = hashlib.sha256(np.ascontiguousarray(palettes).tobytes())
    h.update(json.dumps(opts.shard_parameters(), sort_keys=True, default=str).encode())
    return h.hexdigest()


def fit_state(ctx: RunContext, a: Analysis, clusters: Clusters, table: PaletteTable,
              refine: RefineStats, task: Any, model_id: dict[str, Any], channels: int,
              reserved: int, source: dict[str, Any]) -> FitState:
    """The :class:`FitState` of a fit (what :meth:`FitState.save` writes)."""
    payload = proxy_payload(task) if task is not None else None
    meta: dict[str, Any] = {
        "parameters": ctx.opts.shard_parameters(), "source": source, "channels": channels,
        "clusters_used": int(table.palettes.shape[0]), "images": len(a), "model": model_id,
        "proxy": None if payload is None else {k: v for k, v in payload.items()
                                               if k != "state_dict"},
        "refinement": refine.sums(), "attention_degenerate_maps": a.degenerate,
        "gradcam_target": a.target_rule, "reserved_groups": int(reserved),
        "skipped": [{"position": p, "path": ctx.source.relpath(p) or str(p),
                     "error": ctx.skipped[p]} for p in sorted(ctx.skipped)],
    }
    mean = std = centers = None
    if clusters.features is not None and clusters.centers is not None:
        m, s = feature_moments(clusters.features)
        mean, std = m.cpu().numpy(), s.cpu().numpy()
        centers = clusters.centers.detach().cpu().float().numpy()
    return FitState(meta, np.ascontiguousarray(table.palettes), mean, std, centers,
                    None if payload is None else payload["state_dict"])


def fit_summary(ctx: RunContext, state: FitState, path: Any, size: int) -> FitSummary:
    """The summary of a ``fit_only`` run."""
    m = state.meta
    return FitSummary(
        path=str(path), images=int(m["images"]),
        skipped=[{"path": s["path"], "error": s["error"]} for s in m["skipped"]],
        classes=len(ctx.source.classes), bits=ctx.opts.bits, channels=state.channels,
        palettes=int(state.palettes.shape[0]), palette_mode=ctx.opts.palette, file_bytes=size,
        raw_pixel_bytes=0, source_bytes=0, ratio_vs_raw=0.0, ratio_vs_source=0.0,
        psnr_mean_db=float("nan"), psnr_min_db=float("nan"), device=str(ctx.device),
        model=dict(m["model"]),
        stage_seconds={s: round(v, 4) for s, v in ctx.timer.seconds.items()},
        source_kind=ctx.source.kind)


def shard_record(ctx: RunContext, share: Share, mode: str, fit: str, stats: WriteStats
                 ) -> dict[str, Any]:
    """The provenance's ``shard`` record that :mod:`dcqformat.format.merge` needs."""
    return {
        "index": share.index, "count": share.count, "block": share.block,
        "rule": "listing position p belongs to shard (p // block) % count",
        "mode": mode, "fit_sha256": fit, "positions": position_runs(stats.written),
        "skipped_positions": sorted(int(p) for p in ctx.skipped), "images": len(stats.written),
        "psnr_sum": float(np.sum(stats.psnrs)), "psnr_min": float(np.min(stats.psnrs)),
        "raw_pixel_bytes": int(stats.raw_bytes), "source_bytes": int(stats.source_bytes),
    }


def provenance_with_shard(ctx: RunContext, rec: RunRecord, share: Share, mode: str, fit: str,
                stats: WriteStats) -> dict[str, Any]:
    """The provenance of a shard: :func:`provenance` plus its ``shard`` record."""
    return {**provenance(ctx, rec, stats), "shard": shard_record(ctx, share, mode, fit, stats)}


def encode_from_state(ctx: RunContext, prep: Prepared, state: FitState, share: Share,
                      dst: Any, mode: str, fit: str | None = None) -> ConvertSummary:
    """Analyse (features only) and write share ``share`` against ``state``."""
    task, _ = model_for(ctx, prep, state.task_model(ctx.opts.model), train=False,
                        features_only=True)
    model_id = identity(ctx, task)
    positions = [p for p in range(len(ctx.source)) if share.owns(p)]
    a = analyse(ctx, positions, task, prep.hooks(), need_features=prep.need_features,
                features_only=True)
    if not a.positions:
        raise empty_share_error(share)
    m = state.meta
    a.degenerate, a.target_rule = int(m["attention_degenerate_maps"]), str(m["gradcam_target"])
    with ctx.timer.stage("cluster"):
        count, groups = state.assign(a.features, len(a), ctx.device)
    table = PaletteTable(state.palettes.copy())
    rec = RunRecord(a, state.channels, count, int(m["reserved_groups"]), model_id,
                    RefineStats.from_sums(m["refinement"]), dict(m["source"]))
    stats = write(ctx, prep.dst if dst is None else dst, a, list(range(len(a))), groups, table,
                  state.channels, task=task, dropper=None, refine_stats=rec.refine, plan=None,
                  provenance=partial(provenance_with_shard, ctx, rec, share, mode,
                                     fit or str(m["fit_sha256"])))
    return summarise(ctx, stats, rec, table)


def _fit(src: Any, prep: Prepared, labels: Any, classes: Sequence[str] | None) -> FitSummary:
    from dcqformat.encode.stages.fit import cluster, palettes, refine
    from dcqformat.encode.stages.provenance import source_record

    with running(src, prep, labels, classes) as ctx:
        task, _ = model_for(ctx, prep, ctx.opts.model)
        model_id = identity(ctx, task)
        a = analyse(ctx, range(len(ctx.source)), task, prep.hooks(),
                    need_features=prep.need_features)
        check_readable(ctx, len(a))
        channels = 1 if a.all_grey else 3
        clusters = cluster(ctx, a, prep.need_features)
        table = palettes(ctx, a, clusters, channels)
        stats = refine(ctx, a, clusters.groups, table, channels)
        state = fit_state(ctx, a, clusters, table, stats, task, model_id, channels,
                          table.reserved_count, source_record(ctx, a))
        state.save(prep.dst, overwrite=ctx.opts.overwrite)
        return fit_summary(ctx, state, prep.dst, prep.dst.stat().st_size)


def run_sharded(src: Any, dst: Any, opts: ConvertOptions, *, shard: Any, state: Any,
                fit_only: bool, labels: Any = None, classes: Sequence[str] | None = None
                ) -> ConvertSummary:
    """``fit_only``: write the fit state to ``dst``; else encode share ``shard`` against
    ``state`` to ``dst``."""
    prep = prepare(src, dst, opts)
    check_scale_out(prep, shard=shard, state=state, fit_only=fit_only, torchrun=False)
    if fit_only:
        return _fit(src, prep, labels, classes)
    if state is None:
        raise InvalidArgumentError("state=... (a FitState) is needed without fit_only")
    share = Share(*parse_shard(shard), opts.batch_size)
    with running(src, prep, labels, classes) as ctx:
        return encode_from_state(ctx, prep, state, share, None, "fit-state")
