"""What every driver does before and after the stages."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcqformat.checks import check_path
from dcqformat.encode.model import TaskModel, deterministic
from dcqformat.encode.model_files import resolve_task_model
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.patchdrop import PatchDropper, parse_patch_drop
from dcqformat.encode.selection_stage import SelectionStage
from dcqformat.encode.sources import ImageSource, open_source
from dcqformat.encode.stages.analyse import AnalyseHooks
from dcqformat.encode.stages.context import RunContext, Timer, torch_threads
from dcqformat.encode.stages.fit import PaletteTable
from dcqformat.encode.stages.provenance import RunRecord
from dcqformat.encode.stages.proxy import NO_MODEL, ready, train_proxy_on_sample
from dcqformat.encode.stages.write import WriteStats
from dcqformat.encode.summary import ConvertSummary
from dcqformat.errors import InputImageError, InvalidArgumentError
from dcqformat.format.publish import check_replaceable

__all__ = ["Prepared", "prepare", "running", "model_for", "summarise", "STAGES"]

#: The stages in the order they run (each is timed in ``ConvertSummary.stage_seconds``).
STAGES = ("scan", "sample", "train", "analyse", "cluster", "palettes", "select", "refine",
          "write")


@dataclass
class Prepared:
    """A checked conversion ready to run: options, selection, patch dropper, output path."""

    opts: ConvertOptions
    dst: Path
    selection: SelectionStage
    dropper: PatchDropper | None

    @property
    def need_features(self) -> bool:
        """Whether the clustering features are needed (``palette="cluster"``, C > 1)."""
        return self.opts.palette == "cluster" and self.opts.clusters > 1

    def need_model(self, features_only: bool = False) -> bool:
        """Whether a task model is needed at all."""
        o = self.opts
        return (self.need_features or (o.attention and not features_only)
                or self.selection.needs_model or self.dropper is not None)

    def hooks(self) -> AnalyseHooks:
        """The analyse pass's observers."""
        return AnalyseHooks(self.selection if self.selection.active else None, self.dropper)


def prepare(src: Any, dst: Any, opts: ConvertOptions) -> Prepared:
    """Check everything that can be checked before reading the source."""
    sel = SelectionStage.from_args(opts.coreset, opts.dedup, opts.keep_all, opts.seed)
    spec = parse_patch_drop(opts.patch_drop)
    if spec is None and opts.patch_size is not None:
        raise InvalidArgumentError(f"patch_size={opts.patch_size!r} needs patch_drop "
                                   "('fixed:THETA' or 'spd')")
    dropper = None if spec is None else PatchDropper(spec, opts.patch_size)
    dst_path = check_path(dst, "dst")  # '' was Path('.'): "output '.' exists"
    if isinstance(src, (str, os.PathLike)):
        check_path(src, "src")
    if isinstance(src, (str, Path)) and Path(src).is_dir():
        # realpath: Path.resolve raises RuntimeError (OSError on 3.13) on a symlink loop
        if _is_within(Path(os.path.realpath(dst_path)), Path(os.path.realpath(src))):
            raise InvalidArgumentError(f"output {str(dst_path)!r} lies inside the source folder "
                                       f"{str(src)!r}; dcqformat never writes into the source")
    if os.path.lexists(dst_path) and not opts.overwrite:  # a dangling link too, as the writer
        raise InvalidArgumentError(f"output {str(dst_path)!r} exists (pass overwrite=True / --force)")
    check_replaceable(dst_path)  # --force replaces a file, never /dev/null or a FIFO
    return Prepared(opts, dst_path, sel, dropper)


@contextmanager
def running(src: Any, prep: Prepared, labels: Any = None,
            classes: Sequence[str] | None = None) -> Iterator[RunContext]:
    """Deterministic torch, the thread setting and the scanned source for the stages."""
    o = prep.opts
    timer = Timer()
    with deterministic(o.seed):
        with timer.stage("scan"):
            source: ImageSource = open_source(src, labels=labels, classes=classes)
        if source.rejected and o.on_error == "fail":
            r = source.rejected
            raise InputImageError(f"{len(r)} image file(s) in {source.where} cannot be stored: "
                                  f"'{r[0]['path']}': {r[0]['error']} (on_error='skip' skips "
                                  "and reports them)")
        ctx = RunContext.create(o, source, timer)
        with torch_threads(ctx.threads):
            ctx.say(f"found {len(source)} images in {len(source.classes)} classes in "
                    f"{source.where}")
            yield ctx


def model_for(ctx: RunContext, prep: Prepared, model: Any, *, train: bool = True,
              features_only: bool = False) -> tuple[TaskModel | None, bool]:
    """``(task model or None, whether it is a proxy trained on the source)``: None when no
    model is needed, the user's model, or the proxy (``train=True`` trains it here; else
    None with True)."""
    if not prep.need_model(features_only):
        return None, False
    task = resolve_task_model(model)
    prep.selection.check_epochs(ctx.opts.epochs, task is None)
    proxy = task is None
    if proxy and train:
        task = train_proxy_on_sample(ctx, prep.selection.epoch_hook())
    return task, proxy


def identity(ctx: RunContext, task: TaskModel | None) -> dict[str, Any]:
    """The model's provenance record (the model moved to the device, in eval mode)."""
    return NO_MODEL if task is None else ready(task, ctx)


def check_readable(ctx: RunContext, n: int) -> None:
    """InputImageError when no image could be read."""
    if n == 0:
        raise InputImageError(f"none of the {len(ctx.source)} images in {ctx.source.where} "
                              "could be read")


def summarise(ctx: RunContext, stats: WriteStats, rec: RunRecord, table: PaletteTable
              ) -> ConvertSummary:
    """The :class:`ConvertSummary` of a written file."""
    o, prov = ctx.opts, stats.provenance
    size = stats.file_bytes
    return ConvertSummary(
        path=str(stats.path), images=len(stats.written), skipped=prov["skipped"],
        classes=len(ctx.source.classes), bits=o.bits, channels=rec.channels,
        palettes=int(table.palettes.shape[0]), palette_mode=o.palette, file_bytes=size,
        raw_pixel_bytes=stats.raw_bytes, source_bytes=stats.source_bytes,
        ratio_vs_raw=stats.raw_bytes / size, ratio_vs_source=stats.source_bytes / size,
        psnr_mean_db=prov["quality"]["psnr_mean_db"], psnr_min_db=prov["quality"]["psnr_min_db"],
        device=str(ctx.device), model=rec.model_identity,
        stage_seconds={s: round(ctx.timer.seconds[s], 4) for s in STAGES if s in ctx.timer.seconds},
        selection=rec.plan.summary if rec.plan is not None else {},
        patch_drop=None if rec.dropper is None else rec.dropper.provenance(),
        source_kind=ctx.source.kind, scan_skipped=list(ctx.source.scan_skipped))


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
