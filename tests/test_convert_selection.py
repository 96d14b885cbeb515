"""convert() with --dedup / --coreset / --keep-all (issue #5): what is stored, in which order,
and whether the stored selections agree with the file's samples and with DCQDataset."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_encode_support import QUICK, make_folder

from dcqformat.encode.pipeline import convert
from dcqformat.encode.scan import scan_image_folder
from dcqformat.encode.selection_stage import parse_coreset, parse_dedup
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.info import format_report
from dcqformat.format.reader import DCQFile

FAST = {**QUICK, "threads": 1}
METHODS = ("bgfdq", "semred", "el2n", "random")
PER_CLASS = 6

# Planted duplicates: (new file, copied from, how)
PLANTED = (
    ("astronaut/100.png", "astronaut/000.png", "exact"),
    ("astronaut/101.png", "astronaut/001.png", "upscaled"),
    ("chelsea/102.png", "coffee/002.png", "exact, other class"),
)


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_folder(tmp_path_factory.mktemp("sel") / "src", per_class=PER_CLASS,
                       extra_sizes=False)
    for new, old, how in PLANTED:
        if how == "upscaled":
            im = Image.open(root / old)
            im.resize((40, 40), Image.Resampling.BICUBIC).save(root / new)
        else:
            shutil.copyfile(root / old, root / new)
    return root


def _run(src: Path, out: Path, **kw: Any) -> tuple[Any, DCQFile]:
    summary = convert(src, out, **FAST, **kw)
    return summary, DCQFile(out)


@pytest.fixture(scope="module")
def runs(src: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sel_out")
    res: dict[str, Any] = {}
    for m in METHODS:
        res[m] = _run(src, out / f"{m}.dcq", coreset=f"{m}:0.5", dedup="phash:6")
    res["bgfdq-all"] = _run(src, out / "bgfdq-all.dcq", coreset="bgfdq:0.5", dedup="phash:6",
                            keep_all=True)
    res["dedup"] = _run(src, out / "dedup.dcq", dedup="phash:6")
    return res


def _relpaths(src: Path) -> list[str]:
    return [e.relpath for e in scan_image_folder(src).entries]


def test_dedup_finds_the_planted_groups_and_the_conflict(runs: dict[str, Any]) -> None:
    summary, f = runs["dedup"]
    attrs = f.selections["dedup"]["attrs"]
    groups = {frozenset(g["members"]) for g in attrs["groups"]}
    for new, old, _ in PLANTED:
        assert frozenset({new, old}) in groups
    conflicts = [attrs["groups"][i] for i in attrs["conflicts"]]
    assert [sorted(g["members"]) for g in conflicts] == [["chelsea/102.png", "coffee/002.png"]]
    assert sorted(conflicts[0]["kept"]) == ["chelsea/102.png", "coffee/002.png"]  # one per class
    # one of each same-class pair is dropped, nothing else
    assert len(f) == 3 * PER_CLASS + len(PLANTED) - 2 == summary.images
    paths = f.source_paths
    assert ("astronaut/000.png" in paths) != ("astronaut/100.png" in paths)
    assert summary.selection["dedup"]["conflicts"] == 1
    assert "cross-class conflict" in summary.format()
    text = format_report(f.info())
    assert "selection dedup" in text and "conflict: " in text and "chelsea/102.png" in text


@pytest.mark.parametrize("method", METHODS)
def test_each_coreset_stores_exactly_its_selection(runs: dict[str, Any], method: str) -> None:
    summary, f = runs[method]
    sel = f.selections[method]
    attrs = sel["attrs"]
    # without keep_all the file holds the coreset, and the selection is all of it
    assert np.array_equal(np.asarray(sel["selected"]), np.arange(len(f)))
    assert attrs["method"] == method and attrs["params"]["ratio"] == 0.5
    counts = np.bincount(np.asarray(f.labels), minlength=3)
    assert {int(k): v for k, v in attrs["per_class_counts"].items()} == dict(enumerate(counts.tolist()))
    # 0.5 of the de-duplicated 6 / 7 / 6 per class (el2n: equal per class, 10 in all)
    assert len(f) == summary.images == 10
    if method != "el2n":
        assert counts.tolist() == [3, 4, 3]
    assert (attrs["model_identity"] is None) == (method == "random")
    if method in ("bgfdq", "semred", "el2n"):
        assert attrs["model"]["kind"] == "proxy" and attrs["model"]["sha256"]
    # no duplicate pair survives both stages
    paths = set(f.source_paths)
    assert not {"astronaut/000.png", "astronaut/100.png"} <= paths
    # the dedup selection is stored too, over the same samples
    assert np.array_equal(np.asarray(f.selections["dedup"]["selected"]), np.arange(len(f)))
    f.verify()


def test_keep_all_stores_everything_and_the_indices_agree(runs: dict[str, Any], src: Path) -> None:
    _, f_sub = runs["bgfdq"]
    _, f_all = runs["bgfdq-all"]
    rel = _relpaths(src)
    assert f_all.source_paths == rel  # every readable image, canonical order
    sel = np.asarray(f_all.selections["bgfdq"]["selected"])
    # the stored indices point at the same source images the subset file holds
    assert [f_all.source_paths[i] for i in sel] == f_sub.source_paths
    assert np.array_equal(np.asarray(f_all.labels)[sel], np.asarray(f_sub.labels))
    # same ranking, re-expressed in each file's order
    r_all = np.asarray(f_all.selections["bgfdq"]["ranking"])
    r_sub = np.asarray(f_sub.selections["bgfdq"]["ranking"])
    assert [f_all.source_paths[i] for i in r_all] == [f_sub.source_paths[i] for i in r_sub]
    # dedup with keep_all: everything but the two dropped same-class copies
    d = np.asarray(f_all.selections["dedup"]["selected"])
    assert len(d) == len(f_all) - 2
    assert set(sel) <= set(d)
    # the kept members' stored_index points at them
    for g in f_all.selections["dedup"]["attrs"]["groups"]:
        for m, j in zip(g["members"], g["stored_index"], strict=True):
            assert f_all.source_paths[j] == m


def test_dataset_selection_matches_the_stored_selection(runs: dict[str, Any]) -> None:
    from dcqformat.torch.dataset import DCQDataset

    _, f_all = runs["bgfdq-all"]
    sel = np.asarray(f_all.selections["bgfdq"]["selected"])
    ds = DCQDataset(f_all.path, selection="bgfdq")
    assert len(ds) == len(sel)
    assert ds.targets == np.asarray(f_all.labels)[sel].tolist()
    img, _ = ds[0]
    dec, _ = f_all[int(sel[0])]
    assert np.array_equal(img.permute(1, 2, 0).numpy(), dec)
    prev: set[int] = set()
    for frac in (0.2, 0.3, 0.45):
        idx = f_all.selection_indices("bgfdq", frac)
        part = DCQDataset(f_all.path, selection="bgfdq", fraction=frac)
        assert part.targets == np.asarray(f_all.labels)[idx].tolist()
        assert set(idx.tolist()) <= set(sel.tolist()) and prev <= set(idx.tolist())  # nested
        per_class = np.bincount(np.asarray(f_all.labels)[idx], minlength=3)
        assert per_class.max() - per_class.min() <= 1  # class-balanced prefix
        prev = set(idx.tolist())


def test_unused_palettes_are_dropped(runs: dict[str, Any]) -> None:
    for m in METHODS:
        _, f = runs[m]
        used = np.unique(np.asarray(f.clusters))
        assert used.tolist() == list(range(f.palettes.shape[0]))


def test_selection_is_deterministic_and_does_not_change_training(src: Path, tmp_path: Path,
                                                                 runs: dict[str, Any]) -> None:
    _, f1 = runs["el2n"]
    _, f2 = _run(src, tmp_path / "again.dcq", coreset="el2n:0.5", dedup="phash:6")
    assert f1.source_paths == f2.source_paths
    assert np.array_equal(f1.selections["el2n"]["ranking"], f2.selections["el2n"]["ranking"])
    # the EL2N epoch hook does not touch the proxy: same model as a run without it
    _, f3 = runs["random"]
    assert f1.provenance["model"]["sha256"] == f3.provenance["model"]["sha256"]


@pytest.mark.parametrize("kw", [
    {"coreset": "bgfdq:1.5"}, {"coreset": "foo:0.1"}, {"coreset": "bgfdq"}, {"coreset": "bgfdq:x"},
    {"coreset": "random:0"}, {"dedup": "phash:-1"}, {"dedup": "phash:64"}, {"dedup": "md5:3"},
    {"dedup": "phash:3:rotate"}, {"dedup": 5}, {"keep_all": "yes"},
    {"coreset": "el2n:0.3", "epochs": 0},
])
def test_bad_specs_are_refused_before_anything_is_written(src: Path, tmp_path: Path,
                                                          kw: dict[str, Any]) -> None:
    out = tmp_path / "x.dcq"
    args = {**FAST, **kw}
    with pytest.raises(InvalidArgumentError):
        convert(src, out, **args)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_spec_parsing() -> None:
    assert parse_coreset("BGFDQ:0.3") is not None
    c = parse_coreset(" semred : 1 ")
    assert c is not None and (c.method, c.ratio) == ("semred", 1.0)
    d = parse_dedup("dhash:0:flip")
    assert d is not None and (d.hash, d.threshold, d.mirror) == ("dhash", 0, True)
    assert parse_coreset(None) is None and parse_dedup(None) is None


def test_cli_flags_reach_convert(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dcqformat.cli import main

    out = tmp_path / "cli.dcq"
    rc = main(["convert", str(src), str(out), "--coreset", "random:0.3", "--dedup", "ahash:2",
               "--keep-all", "--quiet", "--epochs", "1", "--clusters", "2", "--threads", "1",
               "--workers", "1", "--no-refine"])
    assert rc == 0
    f = DCQFile(out)
    assert len(f) == 3 * PER_CLASS + len(PLANTED)
    assert set(f.selections) == {"random", "dedup"}
    assert "coreset random:0.3" in capsys.readouterr().out
    rc = main(["info", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "selection random:" in text and "per class:" in text


def test_register_parses_the_flags() -> None:
    from dcqformat.encode.cli_commands import options_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    a = parser.parse_args(["convert", "s", "d", "--coreset", "bgfdq:0.3", "--dedup", "phash:8"])
    o = options_from_args(a)
    assert (o["coreset"], o["dedup"], o["keep_all"]) == ("bgfdq:0.3", "phash:8", False)


def test_per_image_palettes_keep_only_the_stored_images_palettes(src: Path, tmp_path: Path) -> None:
    s, f = _run(src, tmp_path / "img.dcq", coreset="random:0.25", palette="image", refine=False,
                attention=False)
    assert len(f) == s.images == f.palettes.shape[0] == s.palettes
    assert sorted(np.asarray(f.clusters).tolist()) == list(range(len(f)))
    assert f.selections["random"]["attrs"]["model_identity"] is None
