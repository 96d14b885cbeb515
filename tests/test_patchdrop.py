"""Patch dropping in the encoder (docs/method.md §3): parsing, patch importance, λ_C, the fill used
for the feature shift, and convert() with fixed and spd on a tiny ImageFolder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_encode_support import QUICK, make_folder

from dcqformat.encode.patchdrop import (
    SPD_THETAS,
    PatchDropSpec,
    class_lambdas,
    default_patch_size,
    drop_lowest,
    fill_patch_means,
    parse_patch_drop,
    patch_scores,
)
from dcqformat.encode.pipeline import convert
from dcqformat.errors import InvalidArgumentError
from dcqformat.format import masks as M
from dcqformat.format.reader import DCQFile

FAST = {**QUICK, "threads": 1}


def test_parse_patch_drop() -> None:
    assert parse_patch_drop(None) is None and parse_patch_drop("none") is None
    assert parse_patch_drop("fixed:0.25") == PatchDropSpec("fixed", 0.25)
    assert parse_patch_drop("spd") == PatchDropSpec("spd")
    for bad in ("fixed:0", "fixed:1", "fixed:x", "spd:3", "random", 0.25):
        with pytest.raises(InvalidArgumentError, match="patch_drop"):
            parse_patch_drop(bad)
    assert SPD_THETAS == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_default_patch_size() -> None:
    assert default_patch_size([28], [28]) == 4  # Fashion-MNIST: 7x7 grid
    assert default_patch_size([64, 64], [64, 80]) == 8  # emoji64: 8x8
    assert default_patch_size([224], [300]) == 28
    assert default_patch_size([8], [3]) == 4


def test_patch_scores_are_patch_means_of_the_upsampled_map() -> None:
    cam = torch.zeros(1, 2, 2)
    cam[0, 1, 1] = 1.0  # bottom-right hot
    s = patch_scores(cam, (8, 8), 4)
    assert s.shape == (1, 4) and np.argmax(s[0]) == 3 and np.argmin(s[0]) == 0
    up = torch.nn.functional.interpolate(cam[:, None], size=(7, 5), mode="bilinear", align_corners=False)[0, 0]
    got = patch_scores(cam, (7, 5), 4)[0]
    want = [up[:4, :4].mean(), up[:4, 4:].mean(), up[4:, :4].mean(), up[4:, 4:].mean()]  # clipped edges
    assert np.allclose(got, [float(v) for v in want])


def test_drop_lowest_keeps_at_least_one_patch_and_drops_the_lowest() -> None:
    scores = np.array([0.5, 0.1, 0.9, 0.3])
    assert drop_lowest(scores, 0.25).tolist() == [True, False, True, True]
    assert drop_lowest(scores, 0.5).tolist() == [True, False, True, False]
    assert drop_lowest(scores, 0.99).sum() == 1 and drop_lowest(scores, 0.99)[2]
    assert drop_lowest(np.zeros(4), 0.5).tolist() == [False, False, True, True]  # ties: lower g first


def test_class_lambdas_mean_of_smallest_nonzero_pairs() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 5))
    feats[1] = feats[0]  # a zero distance: excluded
    labels = np.array([0] * 25 + [1] * 15)
    lam = class_lambdas(feats, labels, 3, k=7, block=6)  # blocks smaller than a class
    for c in (0, 1):
        x = feats[labels == c]
        d = np.linalg.norm(x[:, None] - x[None], axis=2)[np.triu_indices(len(x), 1)]
        assert lam[c] == pytest.approx(np.sort(d[d > 1e-12])[:7].mean())
    assert lam[2] == 0.0  # an empty class


def test_fill_patch_means() -> None:
    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(1, 5, 6, 3)
    keep = np.array([[True, False, True, False]])
    out = fill_patch_means(img, keep, 4)
    pid = M.patch_ids(5, 6, 4)
    for g in (1, 3):
        assert np.allclose(out[0][pid == g], img[0][pid == g].astype(np.float32).mean(0))
    assert np.array_equal(out[0][pid == 0], img[0][pid == 0])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("pd") / "src", per_class=6)


def _convert(folder: Path, tmp: Path, name: str, **kw: Any) -> tuple[Any, DCQFile]:
    out = tmp / f"{name}.dcq"
    s = convert(folder, out, payload_encoding="raw", **FAST, **kw)
    return s, DCQFile(out)


def test_convert_fixed_drop_stores_a_quarter_fewer_pixels(folder: Path, tmp_path: Path) -> None:
    s0, plain = _convert(folder, tmp_path, "plain")
    s1, f = _convert(folder, tmp_path, "fixed", patch_drop="fixed:0.25")
    assert plain.patch_size is None and f.patch_size == 4  # 32 px images: max(4, 32 // 8)
    assert f.version == (1, 1) and len(f) == len(plain)
    for i in range(len(f)):
        grid = f.patch_mask(i)
        assert (~grid).sum() == round(0.25 * grid.size)
        pm = f.pixel_mask(i)
        a, b = f.decode(i), plain.decode(i)
        assert np.array_equal(a[pm], b[pm])  # same palettes and indices where kept
    assert np.allclose(f.thetas, 0.25)
    # 18 tiny images: HDF5 object headers of /masks dominate the file; the payload shrinks by 1/4
    assert f.metadata.payload_size <= 0.76 * plain.metadata.payload_size
    rep = f.info()["patch_mask"]
    assert rep["kept_patch_fraction"] == pytest.approx(0.75, abs=0.01) and rep["net_bytes_saved"] > 0
    assert s1.patch_drop["mode"] == "fixed" and f.provenance["patch_drop"]["theta"] == 0.25
    assert s1.psnr_mean_db < s0.psnr_mean_db  # dropped patches decode as one colour
    f.verify()


def test_convert_spd_chooses_thetas_from_the_grid(folder: Path, tmp_path: Path) -> None:
    s, f = _convert(folder, tmp_path, "spd", patch_drop="spd", patch_size=8)
    assert f.patch_size == 8
    thetas = f.thetas
    assert thetas is not None
    assert set(np.round(thetas.astype(np.float64), 3).tolist()) <= {0.0, *SPD_THETAS}
    for i in range(len(f)):
        grid = f.patch_mask(i)
        assert (~grid).sum() == min(grid.size - 1, round(float(thetas[i]) * grid.size))
    prov = f.provenance["patch_drop"]
    assert prov["mode"] == "spd" and len(prov["lambda_per_class"]) == 3
    assert all(v > 0 for v in prov["lambda_per_class"])
    assert prov["mean_theta"] == pytest.approx(float(np.mean(thetas)), abs=1e-6)
    assert s.patch_drop["patch_size"] == 8
    f.verify()


def test_convert_refuses_bad_patch_arguments(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="patch_drop"):
        convert(folder, tmp_path / "x.dcq", patch_drop="fixed:1.5", **FAST)
    with pytest.raises(InvalidArgumentError, match="needs patch_drop"):
        convert(folder, tmp_path / "x.dcq", patch_size=4, **FAST)
    with pytest.raises(InvalidArgumentError, match="patch_size"):
        convert(folder, tmp_path / "x.dcq", patch_drop="spd", patch_size=0, **FAST)
    assert not (tmp_path / "x.dcq").exists()


def test_cli_convert_info_and_preview_show_the_masks(folder: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from dcqformat.cli import main

    out = tmp_path / "cli.dcq"
    assert main(["convert", str(folder), str(out), "--bits", "2", "--clusters", "3", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--workers", "1", "--patch-drop", "fixed:0.5",
                 "--patch-size", "16"]) == 0
    assert "patch drop fixed:0.5 (P=16)" in capsys.readouterr().out
    f = DCQFile(out)
    grids = [f.patch_mask(i) for i in range(len(f))]
    assert f.patch_size == 16 and {g.shape for g in grids} == {(2, 2), (2, 3)}  # 32x32 and 32x40
    assert all((~g).sum() == round(0.5 * g.size) for g in grids)
    kept, total = sum(int(g.sum()) for g in grids), sum(g.size for g in grids)
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"patch masks (P=16): kept {kept} of {total} patches" in text and "net" in text
    png = tmp_path / "p.png"
    assert main(["preview", str(out), "-o", str(png), "--n", "4"]) == 0
    assert "patch masks" in capsys.readouterr().out
    grid = np.asarray(Image.open(png))
    assert ((grid == [255, 0, 255]).all(-1)).sum() > 100  # hatched dropped patches are drawn
