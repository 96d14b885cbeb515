"""``--budget``: choose the plan that trains best within a byte budget, then convert with it.

1. A class-stratified *train sample* (``sample`` images) and a disjoint *test sample*
   (``test`` images, kept as originals) are drawn from the source (seeded).
2. The sample is converted once per encoding of the grid (:func:`~.plans.candidate_grid`),
   with one proxy model trained on it, and each file's exact bytes give the plan's bytes for
   the whole source, with a 95 % error (:mod:`.measure`). A plan *fits* when bytes + error are
   within the budget.
3. For each encoding the largest image share that fits is a finalist: the budget, not the
   grid, sets it (:func:`largest_share`: the largest share in steps of 1/100, at least 1/4,
   whose bytes + error are within the budget; the grid's shares are shown beside it). The
   ``evaluate`` finalists with the most bytes get the training-value estimate
   (:mod:`.estimate`).
4. The best estimate wins (ties: fewer bytes). The conversion writes a temporary file; if it
   is over the budget after all, the same plan with its share cut by the measured excess is
   tried next (a coreset keeps the images that differ most, which cost more than the mean), then
   the next finalist whose bytes, corrected by the measured error, fit (at most ``tries``
   conversions), so the published file never exceeds the budget. The plan, its estimate and
   the alternatives are stored in the file's provenance (``budget_plan``), which
   ``dcqformat info`` shows.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcqformat.checks import check_int
from dcqformat.encode.images import LoadOptions, is_grey, to_channels
from dcqformat.encode.model import TaskModel, train_proxy
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.planner.budget import format_bytes, parse_budget
from dcqformat.encode.planner.estimate import (
    decoded_thumbnails,
    estimate_accuracy,
    original_thumbnails,
)
from dcqformat.encode.planner.measure import Measured, measure_file, stratified_split, timed
from dcqformat.encode.planner.plans import Plan, candidate_grid
from dcqformat.encode.sources import ImageSource, SubsetSource, open_source
from dcqformat.encode.stages.proxy import thumbnail
from dcqformat.errors import InvalidArgumentError

__all__ = ["Candidate", "PlanReport", "make_plan", "PlanSettings", "largest_share",
           "MIN_SHARE"]

#: The smallest image share the planner fills a budget with.
MIN_SHARE = 0.25


@dataclass
class Candidate:
    """A plan with its predicted bytes for the whole source and, if evaluated, its estimate."""

    plan: Plan
    bytes: float
    error: float
    fits: bool
    estimate: float | None = None

    def record(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**self.plan.record(), "bytes": round(self.bytes), "error_95": round(self.error),
                "fits": self.fits, "estimate": self.estimate}


@dataclass(frozen=True)
class PlanSettings:
    """How the planner samples and estimates (see the module docstring)."""

    sample: int = 400
    test: int = 300
    evaluate: int = 12
    resolution: int | None = None  # None: min(32, the sample's median shorter side)
    epochs: int = 12
    seeds: tuple[int, ...] = (0, 1)
    large_clusters: int = 64
    evaluate_all: bool = False  # score every plan of the grid (to validate the estimate)

    def __post_init__(self) -> None:
        # --plan-sample -1 ran on one image per class and --plan-evaluate 0 estimated no plan
        for name in ("sample", "test", "evaluate", "epochs", "large_clusters"):
            check_int(getattr(self, name), f"plan {name}", minimum=1)
        if self.resolution is not None:
            check_int(self.resolution, "plan resolution", minimum=1)


@dataclass
class PlanReport:
    """Everything the planner measured and decided."""

    budget: int
    images: int
    settings: PlanSettings
    candidates: list[Candidate]
    measured: list[Measured]
    chosen: Candidate | None
    seconds: dict[str, float] = field(default_factory=dict)

    def finalists(self) -> list[Candidate]:
        """The evaluated candidates, best estimate first."""
        ev = [c for c in self.candidates if c.estimate is not None]
        return sorted(ev, key=lambda c: (-(c.estimate or 0.0), c.bytes))

    def table(self) -> str:
        """The markdown table ``--plan-only`` prints."""
        lines = [f"budget {format_bytes(self.budget)} ({self.budget:,} B) for {self.images:,} "
                 f"images: {sum(c.fits for c in self.candidates)} of {len(self.candidates)} "
                 f"plans fit; estimate = accuracy on {self.settings.test} held-out originals "
                 f"of a CNN trained on the plan's decoded sample ({self.settings.sample} images, "
                 f"{self.settings.resolution} px)",
                 "", "| plan | bytes (predicted) | ± 95 % | B/image | fits | estimate |",
                 "|---|---:|---:|---:|:---:|---:|"]
        shown = self.finalists() + sorted((c for c in self.candidates if c.estimate is None
                                           and c.fits), key=lambda c: -c.bytes)[:8]
        for c in shown:
            mark = " **chosen**" if c is self.chosen else ""
            est = "" if c.estimate is None else f"{100 * c.estimate:.1f} %"
            kept = max(1, round(c.plan.fraction * self.images))
            lines.append(f"| {c.plan.name()}{mark} | {c.bytes:,.0f} | {c.error:,.0f} | "
                         f"{c.bytes / kept:.1f} | {'yes' if c.fits else 'no'} | {est} |")
        secs = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        lines += ["", f"cost: {secs}"]
        return "\n".join(lines)

    def record(self, chosen: Candidate | None = None) -> dict[str, Any]:
        """The provenance's ``budget_plan`` record."""
        c = chosen or self.chosen
        return {"budget": self.budget, "images": self.images, "chosen": None if c is None
                else c.record(), "finalists": [f.record() for f in self.finalists()],
                "settings": {**self.settings.__dict__, "seeds": list(self.settings.seeds)},
                "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
                "rule": "estimate = held-out accuracy of a CNN trained on the plan's decoded "
                        "sample; bytes = measured on the sample, extrapolated (95 % error)"}


