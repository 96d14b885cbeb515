"""``torchrun -m dcqformat convert SRC DST ...``: :func:`convert` on torch.distributed (issue #8).

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

import dataclasses
import os
import pickle
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from dcqformat.encode.pipeline import ConvertSummary, convert
from dcqformat.encode.state import shard_path
from dcqformat.errors import DcqError, InvalidArgumentError

__all__ = ["DistContext", "RankFailedError", "convert_distributed", "world_size_from_env"]


class RankFailedError(DcqError):
    """Another rank of a torch.distributed job failed; this rank stopped at the next check."""


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


def convert_distributed(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                        timeout_s: float = 1800.0, **kwargs: Any) -> ConvertSummary | None:
    """Run :func:`convert` as one rank of a torchrun job (see the module docstring).

    Rank 0 returns the summary of the merged ``dst`` (with ``fit_only``: of the fit state), the
    other ranks None. ``kwargs`` go to :func:`convert`.
    """
    ctx = DistContext.from_env(kwargs.get("device", "auto"), timeout_s)
    dst_path = Path(dst)
    mine = shard_path(dst_path, ctx.rank, ctx.world_size)
    try:
        summary = convert(src, dst_path, dist=ctx, **kwargs)
        if kwargs.get("fit_only"):
            ctx.check()
            return summary if ctx.is_root else None
        traffic = ctx.all_gather({"sent": ctx.sent, "received": ctx.received}, "stats")
        result: ConvertSummary | None = None
        if ctx.is_root:
            from dcqformat.format.merge import merge_shards

            shards = [shard_path(dst_path, r, ctx.world_size) for r in range(ctx.world_size)]
            scale = {"mode": "torchrun", "world_size": ctx.world_size,
                     "backend": tdist.get_backend(),
                     "collective_bytes_sent": [t["sent"] for t in traffic],
                     "collective_bytes_received": [t["received"] for t in traffic]}
            t0 = time.perf_counter()
            merged = merge_shards(shards, dst_path, overwrite=bool(kwargs.get("overwrite")),
                                  scale_out=scale)
            for s in shards:
                s.unlink(missing_ok=True)
            result = dataclasses.replace(
                summary, path=str(dst_path), images=merged.images, file_bytes=merged.file_bytes,
                raw_pixel_bytes=merged.raw_pixel_bytes, source_bytes=merged.source_bytes,
                ratio_vs_raw=merged.raw_pixel_bytes / merged.file_bytes,
                ratio_vs_source=merged.source_bytes / merged.file_bytes,
                psnr_mean_db=merged.psnr_mean_db, psnr_min_db=merged.psnr_min_db,
                skipped=merged.skipped,
                stage_seconds={**summary.stage_seconds, "merge": round(time.perf_counter() - t0, 4)})
        ctx.check()  # rank 0's merge succeeded
        return result
    except BaseException:
        ctx.fail()
        mine.unlink(missing_ok=True)
        raise
    finally:
        ctx.close()


def scale_out_runner(args: Any) -> Any:
    """The function ``dcqformat convert`` calls for its parsed ``args``: :func:`convert`, or
    the same with ``--fit-only`` / ``--state`` + ``--shard``, or :func:`convert_distributed`
    when torchrun set ``WORLD_SIZE`` > 1. A fit state fixes every encoding parameter: its
    values replace the corresponding flags."""
    from dcqformat.encode.state import FitState

    fit_only = bool(getattr(args, "fit_only", False))
    state_path, shard = getattr(args, "state", None), getattr(args, "shard", None)
    world = world_size_from_env()
    if not (fit_only or state_path or shard or world > 1):
        return convert
    if shard is not None and world > 1:
        raise InvalidArgumentError("--shard is for schedulers other than torchrun; under torchrun "
                                   "each rank takes share RANK of WORLD_SIZE by itself")
    state = FitState.load(state_path) if state_path else None

    def run(src: Any, dst: Any, **kwargs: Any) -> ConvertSummary | None:
        if state is not None:
            kwargs.update(state.convert_kwargs())
        if world > 1:
            return convert_distributed(src, dst, timeout_s=getattr(args, "dist_timeout", 1800.0),
                                       state=state, fit_only=fit_only, **kwargs)
        return convert(src, dst, shard=shard, state=state, fit_only=fit_only, **kwargs)

    return run
