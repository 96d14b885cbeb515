"""``torchrun -m dcqformat convert SRC DST ...``: the stages on torch.distributed (issue #8).

Protocol (N ranks, one share each, see :mod:`dcqformat.encode.state` for shares):

``train``    rank 0 loads the seeded proxy sample and trains the proxy; its weights are
             broadcast (the other ranks wait instead of training the same model again)
``analyse``  every rank analyses its share; features, per-image palettes + counts, sizes,
             skipped files are ``all_gather``-ed and merged in listing order, so every rank
             holds exactly the arrays a single-process run holds
``fit``      every rank runs the same k-means / cluster palettes / refinement, then takes rank
             0's result by broadcast (identical on identical hardware; exact even when not)
``write``    rank ``i`` writes its share to ``DST.shard-i-of-N`` (temporary file + rename)
``merge``    after a check that every shard exists, rank 0 merges them into ``DST``
             (:func:`~dcqformat.format.merge.merge_shards`) and deletes them

Failure: every collective is preceded by an all-reduce of one failure flag per rank. A rank
that raises contributes its flag to the next such check, so the others stop there with a
:class:`RankFailedError` naming it; each rank deletes its shard, rank 0 never writes ``DST``
(the merge writes a temporary file and renames it last), and every rank exits non-zero. A rank
that hangs or dies without raising is caught by the process-group timeout (``timeout_s``).

Backend: NCCL when the device is CUDA, gloo otherwise. Bytes passed to collectives are counted
per stage (pickled payload sizes for object collectives, tensor bytes for flags) and recorded in
the merged file's provenance under ``scale_out``.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist

from dcqformat.encode.drivers.common import (
    Prepared,
    check_readable,
    identity,
    model_for,
    prepare,
    running,
    summarise,
)
from dcqformat.encode.drivers.sharded import (
    check_scale_out,
    encode_from_state,
    fit_id,
    fit_state,
    fit_summary,
    provenance_with_shard,
)
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.stages.analyse import Analysis, analyse
from dcqformat.encode.stages.context import RunContext
from dcqformat.encode.stages.fit import RefineStats, cluster, palettes, refine
from dcqformat.encode.stages.provenance import RunRecord, source_record
from dcqformat.encode.stages.write import write
from dcqformat.encode.state import (
    FitState,
    Share,
    empty_share_error,
    proxy_payload,
    shard_path,
    task_from_payload,
)
from dcqformat.encode.summary import ConvertSummary
from dcqformat.errors import InvalidArgumentError, RankFailedError

__all__ = ["DistContext", "convert_distributed", "world_size_from_env"]



def _wait_released(t: torch.Tensor, limit_s: float = 2.0) -> None:
    """Wait (at most ``limit_s``) until the process group's own thread has let go of the
    finished collective's tensor ``t``.

    A gloo collective's work is released by that thread a moment after ``all_reduce`` returns,
    and the release drops a reference to the Python tensor, which needs the GIL. When the
    collective is the job's last (the final health check) and the rank's interpreter is already
    finalising by then, taking the GIL ends the thread inside a C++ destructor:
    ``std::terminate``, and the rank dies by SIGABRT after its work is done (1 in ~10 runs of
    the 2-rank test; under gdb: ``ProcessGroupGloo::runLoop`` -> ``~AsyncAllreduceWork`` ->
    ``decref_pyobject`` -> ``take_gil`` -> ``pthread_exit``). ``Tensor._use_count`` counts the
    C++ references; where a torch lacks it, nothing is waited for."""
    use_count = getattr(t, "_use_count", None)
    deadline = time.monotonic() + limit_s
    while use_count is not None and use_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.0002)


def world_size_from_env() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InvalidArgumentError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


class DistContext:
    """One rank's view of the job: rank, world size, byte counters and the failure protocol."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank, self.world_size, self.device = rank, world_size, device
        self.sent: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self._failure_exchanged = False

    @classmethod
    def from_env(cls, device: str = "auto", timeout_s: float = 1800.0) -> DistContext:
        """Join the job torchrun described in the environment (gloo on CPU, NCCL on CUDA)."""
        from dcqformat.device import resolve_device

        dev = resolve_device(device)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        if not tdist.is_initialized():
            tdist.init_process_group(backend, timeout=timedelta(seconds=float(timeout_s)))
        return cls(tdist.get_rank(), tdist.get_world_size(), dev)

    @property
    def is_root(self) -> bool:
        """Rank 0."""
        return self.rank == 0

    def _count(self, table: dict[str, int], stage: str, nbytes: int) -> None:
        table[stage] = table.get(stage, 0) + int(nbytes)

    def _flags(self, failed: bool) -> list[int]:
        t = torch.zeros(self.world_size, dtype=torch.int32, device=self.device)
        t[self.rank] = int(failed)
        tdist.all_reduce(t)
        _wait_released(t)
        self._count(self.sent, "flags", t.numel() * 4)
        self._count(self.received, "flags", t.numel() * 4 * (self.world_size - 1))
        return [r for r, f in enumerate(t.tolist()) if f]

    def check(self) -> None:
        """Agree that every rank is still healthy; RankFailedError if one is not."""
        bad = self._flags(False)
        if bad:
            self._failure_exchanged = True
            raise RankFailedError(f"rank(s) {bad} of {self.world_size} failed (see their error "
                                  f"messages); rank {self.rank} stopped, no output was written")

    def fail(self) -> None:
        """Tell the other ranks this one failed (once; meets their next :meth:`check`)."""
        if not self._failure_exchanged and tdist.is_initialized():
            self._failure_exchanged = True
            self._flags(True)

    def broadcast(self, obj: Any, stage: str) -> Any:
        """``obj`` of rank 0 on every rank (after a health check)."""
        self.check()
        box = [obj]
        tdist.broadcast_object_list(box, src=0, device=self.device)
        size = len(pickle.dumps(box[0], protocol=pickle.HIGHEST_PROTOCOL))
        self._count(self.sent if self.is_root else self.received, stage, size)
        return box[0]

    def all_gather(self, obj: Any, stage: str) -> list[Any]:
        """Every rank's ``obj``, in rank order (after a health check)."""
        self.check()
        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        sizes = [len(pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL)) for o in out]
        self._count(self.sent, stage, sizes[self.rank])
        self._count(self.received, stage, sum(sizes) - sizes[self.rank])
        return out

    def close(self) -> None:
        """Leave the process group."""
        if tdist.is_initialized():
            tdist.destroy_process_group()


