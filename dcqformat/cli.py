"""The ``dcqformat`` command line: convert | demo | preview | info | verify | export | merge.

``info``, ``verify`` and ``export`` need only the reader core; ``convert``, ``demo`` and
``preview`` come from :mod:`dcqformat.encode.cli_commands` (the ``torch`` extra) and are
listed with a note when torch is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from dcqformat._version import __version__
from dcqformat.errors import DcqError


def _cmd_info(args: argparse.Namespace) -> int:
    from dcqformat.format.info import format_report
    from dcqformat.format.reader import DCQFile

    report = DCQFile(args.file).info()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(format_report(report))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from dcqformat.format.reader import DCQFile

    f = DCQFile(args.file)
    f.verify()
    print(f"{args.file}: OK ({len(f)} samples, all checksums and structure valid, every sample decoded)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from dcqformat.format.export import export_imagefolder
    from dcqformat.format.reader import DCQFile

    count = export_imagefolder(DCQFile(args.file), args.out_dir)
    print(f"wrote {count} PNG files to {args.out_dir}")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from dcqformat.format.merge import merge_shards

    r = merge_shards(args.shards, args.out, overwrite=args.force)
    print(f"wrote {r.path}: {r.images} samples from {r.shards} shard(s), {r.file_bytes:,} bytes, "
          f"PSNR mean {r.psnr_mean_db:.2f} dB")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dcqformat", description="Compressed image-classification datasets (.dcq files).")
    parser.add_argument("--version", action="version", version=f"dcqformat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="storage report: where every byte went")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("verify", help="check every checksum and structural rule, decode every sample")
    p.add_argument("file")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("export", help="write decoded PNGs in ImageFolder layout")
    p.add_argument("file")
    p.add_argument("out_dir")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("merge", help="join the shards of a sharded conversion into one .dcq file",
                       description="Shards written by 'convert --state S --shard i/N' (or torchrun) "
                       "are checked to belong together and written in listing order to OUT.")
    p.add_argument("shards", nargs="+", metavar="SHARD", help="shard .dcq files, any order")
    p.add_argument("out", metavar="OUT", help="output .dcq file (appears only when complete)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=_cmd_merge)

    try:
        from dcqformat.encode.cli_commands import register
    except ImportError as exc:  # torch extra missing: say so instead of hiding the commands
        missing = str(exc)

        def _needs_torch(args: argparse.Namespace) -> int:
            raise DcqError(f"'{args.command}' needs the torch extra: pip install 'dcqformat[torch]' ({missing})")

        for name in ("convert", "demo", "preview"):
            q = sub.add_parser(name, help="(needs the torch extra)")
            q.add_argument("rest", nargs=argparse.REMAINDER)
            q.set_defaults(func=_needs_torch)
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcqformat`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DcqError as exc:
        print(f"dcqformat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dcqformat {args.command}: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
