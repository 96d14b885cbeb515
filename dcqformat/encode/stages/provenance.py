"""The provenance record ``convert()`` stores in every file: the tool, every parameter (from
:meth:`~dcqformat.encode.options.ConvertOptions.recorded` plus what the run derived), the
source (kind, length, content digest, listing), the model, what was skipped and the quality."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dcqformat._version import __version__
from dcqformat.encode.palettes import RESERVE_RADIUS
from dcqformat.encode.patchdrop import PatchDropper
from dcqformat.encode.selection_stage import SelectionPlan
from dcqformat.encode.sources import content_digest
from dcqformat.encode.stages.analyse import Analysis
from dcqformat.encode.stages.context import RunContext
from dcqformat.encode.stages.fit import REFINE_RULE, RefineStats
from dcqformat.encode.stages.write import WriteStats

__all__ = ["RunRecord", "provenance", "source_record", "skipped_list"]

METHOD = "DCQ (Dataset Color Quantization, ICLR 2026) as implemented, see docs/method.md"


@dataclass
class RunRecord:
    """What a run determined besides the options (the provenance's inputs)."""

    analysis: Analysis
    channels: int
    clusters_used: int
    reserved_palettes: int
    model_identity: dict[str, Any]
    refine: RefineStats
    source: dict[str, Any]
    dropper: PatchDropper | None = None
    plan: SelectionPlan | None = None


def source_record(ctx: RunContext, analysis: Analysis) -> dict[str, Any]:
    """The source's provenance with the content digest of the analysed images."""
    return {**ctx.source.provenance(), "content_sha256": content_digest(analysis.digests),
            "content_rule": "SHA-256 over per-image SHA-256 of (shape, label, loaded uint8 "
                            "pixels) of the readable images, in listing order"}


def skipped_list(ctx: RunContext) -> list[dict[str, str]]:
    """The skipped images as ``{"path", "error"}`` records, in listing order."""
    return [{"path": ctx.source.relpath(p) or str(p), "error": ctx.skipped[p]}
            for p in sorted(ctx.skipped)] + list(ctx.source.rejected)


def provenance(ctx: RunContext, rec: RunRecord, stats: WriteStats) -> dict[str, Any]:
    """The provenance dictionary of a file written by ``convert()``."""
    o, a = ctx.opts, rec.analysis
    params = {**o.recorded(), "palette_size": o.palette_size, "clusters_used": rec.clusters_used,
              "context_weight": o.context_weight if o.attention else None,
              "reserve_radius": RESERVE_RADIUS,
              "palettes_with_reserved_colour": rec.reserved_palettes,
              "refine_rule": REFINE_RULE, "device_type": ctx.device.type, "threads": ctx.threads,
              "colour_space": "CIE LAB D65 (L* for grey)"}
    prov: dict[str, Any] = {
        "tool": "dcqformat convert",
        "tool_version": __version__,
        "torch_version": torch.__version__,
        # the encoder's floats depend on the CPU's vector width (docs/method.md §5)
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "method": METHOD,
        "parameters": params,
        "source": rec.source,
        "model": {**rec.model_identity, "gradcam_target": a.target_rule if o.attention else None},
        "channels_rule": "1 when every image is grey (one channel or R=G=B), else 3",
        "alpha": f"composited over background {list(o.background)}",
        "skipped": skipped_list(ctx),
        "attention_degenerate_maps": a.degenerate,
        "refinement": rec.refine.as_record(),
        "patch_drop": None if rec.dropper is None else rec.dropper.provenance(),
        "quality": {"psnr_mean_db": float(np.mean(stats.psnrs)),
                    "psnr_min_db": float(np.min(stats.psnrs))},
    }
    if rec.plan is not None:
        prov["selection"] = rec.plan.summary
    if o.budget_plan is not None:
        prov["budget_plan"] = o.budget_plan
    return prov
