"""The ``dcqformat`` command line: convert | demo | preview | info | verify | export | merge.

``info``, ``verify`` and ``export`` need only the reader core; ``convert``, ``demo`` and
``preview`` come from :mod:`dcqformat.encode.cli_commands` (the ``torch`` extra) and are
listed with a note when torch is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dcqformat._version import __version__
from dcqformat.errors import DcqError, Terminated
from dcqformat.format.layout import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from dcqformat.format.reader import DCQFile


class _Progress:
    """``done/total`` lines on stderr, at most one a second (when ``enabled``)."""

    def __init__(self, what: str, enabled: bool) -> None:
        self.what, self.enabled = what, enabled
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.enabled and (now - self.last >= 1.0 or done == total):
            self.last = now
            pct = 100.0 * done / total if total else 100.0
            print(f"{self.what}: {done}/{total} samples ({pct:.0f}%), {now - self.start:.1f} s",
                  file=sys.stderr, flush=True)


def _max_pixels(value: str) -> int | None:
    """``--max-pixels``: a positive pixel count, or 0 / none for no limit."""
    if value.strip().lower() == "none":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count or 0, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a pixel count or 0, got {value!r}")
    return None if n == 0 else n  # '00' and '-0' are 0 too: no limit


def _open(args: argparse.Namespace) -> DCQFile:
    from dcqformat.format.reader import DCQFile

    return DCQFile(args.file, max_pixels=args.max_pixels)


def _cmd_info(args: argparse.Namespace) -> int:
    from dcqformat.format.info import format_report

    report = _open(args).info()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(format_report(report))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    f = _open(args)
    f.verify(progress=_Progress("verify", args.progress))
    print(f"{args.file}: OK ({len(f)} samples, all checksums and structure valid, every sample decoded)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from dcqformat.format.export import MANIFEST, export_imagefolder

    count = export_imagefolder(_open(args), args.out_dir, progress=_Progress("export", args.progress))
    print(f"wrote {count} PNG files to {args.out_dir} (class folders listed in {MANIFEST})")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    from dcqformat.format.merge import merge_shards

    r = merge_shards(args.shards, args.out, overwrite=args.force, max_pixels=args.max_pixels)
    print(f"wrote {r.path}: {r.images} samples from {r.shards} shard(s), {r.file_bytes:,} bytes, "
          f"PSNR mean {r.psnr_mean_db:.2f} dB")
    return 0


def _reader_options(p: argparse.ArgumentParser, progress: bool = False) -> None:
    p.add_argument("--max-pixels", type=_max_pixels, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse files with a sample of more than N pixels (default {DEFAULT_MAX_PIXELS:,}, "
                   "a decompression-bomb guard like Pillow's; 0 = no limit)")
    if progress:
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                       help="report progress on stderr (default: when stderr is a terminal)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dcqformat", description="Compressed image-classification datasets (.dcq files).")
    parser.add_argument("--version", action="version", version=f"dcqformat {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="storage report: where every byte went")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _reader_options(p)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("verify", help="check every checksum and structural rule, decode every sample")
    p.add_argument("file")
    _reader_options(p, progress=True)
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("export", help="write decoded PNGs in ImageFolder layout",
                       description="Each class gets its own folder (a safe, unique name; the mapping "
                       "is in dcq-export.json); every sample's CRC-32 is checked; OUT_DIR appears "
                       "only when complete.")
    p.add_argument("file")
    p.add_argument("out_dir")
    _reader_options(p, progress=True)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("merge", help="join the shards of a sharded conversion into one .dcq file",
                       description="Shards written by 'convert --state S --shard i/N' (or torchrun) "
                       "are checked to belong together and written in listing order to OUT.")
    p.add_argument("shards", nargs="+", metavar="SHARD", help="shard .dcq files, any order")
    p.add_argument("out", metavar="OUT", help="output .dcq file (appears only when complete)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    _reader_options(p)
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


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcqformat`` console script; returns the exit status.

    SIGTERM takes the path of Ctrl-C (a :class:`~dcqformat.errors.Terminated`, which is a
    ``KeyboardInterrupt``): writers discard their temporary files and nothing appears under an
    output name. Exit status 2 for a DcqError, 130 for Ctrl-C, 143 for SIGTERM, 141 when the
    reader of standard output went away (``dcqformat info x.dcq | head``), without a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.func(args) or 0)
    except DcqError as exc:
        print(f"dcqformat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        why = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"dcqformat {args.command}: {why}; no output was written", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:
        # Python's own advice: point stdout at /dev/null so the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
