"""Convert within a budget: plan, convert the chosen plan to a temporary file, check its size,
fall back to the next finalist if the extrapolation was off, publish (see :mod:`.choose`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dcqformat.encode.planner.budget import format_bytes
from dcqformat.encode.planner.choose import (
    MIN_SHARE,
    Candidate,
    PlanReport,
    PlanSettings,
    make_plan,
)
from dcqformat.encode.planner.plans import Plan
from dcqformat.encode.summary import ConvertSummary
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.publish import move_into_place, temp_name

__all__ = ["BudgetResult", "convert_within_budget"]


@dataclass
class BudgetResult:
    """The plan report, and the summary of the written file (None for ``plan_only``)."""

    report: PlanReport
    summary: ConvertSummary | None = None
    tried: list[dict[str, Any]] | None = None


def convert_within_budget(src: Any, dst: str | os.PathLike[str], budget: Any, *,
                          plan_only: bool = False, settings: PlanSettings | None = None,
                          grid: Sequence[Plan] | None = None,
                          tries: int = 4, labels: Any = None, classes: Sequence[str] | None = None,
                          log: Callable[[str], None] | None = None, **options: Any
                          ) -> BudgetResult:
    """Plan (:func:`~.choose.make_plan`) and, unless ``plan_only``, convert ``src`` to ``dst``
    with the best plan whose file is within ``budget``. The file is never published over
    the budget: InvalidArgumentError when no finalist fits after ``tries`` conversions."""
    from dcqformat.encode.pipeline import convert

    say = log or (lambda _m: None)
    target = Path(dst)
    overwrite = bool(options.get("overwrite", False))
    if target.exists() and not overwrite and not plan_only:
        raise InvalidArgumentError(f"output {str(target)!r} exists (pass overwrite=True / --force)")
    report = make_plan(src, budget, settings=settings, labels=labels, classes=classes, log=say,
                       grid=grid,
                       **{k: v for k, v in options.items() if k != "log"})
    if plan_only:
        return BudgetResult(report)
    queue = report.finalists()
    tried: list[dict[str, Any]] = []
    correction: dict[Any, float] = {}  # measured/predicted bytes per lever family
    while queue and len(tried) < tries:
        cand = queue.pop(0)
        if cand.bytes * correction.get(_family(cand.plan), 1.0) + cand.error > report.budget:
            continue
        tmp = target.with_name(temp_name(target))
        say(f"converting with {cand.plan.name()} (predicted {format_bytes(cand.bytes)})")
        try:
            summary = convert(src, tmp, labels=labels, classes=classes, **{
                **options, **cand.plan.convert_kwargs(), "overwrite": True,
                "budget_plan": report.record(cand)})
            size = tmp.stat().st_size
            tried.append({"plan": cand.plan.name(), "predicted": round(cand.bytes),
                          "bytes": size, "fits": size <= report.budget})
            if size <= report.budget:
                move_into_place(tmp, target, overwrite)
                return BudgetResult(report, replace(summary, path=str(target)), tried)
            fam = _family(cand.plan)
            correction[fam] = max(correction.get(fam, 1.0), size / cand.bytes)
            say(f"  {size:,} B is over the budget: the prediction was {cand.bytes:,.0f} B; "
                f"re-planning with bytes x {correction[fam]:.3f} for plans like it")
            smaller = _cut_share(cand, size, report.budget)
            if smaller is not None:
                queue.insert(0, smaller)
        finally:
            tmp.unlink(missing_ok=True)
    raise InvalidArgumentError(
        f"no plan fits {format_bytes(report.budget)} for {report.images} images (tried "
        f"{tried or 'none: every finalist predicted over the budget'}); raise the budget")


def _cut_share(cand: Candidate, size: int, budget: int) -> Candidate | None:
    """``cand`` at the image share that the written ``size`` says fits (bytes taken as
    proportional to the share, which overestimates: the fixed bytes do not shrink); None below
    :data:`~.choose.MIN_SHARE`."""
    share = math.floor(100 * cand.plan.fraction * (budget - cand.error) / size) / 100
    if share < MIN_SHARE or share >= cand.plan.fraction:
        return None
    ratio = share / cand.plan.fraction
    return replace(cand, plan=replace(cand.plan, fraction=share), bytes=cand.bytes * ratio,
                   error=cand.error * ratio)


def _family(plan: Plan) -> tuple[Any, ...]:
    """Plans whose byte predictions err alike: the same palettes and patch dropping (a sample
    drops more patches than the whole set, since SPD's class thresholds grow on fewer images)."""
    return (plan.palette, plan.patch_drop)
