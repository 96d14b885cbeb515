"""The single-process driver: every stage in one process, in order."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from dcqformat.encode.drivers.common import (
    Prepared,
    check_readable,
    identity,
    model_for,
    running,
    summarise,
)
from dcqformat.encode.stages.analyse import analyse
from dcqformat.encode.stages.fit import cluster, palettes, refine
from dcqformat.encode.stages.provenance import RunRecord, provenance, source_record
from dcqformat.encode.stages.select import select
from dcqformat.encode.stages.write import write
from dcqformat.encode.summary import ConvertSummary

__all__ = ["run_single"]


def run_single(src: Any, prep: Prepared, labels: Any = None,
               classes: Sequence[str] | None = None) -> ConvertSummary:
    """Convert ``src`` to ``prep.dst`` in this process."""
    with running(src, prep, labels, classes) as ctx:
        task, _ = model_for(ctx, prep, ctx.opts.model)
        model_id = identity(ctx, task)
        a = analyse(ctx, range(len(ctx.source)), task, prep.hooks(),
                    need_features=prep.need_features)
        check_readable(ctx, len(a))
        channels = 1 if a.all_grey else 3
        ctx.say(f"analysed {len(a)} images ({len(ctx.skipped)} skipped); {channels} channel(s)")
        if prep.dropper is not None:
            prep.dropper.finish(a.heights, a.widths,
                                [int(ctx.source.labels[p]) for p in a.positions],
                                len(ctx.source.classes))
        clusters = cluster(ctx, a, prep.need_features)
        table = palettes(ctx, a, clusters, channels)
        reserved = table.reserved_count
        plan, groups, table = select(ctx, prep.selection, a, clusters.groups, table, model_id)
        write_at = plan.stored.tolist() if plan is not None else list(range(len(a)))
        rec = RunRecord(a, channels, int(table.palettes.shape[0]), reserved, model_id,
                        refine(ctx, a, groups, table, channels), source_record(ctx, a),
                        prep.dropper, plan)
        stats = write(ctx, prep.dst, a, write_at, groups, table, channels, task=task,
                      dropper=prep.dropper, refine_stats=rec.refine, plan=plan,
                      provenance=partial(provenance, ctx, rec))
        return summarise(ctx, stats, rec, table)