def _model(ctx: RunContext, prep: Prepared, dist: DistContext) -> Any:
    """Rank 0 trains the proxy (when one is needed) and broadcasts it; the others wait."""
    task, proxy = model_for(ctx, prep, ctx.opts.model, train=dist.is_root)
    if proxy:
        with ctx.timer.stage("train"):
            got = dist.broadcast(proxy_payload(task) if dist.is_root and task is not None
                                 else None, "train")
        task = task if dist.is_root and task is not None else task_from_payload(got)
    return task


def _analyse_all(ctx: RunContext, prep: Prepared, dist: DistContext, share: Share,
                 task: Any) -> Analysis:
    """Each rank analyses its share; the analyses are gathered and joined in listing order."""
    mine = analyse(ctx, [p for p in range(len(ctx.source)) if share.owns(p)], task,
                   prep.hooks(), need_features=prep.need_features)
    parts = dist.all_gather({"analysis": mine.to_wire(), "skipped": dict(ctx.skipped)},
                            "analyse")
    for p in parts:
        ctx.skipped.update(p["skipped"])
    return Analysis.merge([Analysis.from_wire(p["analysis"]) for p in parts])


def _fit_and_write(ctx: RunContext, prep: Prepared, dist: DistContext, share: Share,
                   out: Path, fit_only: bool) -> ConvertSummary:
    task = _model(ctx, prep, dist)
    model_id = identity(ctx, task)
    a = _analyse_all(ctx, prep, dist, share, task)
    check_readable(ctx, len(a))
    channels = 1 if a.all_grey else 3
    clusters = cluster(ctx, a, prep.need_features)
    table = palettes(ctx, a, clusters, channels)
    reserved = table.reserved_count
    stats = refine(ctx, a, clusters.groups, table, channels)
    # every rank computed the same; rank 0's result makes it exact even on mixed hardware
    got = dist.broadcast((clusters.groups.numpy().astype(np.int32), table.palettes,
                          stats.sums()) if dist.is_root else None, "fit")
    groups, table.palettes = torch.from_numpy(got[0].astype(np.int64)), got[1].copy()
    stats = RefineStats.from_sums(got[2])
    source = source_record(ctx, a)
    if fit_only:
        state = fit_state(ctx, a, clusters, table, stats, task, model_id, channels, reserved,
                          source)
        if dist.is_root:
            state.save(prep.dst, overwrite=ctx.opts.overwrite)
        return fit_summary(ctx, state, prep.dst,
                           prep.dst.stat().st_size if prep.dst.exists() else 0)
    rec = RunRecord(a, channels, int(table.palettes.shape[0]), reserved, model_id, stats, source)
    write_at = [i for i, p in enumerate(a.positions) if share.owns(p)]
    if not write_at:
        raise empty_share_error(share)
    ws = write(ctx, out, a, write_at, groups, table, channels, task=task, dropper=None,
               refine_stats=stats, plan=None,
               provenance=partial(provenance_with_shard, ctx, rec, share, "torchrun",
                                  fit_id(table.palettes, ctx.opts)))
    return summarise(ctx, ws, rec, table)


