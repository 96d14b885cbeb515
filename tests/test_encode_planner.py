"""The byte-budget planner (issue #14): budgets, sampling, byte predictions, the chosen plan,
the file never over the budget, --plan-only writing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_encode_support import make_folder

from dcqformat.encode.planner.budget import format_bytes, parse_budget
from dcqformat.encode.planner.choose import PlanSettings, make_plan
from dcqformat.encode.planner.measure import Measured, stratified_split
from dcqformat.encode.planner.plans import Plan, candidate_grid
from dcqformat.encode.planner.run import convert_within_budget
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile

FAST = dict(epochs=1, refine_steps=2, refine_images=2, proxy_resolution=16, device="cpu",
            threads=1, workers=0)
TINY = PlanSettings(sample=24, test=12, evaluate=3, resolution=16, epochs=2)
GRID = [Plan("cluster", 3, q, s, f) for q in (1, 2) for s in (1.0, 0.5) for f in (1.0, 0.5)]


def test_budget_units() -> None:
    assert parse_budget("400KB") == 400_000 and parse_budget("400KiB") == 409_600
    assert parse_budget("1.5GB") == 1_500_000_000 and parse_budget(" 7 b ") == 7
    assert parse_budget(12345) == 12345 and format_bytes(1_234_567) == "1.23 MB"
    for bad in ("", "x", "0", "-2KB", "3 XB", True, 0):
        with pytest.raises(InvalidArgumentError, match="budget"):
            parse_budget(bad)


def test_the_grid_spans_every_lever() -> None:
    grid = candidate_grid()
    assert {p.palette for p in grid} == {"cluster", "image"}
    assert {p.clusters for p in grid if p.palette == "cluster"} == {20, 64}
    assert len({p.encoding_key for p in grid}) == 28 and len(grid) == 84
    assert {p.bits for p in grid} == {1, 2, 3, 4} and {p.scale for p in grid} == {1.0, 0.75, 0.5}
    assert {p.fraction for p in grid} == {1.0, 0.5, 0.25}
    assert any(p.patch_drop == "spd" for p in grid)
    kw = Plan("cluster", 20, 2, 0.5, 0.25).convert_kwargs()
    assert kw == {"bits": 2, "palette": "cluster", "clusters": 20, "scale": 0.5,
                  "patch_drop": None, "coreset": "bgfdq:0.25"}


def test_stratified_split_is_disjoint_and_keeps_every_class() -> None:
    labels = np.repeat(np.arange(5), [50, 10, 3, 100, 1])
    train, test = stratified_split(labels, 40, 20, seed=3)
    assert not set(train) & set(test)
    assert set(labels[train]) == set(range(5))
    again = stratified_split(labels, 40, 20, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])


def test_prediction_scales_with_kept_images() -> None:
    m = Measured(Plan(), images=100, file_bytes=0, payload_mean=200.0, payload_std=50.0,
                 per_sample=20.0, fixed=5000.0, seconds=0.0)
    full, err = m.predict(1000, 1.0)
    half, err_half = m.predict(1000, 0.5)
    assert full == 5000 + 1000 * 220 and half == 5000 + 500 * 236
    assert err == pytest.approx(1.96 * 1000 * 50 / 10) and err_half == pytest.approx(err / 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("plan") / "src", per_class=14, extra_sizes=False)


def test_plan_measures_and_chooses_within_the_budget(folder: Path) -> None:
    report = make_plan(folder, "60KB", settings=TINY, grid=GRID, **FAST)
    assert len(report.candidates) == len(GRID) and report.chosen is not None
    assert report.chosen.fits and report.chosen.estimate is not None
    assert report.chosen.bytes + report.chosen.error <= 60_000
    assert 1 <= len(report.finalists()) <= 3
    assert "**chosen**" in report.table()
    json.dumps(report.record())


def test_the_written_file_is_within_the_budget_and_records_its_plan(folder: Path,
                                                                   tmp_path: Path) -> None:
    dst = tmp_path / "b.dcq"
    res = convert_within_budget(folder, dst, "60KB", settings=TINY, grid=GRID, **FAST)
    assert res.summary is not None and dst.stat().st_size <= 60_000
    assert [p.name for p in tmp_path.iterdir()] == ["b.dcq"]  # no temporary file left
    prov = DCQFile(dst).provenance
    assert prov["budget_plan"]["budget"] == 60_000
    assert prov["budget_plan"]["chosen"]["name"] == res.report.chosen.plan.name()  # type: ignore[union-attr]
    assert res.tried and res.tried[-1]["fits"]


def test_an_impossible_budget_fails_and_writes_nothing(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no plan fits"):
        convert_within_budget(folder, tmp_path / "x.dcq", "2KB", settings=TINY, grid=GRID, **FAST)
    assert not list(tmp_path.iterdir())


def test_cli_plan_only_prints_the_table_and_writes_nothing(folder: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from dcqformat.cli import main

    rc = main(["convert", str(folder), str(tmp_path / "x.dcq"), "--budget", "60KB",
               "--plan-only", "--plan-sample", "24", "--plan-evaluate", "2", "--quiet",
               "--epochs", "1", "--device", "cpu", "--threads", "1", "--workers", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "| plan | bytes (predicted)" in out and "**chosen**" in out
    assert not list(tmp_path.iterdir())


def test_scale_stores_smaller_images(folder: Path, tmp_path: Path) -> None:
    from dcqformat.encode.pipeline import convert

    s = convert(folder, tmp_path / "half.dcq", scale=0.5, clusters=3, **FAST)
    f = DCQFile(tmp_path / "half.dcq")
    assert {f.shape(i)[:2] for i in range(len(f))} == {(16, 16)}  # 32 px sources
    assert f.provenance["parameters"]["scale"] == 0.5 and s.images == len(f)
    with pytest.raises(InvalidArgumentError, match="scale"):
        convert(folder, tmp_path / "x.dcq", scale=0.0, **FAST)
    with pytest.raises(InvalidArgumentError, match="scale"):
        convert(folder, tmp_path / "x.dcq", scale=1.5, **FAST)


def test_patch_dropping_is_never_assumed_to_save_bytes() -> None:
    from dcqformat.encode.planner.choose import _predict  # noqa: PLC2701 (the rule itself)

    drop, plain = Plan(bits=3, patch_drop="spd"), Plan(bits=3)
    small = Measured(drop, 100, 0, 100.0, 10.0, 10.0, 1000.0, 0.0)
    big = Measured(plain, 100, 0, 300.0, 30.0, 10.0, 1000.0, 0.0)
    measured = {drop.encoding_key: small, plain.encoding_key: big}
    assert _predict(drop, measured, 1000) == big.predict(1000, 1.0)
    assert _predict(plain, measured, 1000) == big.predict(1000, 1.0)


def test_the_budget_sets_each_encodings_share() -> None:
    from dcqformat.encode.planner.choose import MIN_SHARE, largest_share

    plan = Plan(bits=2)
    m = Measured(plan, images=100, file_bytes=0, payload_mean=200.0, payload_std=0.0,
                 per_sample=20.0, fixed=5000.0, seconds=0.0)
    measured = {plan.encoding_key: m}
    assert largest_share(plan, measured, 1000, 5000 + 1000 * 220) == 1.0
    # just under the full file: 93 % of the images (each kept image costs 236 B with its selection)
    share = largest_share(plan, measured, 1000, 5000 + 1000 * 220 - 1)
    assert share == 0.93 and m.predict(1000, 0.93)[0] <= 225_000 - 1 < m.predict(1000, 0.94)[0]
    assert largest_share(plan, measured, 1000, 5000 + 250 * 236) == MIN_SHARE == 0.25
    assert largest_share(plan, measured, 1000, 5000 + 250 * 236 - 1) is None


def test_an_overshooting_plan_is_retried_with_a_smaller_share() -> None:
    from dcqformat.encode.planner.choose import Candidate
    from dcqformat.encode.planner.run import _cut_share  # noqa: PLC2701 (the rule itself)

    cand = Candidate(Plan(bits=2, fraction=0.9), bytes=90_000, error=1_000, fits=True, estimate=0.5)
    smaller = _cut_share(cand, 110_000, 100_000)
    assert smaller is not None and smaller.plan.fraction == 0.81 and smaller.estimate == 0.5
    assert smaller.bytes * (110_000 / 90_000) + smaller.error <= 100_000
    assert _cut_share(cand, 400_000, 100_000) is None  # below a quarter of the images


@pytest.mark.parametrize("flag,value", [("--plan-sample", "-1"), ("--plan-sample", "0"),
                                        ("--plan-evaluate", "0"), ("--plan-evaluate", "-1")])
def test_cli_plan_counts_below_one_are_refused(folder: Path, tmp_path: Path, flag: str, value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--plan-sample -1 planned on one image per class and --plan-evaluate 0 estimated no
    plan, both silently (exit 0); now an argument error before any work."""
    from dcqformat.cli import main

    rc = main(["convert", str(folder), str(tmp_path / "x.dcq"), "--budget", "60KB", "--plan-only",
               flag, value, "--quiet", "--device", "cpu", "--threads", "1"])
    assert rc == 2 and f"must be >= 1, got plan {flag[7:]}={value}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    with pytest.raises(InvalidArgumentError, match="plan test"):
        PlanSettings(test=0)