def _sample_proxy(source: ImageSource, positions: np.ndarray, opts: ConvertOptions
                  ) -> tuple[TaskModel, int, int]:
    """One proxy for every sample conversion, the channel count of the data and the sample's
    median shorter side."""
    lo = _load_options(opts)
    arrays = [source.load(int(p), lo) for p in positions]
    channels = 1 if all(is_grey(a) for a in arrays) else 3
    side = int(np.median([min(a.shape[:2]) for a in arrays]))
    thumbs = torch.stack([thumbnail(to_channels(a, channels), opts.proxy_resolution)
                          for a in arrays])
    labels = torch.from_numpy(source.labels[positions])
    task = train_proxy(thumbs, labels, len(source.classes), epochs=max(1, opts.epochs),
                       seed=opts.seed)
    return task, channels, side


def _measure_all(sub: SubsetSource, grid: Sequence[Plan], opts: ConvertOptions,
                 task: TaskModel, work: Path, log: Callable[[str], None]
                 ) -> dict[tuple[Any, ...], Measured]:
    from dcqformat.encode.pipeline import convert

    out: dict[tuple[Any, ...], Measured] = {}
    for plan in grid:
        key = plan.encoding_key
        if key in out:
            continue
        kw = {**opts.as_kwargs(), **plan.convert_kwargs(), "coreset": None, "model": task,
              "progress": False, "log": None, "overwrite": True}
        path = work / f"enc{len(out)}.dcq"
        _, secs = timed(convert, sub, path, **kw)
        out[key] = measure_file(path, plan, secs)
        log(f"  measured {plan.name().split(' f')[0]}: {out[key].payload_mean:.1f} B/img payload")
    return out


