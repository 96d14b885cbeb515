"""Print (or check) the parameter table of ``docs/method.md`` from ``ConvertOptions``.

``python tools/options_table.py`` prints the markdown table; ``--write`` replaces the table
between the ``<!-- options-table -->`` markers of docs/method.md; ``--check`` exits 1 when the
document's table differs from the options (the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dcqformat.cli import build_parser
from dcqformat.encode.options import option_specs

DOC = Path(__file__).resolve().parents[1] / "docs" / "method.md"
BEGIN, END = "<!-- options-table -->", "<!-- /options-table -->"


def convert_flags() -> dict[str, str]:
    """``dcqformat convert``'s flags by destination, as its real parser has them (some, such as
    ``--model``, are added by the command rather than by the option's spec)."""
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    convert = commands.choices["convert"]  # type: ignore[index]
    return {a.dest: a.option_strings[-1] for a in convert._actions if a.option_strings}


def table() -> str:
    """The markdown table: option, CLI flag, default, shard, description."""
    rows = ["| option | flag | default | shards agree | what it does |", "|---|---|---|---|---|"]
    flags = convert_flags()
    for name, default, spec in option_specs():
        d = "white" if name == "background" else repr(default)
        cli_flag = spec.flag or flags.get(name)
        flag = f"`{cli_flag}`" if cli_flag else "(Python only)"
        text = spec.help.replace("%%", "%").replace("|", "\\|")
        rows.append(f"| `{name}` | {flag} | `{d}` | {'yes' if spec.shard else ''} | {text} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Print, write or check the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    doc = DOC.read_text()
    start, stop = doc.index(BEGIN) + len(BEGIN), doc.index(END)
    current = doc[start:stop].strip()
    if args.check:
        if current != table():
            print("docs/method.md's options table is stale: run tools/options_table.py --write")
            return 1
        return 0
    if args.write:
        DOC.write_text(doc[:start] + "\n" + table() + "\n" + doc[stop:])
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
