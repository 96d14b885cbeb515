"""Engine-agnostic scale-out: ``convert --fit-only``, ``--state --shard i/N`` and ``merge``
give the single-process file (issue #8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_encode_support import QUICK, make_folder

from dcqformat.cli import main
from dcqformat.encode.features import standardize
from dcqformat.encode.pipeline import convert
from dcqformat.encode.stages import write as write_stage
from dcqformat.encode.state import (
    FitState,
    Share,
    apply_moments,
    expand_runs,
    feature_moments,
    parse_shard,
    position_runs,
)
from dcqformat.errors import InvalidArgumentError, StructureError
from dcqformat.format.merge import ShardMismatchError, merge_shards
from dcqformat.format.reader import DCQFile

KW = {**QUICK, "threads": 1, "batch_size": 4}  # 18 images -> 5 blocks of 4 positions


def same_content(a: DCQFile, b: DCQFile) -> None:
    """Pixels, labels, clusters, order, palettes and sources are identical."""
    assert len(a) == len(b)
    assert np.array_equal(a.palettes, b.palettes)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.clusters, b.clusters)
    assert a.source_paths == b.source_paths
    assert np.array_equal(a.source_sizes, b.source_sizes)
    for i in range(len(a)):
        assert np.array_equal(a[i][0], b[i][0]), f"sample {i} decodes differently"


def provenance_differs_only_as_documented(single: dict[str, Any], merged: dict[str, Any]) -> None:
    assert set(merged) - set(single) == {"scale_out"}
    for key in single:
        if key == "quality":  # mean = sum of shard sums / N: float rounding only
            assert merged[key]["psnr_min_db"] == single[key]["psnr_min_db"]
            assert merged[key]["psnr_mean_db"] == pytest.approx(single[key]["psnr_mean_db"], abs=1e-9)
        else:
            assert merged[key] == single[key], key


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("shards")
    src = make_folder(base / "src", per_class=6)
    convert(src, base / "single.dcq", **KW)
    fit = convert(src, base / "state.npz", fit_only=True, **KW)
    state = FitState.load(base / "state.npz")
    for i in range(2):
        convert(src, base / f"s{i}.dcq", state=state, shard=f"{i}/2", **{**KW, **state.convert_kwargs()})
    return {"base": base, "src": src, "state": state, "fit": fit}


def test_fit_shards_merge_equals_single_process(runs: dict[str, Any]) -> None:
    base = runs["base"]
    out = merge_shards([base / "s1.dcq", base / "s0.dcq"], base / "merged.dcq")  # any order
    single, merged = DCQFile(base / "single.dcq"), DCQFile(base / "merged.dcq")
    same_content(single, merged)
    assert out.images == 18 and out.shards == 2
    provenance_differs_only_as_documented(single.provenance, merged.provenance)
    assert merged.provenance["scale_out"]["mode"] == "fit-state"
    merged.verify()
    # each shard is a valid .dcq on its own, holding its blocks of 4 listing positions
    s0, s1 = DCQFile(base / "s0.dcq"), DCQFile(base / "s1.dcq")
    assert len(s0) + len(s1) == 18 and (len(s0), len(s1)) == (10, 8)
    assert list(expand_runs(s1.provenance["shard"]["positions"])) == [4, 5, 6, 7, 12, 13, 14, 15]


def test_fit_state_file(runs: dict[str, Any]) -> None:
    st: FitState = runs["state"]
    assert st.palettes.shape == (3, 4, 3) and st.centroids is not None
    assert st.centroids.shape[0] == 3 and st.feature_mean is not None
    assert st.model_state is not None and "stem.0.weight" in st.model_state
    assert st.meta["images"] == 18 and st.meta["fit_sha256"] == st.digest()
    single = DCQFile(runs["base"] / "single.dcq")
    assert np.array_equal(st.palettes, single.palettes)  # the fit's palettes are the file's
    assert st.meta["model"]["sha256"] == single.provenance["model"]["sha256"]
    assert "fit state" in runs["fit"].format()


def test_edited_state_is_refused(runs: dict[str, Any], tmp_path: Path) -> None:
    st: FitState = runs["state"]
    bad = FitState(dict(st.meta), st.palettes.copy(), st.feature_mean, st.feature_std,
                   st.centroids, st.model_state)
    bad.save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["palettes"] = arrays["palettes"] ^ 1
    np.savez(tmp_path / "edited.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(StructureError, match="fit_sha256"):
        FitState.load(tmp_path / "edited.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(StructureError, match="not a dcqformat fit state"):
        FitState.load(tmp_path / "junk.npz")


def test_shard_rerun_after_a_failure(runs: dict[str, Any], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    st: FitState = runs["state"]
    kw = {**KW, **st.convert_kwargs()}

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("injected failure")

    with monkeypatch.context() as m:
        m.setattr(write_stage, "assign_batch", boom)
        with pytest.raises(RuntimeError, match="injected"):
            convert(runs["src"], tmp_path / "s1.dcq", state=st, shard="1/2", **kw)
    assert list(tmp_path.iterdir()) == []  # nothing under the shard's name, no temp files
    convert(runs["src"], tmp_path / "s1.dcq", state=st, shard="1/2", **kw)
    same_content(DCQFile(runs["base"] / "s1.dcq"), DCQFile(tmp_path / "s1.dcq"))
    assert DCQFile(runs["base"] / "s1.dcq").provenance == DCQFile(tmp_path / "s1.dcq").provenance


def test_merge_refuses_shards_that_do_not_belong_together(runs: dict[str, Any], tmp_path: Path) -> None:
    base = runs["base"]
    with pytest.raises(ShardMismatchError, match=r"missing \[1\]"):
        merge_shards([base / "s0.dcq"], tmp_path / "m.dcq")
    with pytest.raises(ShardMismatchError, match=r"repeated \[0\]"):
        merge_shards([base / "s0.dcq", base / "s0.dcq", base / "s1.dcq"], tmp_path / "m.dcq")
    with pytest.raises(ShardMismatchError, match="is not a shard"):
        merge_shards([base / "single.dcq", base / "s1.dcq"], tmp_path / "m.dcq")
    # a shard of another fit (another seed): different palettes and fit
    other = convert(runs["src"], tmp_path / "st2.npz", fit_only=True, **{**KW, "seed": 1})
    st2 = FitState.load(other.path)
    convert(runs["src"], tmp_path / "o1.dcq", state=st2, shard="1/2", **{**KW, **st2.convert_kwargs()})
    with pytest.raises(ShardMismatchError, match="parameters|palettes|fit"):
        merge_shards([base / "s0.dcq", tmp_path / "o1.dcq"], tmp_path / "m.dcq")
    with pytest.raises(InvalidArgumentError, match="exists"):
        merge_shards([base / "s0.dcq", base / "s1.dcq"], base / "single.dcq")
    with pytest.raises(InvalidArgumentError, match="is one of the shards"):
        merge_shards([base / "s0.dcq", base / "s1.dcq"], base / "s1.dcq", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o1.dcq", "st2.npz"]  # no partial output


def test_scale_out_arguments_are_checked(runs: dict[str, Any], tmp_path: Path) -> None:
    st: FitState = runs["state"]
    src = runs["src"]
    with pytest.raises(InvalidArgumentError, match="parameters differ.*bits"):
        convert(src, tmp_path / "x.dcq", state=st, shard="0/2", **{**KW, **st.convert_kwargs(), "bits": 3})
    with pytest.raises(InvalidArgumentError, match="needs a fit state"):
        convert(src, tmp_path / "x.dcq", shard="0/2", **KW)
    with pytest.raises(InvalidArgumentError, match="palette='image'"):
        convert(src, tmp_path / "x.dcq", fit_only=True, **{**KW, "palette": "image"})
    with pytest.raises(InvalidArgumentError, match="holds no readable image"):
        convert(src, tmp_path / "x.dcq", state=st, shard="5/6", **{**KW, **st.convert_kwargs()})
    for bad in ("2/2", "1", "a/b", (1, 0), "-1/3"):
        with pytest.raises(InvalidArgumentError, match="shard must be"):
            parse_shard(bad)
    assert parse_shard("1/4") == (1, 4) and parse_shard((0, 1)) == (0, 1)
    assert not list(tmp_path.iterdir())


def test_cli_fit_shard_merge(runs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, st = runs["src"], tmp_path / "state.npz"
    common = ["--quiet", "--epochs", "1", "--clusters", "3", "--device", "cpu", "--threads", "1",
              "--workers", "1", "--batch-size", "4"]
    # the CLI's proxy settings differ from KW, so this is its own fit; the check is that the
    # three commands compose and that the parameters come from the state
    assert main(["convert", str(src), str(st), "--fit-only", *common]) == 0
    assert "wrote fit state" in capsys.readouterr().out
    for i in range(3):
        assert main(["convert", str(src), str(tmp_path / f"p{i}.dcq"), "--state", str(st),
                     "--shard", f"{i}/3", "--quiet", "--bits", "5"]) == 0  # --bits is overridden
    assert main(["merge", *(str(tmp_path / f"p{i}.dcq") for i in (2, 0, 1)), str(tmp_path / "m.dcq")]) == 0
    assert "18 samples from 3 shard(s)" in capsys.readouterr().out
    f = DCQFile(tmp_path / "m.dcq")
    assert len(f) == 18 and f.bits == 2
    assert np.array_equal(f.palettes, FitState.load(st).palettes)
    assert main(["merge", str(tmp_path / "p0.dcq"), str(tmp_path / "m2.dcq")]) == 2
    assert "missing [1, 2]" in capsys.readouterr().err
    assert not (tmp_path / "m2.dcq").exists()
    assert json.loads(json.dumps(f.provenance["scale_out"]))["shards"] == 3


def test_moments_reproduce_standardize_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(257, 32, generator=g) * torch.linspace(0, 5, 32)  # one constant column
    mean, std = feature_moments(raw)
    assert torch.equal(apply_moments(raw, mean, std), standardize(raw))
    assert torch.equal(apply_moments(raw[100:140], mean, std), standardize(raw)[100:140])


def test_shares_partition_the_listing() -> None:
    shares = [Share(i, 3, 4) for i in range(3)]
    owners = [[s.index for s in shares if s.owns(p)] for p in range(50)]
    assert all(len(o) == 1 for o in owners)
    assert [o[0] for o in owners[:16]] == [0] * 4 + [1] * 4 + [2] * 4 + [0] * 4
    pos = [p for p in range(50) if shares[1].owns(p) and p != 6]
    assert position_runs(pos) == [[4, 6], [7, 8], [16, 20], [28, 32], [40, 44]]
    assert expand_runs(position_runs(pos)).tolist() == pos


def test_nearest_centroid_of_a_share_equals_the_kmeans_labels() -> None:
    """A shard assigns clusters by nearest centroid on its own rows; k-means' labels are the
    nearest centroid over all rows. Different row counts must not change a label."""
    from dcqformat.encode.kmeans import kmeans

    g = torch.Generator().manual_seed(0)
    raw = torch.randn(3000, 32, generator=g) + torch.randint(0, 4, (3000, 1), generator=g) * 1.5
    mean, std = feature_moments(raw)
    res = kmeans(standardize(raw), 20, n_init=2, generator=torch.Generator().manual_seed(1))
    meta = {"clusters_used": 20}
    st = FitState(meta, np.zeros((20, 4, 3), np.uint8), mean.numpy(), std.numpy(),
                  res.centers.numpy())
    share = Share(1, 3, 64)
    rows = [p for p in range(3000) if share.owns(p)]
    _, got = st.assign([raw[rows].numpy()], len(rows), torch.device("cpu"))
    assert torch.equal(got, res.labels[rows])
    _, odd = st.assign([raw[5:6].numpy(), raw[6:37].numpy()], 32, torch.device("cpu"))
    assert torch.equal(odd, res.labels[5:37])
