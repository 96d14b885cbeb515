"""The encoder's subcommands for the ``dcqformat`` command line: ``convert``, ``demo``,
``preview``. :func:`register` adds them to an ``argparse`` subparsers object; each sets
``func`` to a handler taking the parsed namespace and returning the exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from dcqformat.errors import InvalidArgumentError

__all__ = ["register", "options_from_args"]


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        vals = [int(p) for p in parts if p.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from e
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive values, got {text!r}")
    return vals[0], vals[1]


def _convert_runner(args: argparse.Namespace) -> Any:
    """``convert``, its fit / shard form, or the torchrun driver when torchrun set
    ``WORLD_SIZE`` > 1. A fit state fixes every shard parameter: its values replace the flags."""
    from dcqformat.encode.pipeline import convert

    fit_only, state_path, shard = args.fit_only, args.state, args.shard
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if not (fit_only or state_path or shard or world > 1):
        return convert
    if shard is not None and world > 1:
        raise InvalidArgumentError("--shard is for schedulers other than torchrun; under torchrun "
                                   "each rank takes share RANK of WORLD_SIZE by itself")
    from dcqformat.encode.state import FitState

    state = FitState.load(state_path) if state_path else None

    def run(src: Any, dst: Any, **kwargs: Any) -> Any:
        if state is not None:
            kwargs.update(state.convert_kwargs())
        if world > 1:
            from dcqformat.encode.drivers.torchrun import convert_distributed

            return convert_distributed(src, dst, timeout_s=args.dist_timeout, state=state,
                                       fit_only=fit_only, **kwargs)
        return convert(src, dst, shard=shard, state=state, fit_only=fit_only, **kwargs)

    return run


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The convert keywords the option flags set (each option's flag is declared in
    :class:`~dcqformat.encode.options.ConvertOptions`)."""
    from dcqformat.encode.options import option_specs

    out: dict[str, Any] = {}
    for name, _default, spec in option_specs():
        if spec.flag is not None:
            value = getattr(args, f"opt_{name}")
            out[name] = (not value) if spec.invert else value
    if not out["progress"]:
        out["log"] = None
    else:
        out["log"] = lambda m: print(m, file=sys.stderr)
    return out


def _cmd_convert(args: argparse.Namespace) -> int:
    from dcqformat.encode.model_files import load_model

    _refuse_unused_flags(args)
    model: Any = args.model
    if model != "proxy":
        model = load_model(args.model, shallow=args.shallow_layer or "stage1",
                           last=args.last_layer or "last_block", input_size=args.model_input_size)
    if args.budget is not None or args.plan_only:
        return _convert_budget(args, model)
    summary = _convert_runner(args)(args.src, args.dst, model=model, **options_from_args(args))
    if summary is None:  # torchrun rank > 0: rank 0 reports the merged file
        return 0
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(summary.format())
    return 0


def _refuse_unused_flags(args: argparse.Namespace) -> None:
    """An InvalidArgumentError for a flag that would be silently ignored: the model's layer and
    input-size flags without a loaded ``--model FILE``, the planner's flags without ``--budget``."""
    if args.model == "proxy":
        for flag, value in (("--shallow-layer", args.shallow_layer), ("--last-layer", args.last_layer),
                            ("--model-input-size", args.model_input_size)):
            if value is not None:
                raise InvalidArgumentError(f"{flag} applies to a model loaded with --model FILE; "
                                           "the proxy model has its own layers and input size")
    if args.budget is None:
        for flag, value in (("--plan-sample", args.plan_sample), ("--plan-evaluate", args.plan_evaluate)):
            if value is not None:
                raise InvalidArgumentError(f"{flag} needs --budget SIZE")