def _merge(dist: DistContext, dst: Path, summary: ConvertSummary, overwrite: bool
           ) -> ConvertSummary:
    """Rank 0: join every rank's shard into ``dst`` and delete the shards."""
    import dataclasses

    from dcqformat.format.merge import merge_shards

    traffic = dist.all_gather({"sent": dist.sent, "received": dist.received}, "stats")
    if not dist.is_root:
        return summary
    shards = [shard_path(dst, r, dist.world_size) for r in range(dist.world_size)]
    scale = {"mode": "torchrun", "world_size": dist.world_size, "backend": tdist.get_backend(),
             "collective_bytes_sent": [t["sent"] for t in traffic],
             "collective_bytes_received": [t["received"] for t in traffic]}
    t0 = time.perf_counter()
    merged = merge_shards(shards, dst, overwrite=overwrite, scale_out=scale)
    for s in shards:
        s.unlink(missing_ok=True)
    return dataclasses.replace(
        summary, path=str(dst), images=merged.images, file_bytes=merged.file_bytes,
        raw_pixel_bytes=merged.raw_pixel_bytes, source_bytes=merged.source_bytes,
        ratio_vs_raw=merged.raw_pixel_bytes / merged.file_bytes,
        ratio_vs_source=merged.source_bytes / merged.file_bytes,
        psnr_mean_db=merged.psnr_mean_db, psnr_min_db=merged.psnr_min_db, skipped=merged.skipped,
        stage_seconds={**summary.stage_seconds, "merge": round(time.perf_counter() - t0, 4)})


def convert_distributed(src: Any, dst: str | os.PathLike[str], *, timeout_s: float = 1800.0,
                        state: FitState | None = None, fit_only: bool = False,
                        labels: Any = None, classes: Sequence[str] | None = None,
                        **kwargs: Any) -> ConvertSummary | None:
    """Run the conversion as one rank of a torchrun job (see the module docstring).

    Rank 0 returns the summary of the merged ``dst`` (with ``fit_only``: of the fit state), the
    other ranks None. ``kwargs`` are :class:`ConvertOptions` fields.
    """
    opts = ConvertOptions.from_kwargs(kwargs)
    dist = DistContext.from_env(opts.device, timeout_s)
    dst_path = Path(dst)
    mine = shard_path(dst_path, dist.rank, dist.world_size)
    try:
        prep = prepare(src, dst_path, opts)
        check_scale_out(prep, shard=None, state=state, fit_only=fit_only, torchrun=True)
        share = Share(dist.rank, dist.world_size, opts.batch_size)
        with running(src, prep, labels, classes) as ctx:
            if state is not None:
                summary = encode_from_state(ctx, prep, state, share, mine, "torchrun",
                                            fit_id(state.palettes, opts))
            else:
                summary = _fit_and_write(ctx, prep, dist, share, mine, fit_only)
        if fit_only:
            dist.check()
            return summary if dist.is_root else None
        result = _merge(dist, dst_path, summary, opts.overwrite)
        dist.check()  # rank 0's merge succeeded
        return result if dist.is_root else None
    except BaseException:
        dist.fail()
        mine.unlink(missing_ok=True)
        raise
    finally:
        dist.close()
