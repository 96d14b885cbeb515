"""No bare ValueError or TypeError escapes the reader, the writer, export, merge or the command
line on bad input (#11): every public entry point is called with arguments drawn from a junk
strategy (wrong types, NaN, huge and negative numbers, arrays where scalars belong, strings
with NUL bytes, ...) and may only raise a DcqError -- or IndexError for an out-of-range sample
index, which the sequence protocol requires -- or succeed."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcqformat import DCQFile, DCQWriter
from dcqformat.cli import main as cli_main
from dcqformat.codecs import decode_into, pack_indices, unpack_indices
from dcqformat.errors import DcqError
from dcqformat.format.export import export_imagefolder
from dcqformat.format.merge import merge_shards

VECTOR = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "valid" / "q3_rgb_zstd_k5.dcq"
MASKED = Path(__file__).resolve().parent.parent / "spec" / "vectors" / "valid" / "q2_rgb_raw_masks_p4.dcq"

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    st.just(math.inf), st.text(max_size=6), st.just("a\0b"), st.binary(max_size=6),
    st.just(object()), st.just([1, 2]), st.just({"k": 1}), st.just((0,)),
    st.just(np.array([1.5, np.nan])), st.just(np.zeros((2, 2), np.uint8)), st.just(np.int64(1)),
    st.just(np.array("x")), st.just(np.zeros(3, bool)), st.just(slice(0, 2)), st.just(Path("/")),
)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def only_dcq_errors(call: Callable[[], Any], *, index_error: bool = False) -> None:
    try:
        call()
    except DcqError:
        pass
    except IndexError:
        if not index_error:
            raise
    except (ValueError, TypeError) as exc:
        pytest.fail(f"bare {type(exc).__name__} escaped: {exc}")


@SETTINGS
@given(path=JUNK, check_crc=JUNK, fill=JUNK, max_pixels=JUNK)
def test_dcqfile_construction(path: Any, check_crc: Any, fill: Any, max_pixels: Any) -> None:
    only_dcq_errors(lambda: DCQFile(path))
    only_dcq_errors(lambda: DCQFile(VECTOR, check_crc=check_crc, fill=fill, max_pixels=max_pixels))


@SETTINGS
@given(a=JUNK, b=JUNK, c=JUNK)
def test_reader_methods(a: Any, b: Any, c: Any) -> None:
    for path in (VECTOR, MASKED):
        with DCQFile(path) as f:
            for call in (lambda: f[a], lambda: f.decode(a), lambda: f.decode(0, a),
                         lambda: f.decode_into(a, b), lambda: f.decode_into(0, b, layout=c),
                         lambda: f.decode_into(0, np.empty(f.shape(0), np.uint8), palette=a),
                         lambda: f.decode_batch(a), lambda: f.decode_batch([0], a),
                         lambda: f.packed(a), lambda: f.packed_batch(a), lambda: f.stored(a),
                         lambda: f.stored_pixels(a), lambda: f.shape(a), lambda: f.index_map(a),
                         lambda: f.patch_mask(a), lambda: f.pixel_mask(a),
                         lambda: f.selection_indices(a), lambda: f.selection_indices("sel", b),
                         lambda: f.verify(a)):
                only_dcq_errors(call, index_error=True)


@SETTINGS
@given(a=JUNK, b=JUNK, c=JUNK)
def test_writer(tmp_path: Path, a: Any, b: Any, c: Any) -> None:
    target = tmp_path / "w.dcq"
    for kw in ({"bits": a}, {"channels": a}, {"classes": a}, {"palette_size": a},
               {"payload_encoding": a}, {"zstd_level": a}, {"patch_size": a}):
        args: dict[str, Any] = {"bits": 2, "channels": 3, "classes": ["x", "y"], **kw}
        only_dcq_errors(lambda args=args: DCQWriter(target, **args).abort())
    only_dcq_errors(lambda: DCQWriter(a, 2, 3, ["x"]).abort())
    w = DCQWriter(target, 2, 3, ["x", "y"], overwrite=True)
    try:
        for call in (lambda: w.set_palettes(a), lambda: w.set_provenance(a),
                     lambda: w.add_selection(a, [0], [0], {}), lambda: w.add_selection("s", a, b, c),
                     lambda: w.add_sample(a, 0, 0), lambda: w.add_sample(np.zeros((2, 2), np.uint8), a, b),
                     lambda: w.add_sample(np.zeros((2, 2), np.uint8), 0, 0, source_path=a, source_size=b),
                     lambda: w.add_sample(np.zeros((2, 2), np.uint8), 0, 0, keep_mask=a)):
            only_dcq_errors(call)
        w.set_palettes(np.zeros((1, 4, 3), np.uint8))
    finally:
        only_dcq_errors(w.close)


@SETTINGS
@given(a=JUNK, b=JUNK)
def test_export_merge_and_codecs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, a: Any, b: Any) -> None:
    monkeypatch.chdir(tmp_path)  # a junk relative out_dir lands here, not in the checkout
    only_dcq_errors(lambda: export_imagefolder(DCQFile(VECTOR), a))
    only_dcq_errors(lambda: merge_shards(a, tmp_path / "m.dcq"))
    only_dcq_errors(lambda: merge_shards([VECTOR], a))
    only_dcq_errors(lambda: pack_indices(a, b))
    only_dcq_errors(lambda: unpack_indices(a, b, 2))
    only_dcq_errors(lambda: decode_into(a, 2, b, np.zeros((4, 3), np.uint8), np.empty(3, np.uint8), False))


@SETTINGS
@given(argv=st.lists(st.one_of(st.sampled_from(["info", "verify", "export", "merge", "--json",
                                                 "--max-pixels", "--force", "--progress", str(VECTOR),
                                                 "-1", "0", "x\0y", "--max-pixels=abc"]),
                               st.text(max_size=5)), max_size=5))
def test_command_line(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # 'export FILE <junk>' writes its folder here, not in the checkout
    try:
        rc = cli_main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        assert exc.code in (0, 2)
    except (ValueError, TypeError) as exc:
        pytest.fail(f"bare {type(exc).__name__} escaped from the command line {argv!r}: {exc}")
    else:
        assert rc in (0, 2)


def test_closed_standard_output_ends_quietly() -> None:
    """``dcqformat info x.dcq | head -1``: the reader of stdout goes away; the command exits 141
    (as a shell tool killed by SIGPIPE) without a traceback."""
    import subprocess
    import sys

    vector = Path(__file__).resolve().parents[1] / "spec" / "vectors" / "valid" / "q1_grey_ctx.dcq"
    code = ("import sys; from dcqformat.cli import main; sys.stdout = open(1, 'w', buffering=1, "
            "closefd=False); sys.exit(main(['info', sys.argv[1]]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(vector)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the first line written meets a broken pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err


@pytest.mark.parametrize("text, limit", [("0", None), ("00", None), ("-0", None), ("none", None),
                                         ("NONE", None), ("7", 7)])
def test_max_pixels_flag_spellings(text: str, limit: int | None) -> None:
    """``--max-pixels`` 0 in any spelling (``00``, ``-0``) or ``none`` is no limit."""
    from dcqformat.cli import build_parser

    args = build_parser().parse_args(["info", "x.dcq", "--max-pixels", text])
    assert args.max_pixels == limit