def make_plan(src: Any, budget: Any, *, settings: PlanSettings | None = None,
              labels: Any = None, classes: Sequence[str] | None = None,
              grid: Sequence[Plan] | None = None, workdir: Path | None = None,
              log: Callable[[str], None] | None = None, **options: Any) -> PlanReport:
    """Measure and rank the plans for ``src`` within ``budget`` (see the module docstring);
    ``options`` are the user's other ``convert()`` options, kept in every plan."""
    st = settings or PlanSettings()
    say = log or (lambda _m: None)
    total = parse_budget(budget)
    opts = ConvertOptions.from_kwargs({**options, "progress": False, "log": None})
    source = open_source(src, labels=labels, classes=classes)
    t0 = time.perf_counter()
    train_pos, test_pos = stratified_split(source.labels, st.sample, st.test, opts.seed)
    if len(test_pos) == 0:
        raise InvalidArgumentError(f"{len(source)} images are too few to plan with (a sample "
                                   "for encoding and a held-out sample for the estimate)")
    task, channels, side = _sample_proxy(source, train_pos, opts)
    res = min(32, side) if st.resolution is None else st.resolution
    st = replace(st, resolution=res)  # the estimate trains at the data's own size, <= 32 px
    plans = list(grid or candidate_grid(st.large_clusters))
    with tempfile.TemporaryDirectory(prefix="dcq-plan-", dir=workdir) as tmp:
        measured = _measure_all(SubsetSource(source, train_pos), plans, opts, task, Path(tmp),
                                say)
        t1 = time.perf_counter()
        cands = []
        for p in plans:
            b, e = _predict(p, measured, len(source))
            cands.append(Candidate(p, b, e, b + e <= total))
        cands += _filled(plans, measured, len(source), total)
        finalists = cands if st.evaluate_all else _finalists(cands, st.evaluate)
        test = original_thumbnails(source, test_pos, res, channels,
                                   _load_options(opts))
        for c in finalists:
            c.estimate = _estimate(c, measured, test, len(source.classes), st)
            say(f"  estimate {c.plan.name()}: {100 * c.estimate:.1f} %")
        for m in measured.values():
            m.path = None
    best = min(finalists, key=lambda c: (-(c.estimate or 0.0), c.bytes)) if finalists else None
    secs = {"measure": t1 - t0, "estimate": time.perf_counter() - t1}
    return PlanReport(total, len(source), st, cands, list(measured.values()), best, secs)


def _estimate(c: Candidate, measured: dict[tuple[Any, ...], Measured],
              test: tuple[torch.Tensor, torch.Tensor], n_classes: int, st: PlanSettings
              ) -> float:
    path = measured[c.plan.encoding_key].path
    assert path is not None
    train = decoded_thumbnails(path, st.resolution or 32)
    return estimate_accuracy(train, test, n_classes, fraction=c.plan.fraction,
                             epochs=st.epochs, seeds=st.seeds)


def _predict(plan: Plan, measured: dict[tuple[Any, ...], Measured], n: int
             ) -> tuple[float, float]:
    """A plan's bytes for ``n`` images and the 95 % error. Patch dropping is never assumed to
    save bytes: SPD's class thresholds grow on a small sample, so a sample drops more patches
    than the whole set will; such a plan is predicted at least at its plan without dropping."""
    b, e = measured[plan.encoding_key].predict(n, plan.fraction)
    if plan.patch_drop is not None:
        plain = (plan.palette, plan.clusters, plan.bits, plan.scale, None)
        if plain in measured:
            b2, e2 = measured[plain].predict(n, plan.fraction)
            b, e = max(b, b2), max(e, e2)
    return b, e


def largest_share(plan: Plan, measured: dict[tuple[Any, ...], Measured], n: int, budget: int
                  ) -> float | None:
    """The largest image share of ``plan``'s encoding (1, or in steps of 1/100 down to
    :data:`MIN_SHARE`) whose predicted bytes + error are within ``budget``; None if none is."""
    for share in [1.0] + [k / 100 for k in range(99, round(100 * MIN_SHARE) - 1, -1)]:
        b, e = _predict(replace(plan, fraction=share), measured, n)
        if b + e <= budget:
            return share
    return None


def _filled(plans: Sequence[Plan], measured: dict[tuple[Any, ...], Measured], n: int,
            budget: int) -> list[Candidate]:
    """Per encoding, the plan at its largest fitting share when the grid does not hold it."""
    out: list[Candidate] = []
    seen: set[tuple[Any, ...]] = set()
    grid = {(p.encoding_key, p.fraction) for p in plans}
    for p in plans:
        if p.encoding_key in seen:
            continue
        seen.add(p.encoding_key)
        share = largest_share(p, measured, n, budget)
        if share is not None and (p.encoding_key, share) not in grid:
            filled = replace(p, fraction=share)
            b, e = _predict(filled, measured, n)
            out.append(Candidate(filled, b, e, True))
    return out


def _finalists(cands: list[Candidate], k: int) -> list[Candidate]:
    """Per encoding the fitting candidate with the largest image share; the ``k`` with the
    most bytes."""
    best: dict[tuple[Any, ...], Candidate] = {}
    for c in cands:
        key = c.plan.encoding_key
        if c.fits and (key not in best or c.plan.fraction > best[key].plan.fraction):
            best[key] = c
    return sorted(best.values(), key=lambda c: -c.bytes)[:k]


def _load_options(opts: ConvertOptions) -> LoadOptions:
    return LoadOptions(opts.background, opts.max_side, opts.max_pixels)