def _convert_budget(args: argparse.Namespace, model: Any) -> int:
    """``--budget SIZE`` [``--plan-only``]: plan, print the table, convert with the best plan."""
    from dcqformat.encode.planner.choose import PlanSettings
    from dcqformat.encode.planner.run import convert_within_budget

    if args.budget is None:
        raise InvalidArgumentError("--plan-only needs --budget SIZE")
    if args.fit_only or args.state or args.shard or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InvalidArgumentError("--budget plans one conversion; it does not combine with "
                                   "--fit-only, --state, --shard or torchrun")
    opts = options_from_args(args)
    given = {"sample": args.plan_sample, "evaluate": args.plan_evaluate}
    settings = PlanSettings(**{k: v for k, v in given.items() if v is not None})
    res = convert_within_budget(args.src, args.dst, args.budget, plan_only=args.plan_only,
                                settings=settings, model=model, **opts)
    print(res.report.table())
    if res.summary is not None:
        print()
        print(res.summary.format())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dcqformat.encode.demo import run_demo

    run_demo(args.out, size=args.size, seed=args.seed, progress=not args.quiet,
             device=args.device)
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from dcqformat.encode.preview import make_preview

    info = make_preview(args.file, args.output, source=args.source, n=args.n, cols=args.cols)
    kind = "original | decoded pairs" if info["with_originals"] else "decoded images (no originals found)"
    line = f"wrote {info['path']}: {len(info['samples'])} {kind}"
    if info.get("masks"):
        line += " + patch masks (dropped patches hatched)"
    if info["psnr_db"] is not None:
        line += f", mean PSNR {info['psnr_db']:.2f} dB"
    print(line)
    return 0


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`~dcqformat.encode.options.ConvertOptions` field that has one."""
    from dcqformat.encode.options import option_specs

    for name, default, spec in option_specs():
        if spec.flag is None:
            continue
        kw: dict[str, Any] = {"dest": f"opt_{name}", "help": spec.help}
        if spec.invert:
            kw["action"] = "store_true"
        else:
            kw["default"] = default
            kw.update(spec.cli)
            if kw.get("action") != "store_true" and "choices" not in kw:
                kw.setdefault("metavar", spec.flag.lstrip("-").replace("-", "_").upper())
        p.add_argument(spec.flag, **kw)


def register(subparsers: Any) -> None:
    """Add ``convert``, ``demo`` and ``preview`` to ``subparsers`` (from
    ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "convert", help="images -> .dcq (colour quantization with shared cluster palettes)",
        description="Convert an ImageFolder (root/<class>/<image>) into one .dcq file: a proxy "
        "model, shallow-feature clusters, Grad-CAM++ attended LAB palettes and edge-loss "
        "refinement (docs/method.md explains every option). Never writes into SRC; DST appears "
        "only when complete.",
    )
    p.add_argument("src", metavar="SRC", help="ImageFolder root")
    p.add_argument("dst", metavar="DST", help="output .dcq file")
    _add_option_flags(p)
    p.add_argument("--model", default="proxy",
                   help="'proxy' (train a small CNN on the data, default) or a model file: a "
                   "ProxyNet checkpoint, a torch.export .pt2, or TorchScript returning "
                   "(logits, shallow_map, last_map)")
    p.add_argument("--shallow-layer", default=None, help="submodule giving clustering features (default stage1)")
    p.add_argument("--last-layer", default=None, help="last conv block for Grad-CAM++ (default last_block)")
    p.add_argument("--model-input-size", type=_size, default=None, metavar="N|HxW",
                   help="resize images to this for a loaded model (default: from the file, else 32)")
    p.add_argument("--fit-only", action="store_true",
                   help="scale-out: stop after refine and write the fit state (.npz) to DST")
    p.add_argument("--state", default=None, metavar="STATE",
                   help="scale-out: encode against this fit state (its parameters override the flags)")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="scale-out: with --state, encode share i of N (blocks of --batch-size "
                   "listing positions, round robin) to DST; join shards with 'dcqformat merge'")
    p.add_argument("--dist-timeout", type=float, default=1800.0, metavar="S",
                   help="torchrun: seconds a rank waits for the others before the job fails (default 1800)")
    p.add_argument("--budget", default=None, metavar="SIZE",
                   help="choose palettes, bits, scale and image share to train best within SIZE "
                   "bytes (400000, 400KB, 1.5GB in powers of 1000, 400KiB in powers of 1024; "
                   "the whole file counts; docs/budget.md)")
    p.add_argument("--plan-only", action="store_true",
                   help="with --budget: print the plans, their bytes and estimates; write nothing")
    p.add_argument("--plan-sample", type=int, default=None, metavar="N",
                   help="with --budget: images the plans are measured and estimated on (default 400)")
    p.add_argument("--plan-evaluate", type=int, default=None, metavar="K",
                   help="with --budget: plans that get the training-value estimate (default 12)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_convert)

    p = subparsers.add_parser(
        "demo", help="convert scikit-learn's real handwritten digits at 2 bits and preview them",
        description="Writes scikit-learn's 1,797 real 8x8 digits (upscaled bilinearly) as a "
        "temporary ImageFolder, converts it at q=2 with quick settings, prints the storage report "
        "and writes a preview grid.",
    )
    p.add_argument("--out", default="demo_out", help="output folder (default ./demo_out)")
    p.add_argument("--size", type=int, default=32, help="upscaled image side (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)

    p = subparsers.add_parser(
        "preview", help="PNG grid of originals beside decoded images",
        description="Originals come from --source, else from the source folder recorded in the file.",
    )
    p.add_argument("file", metavar="FILE", help=".dcq file")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.add_argument("--source", default=None, help="ImageFolder root holding the originals")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--cols", type=int, default=None, help="pairs per row (default about sqrt(n))")
    p.set_defaults(func=_cmd_preview)
