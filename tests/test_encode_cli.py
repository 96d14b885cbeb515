"""The convert / preview / demo subcommands through the ``dcqformat`` command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_encode_support import make_folder, tree_digest

from dcqformat.encode.cli_commands import options_from_args, register
from dcqformat.encode.options import ConvertOptions
from dcqformat.format.reader import DCQFile


def _main(argv: list[str]) -> int:
    try:
        from dcqformat.cli import main
    except ImportError:  # the lead's cli.py not there: drive register() directly
        parser = argparse.ArgumentParser(prog="dcqformat")
        register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    return main(argv)


def test_register_adds_the_three_commands() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    register(sub)
    a = parser.parse_args(["convert", "s", "d", "--bits", "1", "--no-attention", "--no-refine",
                           "--palette", "global", "--background", "black", "--on-error", "skip",
                           "--encoding", "zstd", "--epochs", "1", "--max-side", "64",
                           "--model-input-size", "24x32"])
    o = options_from_args(a)
    assert (o["bits"], o["attention"], o["refine"], o["palette"], a.model_input_size) == (
        1, False, False, "global", (24, 32))
    assert (o["background"], o["on_error"], o["payload_encoding"], o["epochs"], o["max_side"]) \
        == ("black", "skip", "zstd", 1, 64)
    # every flag maps onto a ConvertOptions field, and the defaults are the options' defaults
    d = options_from_args(parser.parse_args(["convert", "s", "d"]))
    d.pop("log")
    assert ConvertOptions(**d) == ConvertOptions(log=None)
    assert parser.parse_args(["demo", "--out", "x"]).out == "x"
    p = parser.parse_args(["preview", "f.dcq", "-o", "g.png", "--n", "4"])
    assert (p.file, p.output, p.n, p.source) == ("f.dcq", "g.png", 4, None)


def test_convert_then_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_folder(tmp_path / "src", per_class=3)
    before = tree_digest(src)
    out = tmp_path / "o.dcq"
    rc = _main(["convert", str(src), str(out), "--epochs", "1", "--clusters", "2", "--no-refine",
                "--quiet", "--json", "--device", "cpu", "--threads", "1", "--encoding", "auto"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 9 and summary["palettes"] == 2
    assert DCQFile(out).bits == 2
    assert tree_digest(src) == before
    # a second convert to the same name needs --force
    assert _main(["convert", str(src), str(out), "--quiet"]) == 2
    assert "exists" in capsys.readouterr().err

    grid = tmp_path / "g.png"
    assert _main(["preview", str(out), "-o", str(grid), "--n", "6"]) == 0
    text = capsys.readouterr().out
    assert "original | decoded" in text and "PSNR" in text
    im = np.asarray(Image.open(grid))
    assert im.ndim == 3 and im.shape[2] == 3 and im.shape[1] > 2 * 64
    # without originals available the grid still shows the decoded images
    assert _main(["preview", str(out), "-o", str(tmp_path / "h.png"), "--source",
                  str(tmp_path)]) == 0
    assert "no originals found" in capsys.readouterr().out


def test_convert_reports_unreadable_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_folder(tmp_path / "src", per_class=2)
    (src / "coffee" / "bad.png").write_bytes(b"nope")
    rc = _main(["convert", str(src), str(tmp_path / "o.dcq"), "--quiet", "--no-refine",
                "--palette", "global", "--no-attention"])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.png" in err and "not a recognised image" in err
    assert not (tmp_path / "o.dcq").exists()
    rc = _main(["convert", str(src), str(tmp_path / "o.dcq"), "--quiet", "--no-refine",
                "--palette", "global", "--no-attention", "--on-error", "skip"])
    assert rc == 0 and "coffee/bad.png" in capsys.readouterr().out


@pytest.mark.slow
def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    import time

    t0 = time.perf_counter()
    assert _main(["demo", "--out", str(tmp_path), "--quiet", "--device", "cpu"]) == 0
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    f = DCQFile(tmp_path / "digits_q2.dcq")
    assert len(f) == 1797 and f.channels == 1 and f.bits == 2 and len(f.classes) == 10
    assert (tmp_path / "digits_q2_preview.png").stat().st_size > 1000
    assert "1797" in out and "preview" in out
    print(f"demo took {seconds:.1f}s")


@pytest.mark.parametrize("extra, says", [
    (["--shallow-layer", "stage2"], "--shallow-layer applies to a model loaded with --model FILE"),
    (["--last-layer", "x"], "--last-layer applies to a model loaded with --model FILE"),
    (["--model-input-size", "32"], "--model-input-size applies to a model loaded"),
    (["--plan-sample", "100"], "--plan-sample needs --budget SIZE"),
    (["--plan-evaluate", "3"], "--plan-evaluate needs --budget SIZE"),
])
def test_flags_that_would_be_ignored_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 extra: list[str], says: str) -> None:
    """A flag that does nothing in this combination is an argument error before any work."""
    src = make_folder(tmp_path / "src", per_class=2)
    out = tmp_path / "o.dcq"
    assert _main(["convert", str(src), str(out), "--quiet", *extra]) == 2
    assert says in capsys.readouterr().err
    assert not out.exists()
