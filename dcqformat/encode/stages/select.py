"""Stage ``select``: de-duplication, then a coreset, over the analysed images (see
:mod:`dcqformat.encode.selection_stage` for the methods and what is stored)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcqformat.encode.selection_stage import SelectionPlan, SelectionStage
from dcqformat.encode.stages.analyse import Analysis
from dcqformat.encode.stages.context import RunContext
from dcqformat.encode.stages.fit import PaletteTable

__all__ = ["select"]


def select(ctx: RunContext, sel: SelectionStage, analysis: Analysis, groups: torch.Tensor,
           table: PaletteTable, model_identity: dict[str, Any]
           ) -> tuple[SelectionPlan | None, torch.Tensor, PaletteTable]:
    """The selection plan (None when no selection was asked for) and the groups and palettes
    compacted to the palettes the stored images use."""
    with ctx.timer.stage("select"):
        if not sel.active:
            return None, groups, table
        src = ctx.source
        pos = analysis.positions
        plan = sel.select(src.labels[np.asarray(pos, np.int64)], [src.relpath(p) for p in pos],
                          model_identity, ctx.device)
        used = sorted(set(groups[torch.from_numpy(plan.stored)].tolist()))
        new_groups, pal = plan.compact(groups, table.palettes)
        renumber = {old: new for new, old in enumerate(used)}
        reserved = {renumber[g] for g in table.reserved if g in renumber}
        ctx.say(f"selection: {len(analysis)} readable -> {len(plan.stored)} stored")
        return plan, new_groups, PaletteTable(pal, reserved)
