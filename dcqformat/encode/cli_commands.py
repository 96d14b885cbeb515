"""The encoder's subcommands for the ``dcqformat`` command line: ``convert``, ``demo``,
``preview``. :func:`register` adds them to an ``argparse`` subparsers object; each sets
``func`` to a handler taking the parsed namespace and returning the exit status."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


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


def _cmd_convert(args: argparse.Namespace) -> int:
    from dcqformat.encode.distributed import scale_out_runner
    from dcqformat.encode.model import load_model

    model: Any = args.model
    if model != "proxy":
        model = load_model(args.model, shallow=args.shallow_layer, last=args.last_layer,
                           input_size=args.model_input_size)
    summary = scale_out_runner(args)(  # convert(), or its shard / fit / torchrun form
        args.src, args.dst, bits=args.bits, clusters=args.clusters, palette=args.palette,
        palette_choice=args.palette_choice,
        attention=not args.no_attention, refine=not args.no_refine, model=model,
        device=args.device, seed=args.seed, max_side=args.max_side, background=args.background,
        on_error=args.on_error, payload_encoding=args.encoding, progress=not args.quiet,
        epochs=args.epochs, overwrite=args.force, threads=args.threads, workers=args.workers,
        batch_size=args.batch_size,
        coreset=args.coreset, dedup=args.dedup, keep_all=args.keep_all,
        patch_drop=args.patch_drop, patch_size=args.patch_size,
        log=None if args.quiet else (lambda m: print(m, file=sys.stderr)),
    )
    if summary is None:  # torchrun rank > 0: rank 0 reports the merged file
        return 0
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(summary.format())
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


def register(subparsers: Any) -> None:
    """Add ``convert``, ``demo`` and ``preview`` to ``subparsers`` (from
    ``ArgumentParser.add_subparsers``)."""
    p = subparsers.add_parser(
        "convert", help="ImageFolder -> .dcq (colour quantization with shared cluster palettes)",
        description="Convert an ImageFolder (root/<class>/<image>) into one .dcq file "
        "(METHOD.md §1: proxy model, shallow-feature clusters, Grad-CAM++ attended LAB palettes, "
        "edge-loss refinement). Never writes into SRC; DST appears only when complete.",
    )
    p.add_argument("src", metavar="SRC", help="ImageFolder root")
    p.add_argument("dst", metavar="DST", help="output .dcq file")
    p.add_argument("--bits", type=int, default=2, help="bits per pixel index q; K = 2**q colours (default 2)")
    p.add_argument("--clusters", type=int, default=20, help="image clusters C, one palette each (default 20)")
    p.add_argument("--palette", choices=("cluster", "image", "global"), default="cluster",
                   help="one palette per cluster (default), per image, or one for all")
    p.add_argument("--palette-choice", choices=("best", "cluster"), default="best",
                   help="best (default): each image uses whichever of the C palettes fits it best "
                   "(trained better on emoji64 and Fashion-MNIST, see "
                   "benchmarks/results/train_probe_diagnosis.md); cluster: its cluster's palette, "
                   "as the DCQ paper does")
    p.add_argument("--no-attention", action="store_true",
                   help="build palettes from all pixels instead of the top 50%% Grad-CAM++ pixels")
    p.add_argument("--no-refine", action="store_true", help="skip the Sobel edge-loss palette refinement")
    p.add_argument("--model", default="proxy",
                   help="'proxy' (train a small CNN on the data, default) or a model file: a "
                   "ProxyNet checkpoint, a torch.export .pt2, or TorchScript returning "
                   "(logits, shallow_map, last_map)")
    p.add_argument("--shallow-layer", default="stage1", help="submodule giving clustering features (default stage1)")
    p.add_argument("--last-layer", default="last_block", help="last conv block for Grad-CAM++ (default last_block)")
    p.add_argument("--model-input-size", type=_size, default=None, metavar="N|HxW",
                   help="resize images to this for a loaded model (default: from the file, else 32)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    p.add_argument("--max-side", type=int, default=None, help="downscale images whose longer side exceeds this")
    p.add_argument("--background", default="white",
                   help="colour transparent pixels are flattened onto: white (default), black, #rrggbb, r,g,b")
    p.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="unreadable images: stop (default) or skip and list them")
    p.add_argument("--encoding", choices=("raw", "zstd", "auto"), default="auto",
                   help="payload encoding: raw bit-packed, zstd, or auto (smaller of both, default)")
    p.add_argument("--epochs", type=int, default=4, help="proxy model training epochs (default 4)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default 1 on the CPU: small tensors, "
                   "output independent of the core count)")
    p.add_argument("--workers", type=int, default=None, help="image-decoding threads (default min(4, CPUs))")
    p.add_argument("--coreset", default=None, metavar="METHOD:RATIO",
                   help="keep RATIO of every class: bgfdq, semred, el2n or random (e.g. bgfdq:0.3); "
                   "stored as a named selection with a best-first ranking")
    p.add_argument("--dedup", default=None, metavar="HASH:T[:flip]",
                   help="drop near-duplicates first: phash, ahash, dhash or whash within Hamming "
                   "distance T (e.g. phash:8; ':flip' also matches mirrored copies)")
    p.add_argument("--patch-drop", default=None, metavar="fixed:THETA|spd",
                   help="store only the informative patches (METHOD.md §3): fixed:0.25 drops the "
                   "25%% of patches with the lowest Grad-CAM++ attention, spd per image the largest "
                   "fraction in 10..90%% whose feature shift stays below its class's threshold; "
                   "dropped patches decode as one stored colour")
    p.add_argument("--patch-size", type=int, default=None, metavar="P",
                   help="patch side for --patch-drop (default max(4, smallest image side // 8))")
    p.add_argument("--keep-all", action="store_true",
                   help="store every image; --coreset/--dedup then only add selections")
    p.add_argument("--force", action="store_true", help="replace DST if it exists")
    p.add_argument("--fit-only", action="store_true",
                   help="scale-out: stop after refine and write the fit state (.npz) to DST")
    p.add_argument("--state", default=None, metavar="STATE",
                   help="scale-out: encode against this fit state (its parameters override the flags)")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="scale-out: with --state, encode share i of N (blocks of --batch-size "
                   "listing positions, round robin) to DST; join shards with 'dcqformat merge'")
    p.add_argument("--batch-size", type=int, default=64,
                   help="images per analyse batch; also the block size of --shard shares (default 64)")
    p.add_argument("--dist-timeout", type=float, default=1800.0, metavar="S",
                   help="torchrun: seconds a rank waits for the others before the job fails (default 1800)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
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
