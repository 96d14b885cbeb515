"""``merge`` on inputs earlier probes did not cover: shards stored smaller (``--scale``, spec
§15 original sizes) and output paths that cannot be resolved (a symlink loop)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_encode_support import QUICK, make_folder

from dcqformat.cli import main
from dcqformat.encode.pipeline import convert
from dcqformat.encode.state import FitState
from dcqformat.errors import DcqError
from dcqformat.format.merge import merge_shards
from dcqformat.format.reader import DCQFile

KW: dict[str, Any] = {**QUICK, "threads": 1, "batch_size": 4, "scale": 0.5, "payload_encoding": "ctx"}


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A single-process file and two shards of one fit, every image stored at half its side."""
    base = tmp_path_factory.mktemp("scaled_shards")
    src = make_folder(base / "src", per_class=3)
    convert(src, base / "single.dcq", **KW)
    convert(src, base / "state.npz", fit_only=True, **KW)
    state = FitState.load(base / "state.npz")
    for i in range(2):
        convert(src, base / f"s{i}.dcq", state=state, shard=f"{i}/2", **{**KW, **state.convert_kwargs()})
    return {"base": base}


def test_merge_keeps_the_original_sizes(scaled: dict[str, Any]) -> None:
    """The merged file records every sample's size before ``--scale`` like the single-process
    file (it dropped them: version 1.2, original_shape == the stored shape)."""
    base = scaled["base"]
    merge_shards([base / "s0.dcq", base / "s1.dcq"], base / "merged.dcq")
    single, merged = DCQFile(base / "single.dcq"), DCQFile(base / "merged.dcq")
    assert len(merged) == len(single) and merged.version == single.version == (1, 3)
    assert merged.shape(0)[0] * 2 == merged.original_shape(0)[0]
    for i in range(len(single)):
        assert merged.original_shape(i) == single.original_shape(i), i
        assert np.array_equal(merged[i][0], single[i][0]), i
    merged.verify()


def test_merge_to_a_symlink_loop(scaled: dict[str, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An output path that is a symlink loop is a name that exists: refused without --force,
    replaced (the link itself, as ``mv`` does) with it; a shard that is one is a DcqError.
    Each of these raised RuntimeError from Path.resolve before."""
    base = scaled["base"]
    loop = tmp_path / "loop.dcq"
    os.symlink(loop, loop)
    shards = [base / "s0.dcq", base / "s1.dcq"]
    with pytest.raises(DcqError, match="loop.dcq"):
        merge_shards([*shards, loop], tmp_path / "m.dcq")
    assert main(["merge", *map(str, shards), str(loop)]) == 2
    assert "exists" in capsys.readouterr().err
    assert os.path.islink(loop) and sorted(p.name for p in tmp_path.iterdir()) == ["loop.dcq"]
    assert main(["merge", *map(str, shards), str(loop), "--force"]) == 0
    assert not os.path.islink(loop) and len(DCQFile(loop)) == len(DCQFile(base / "single.dcq"))
