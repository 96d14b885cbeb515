"""palette_choice="best" (ours): each image uses whichever of the C palettes fits it best."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_encode_support import QUICK, make_folder

from dcqformat.encode.assign import palette_to_working, pixels_to_working
from dcqformat.encode.pipeline import convert
from dcqformat.encode.stages.write import CHOICE_MAX_PIXELS, best_palettes
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.reader import DCQFile


def _errors_reference(img: np.ndarray, palettes: np.ndarray) -> np.ndarray:
    """NumPy: per palette, the summed squared working-space distance of the strided pixels to
    their nearest palette colour."""
    x = pixels_to_working(img).numpy().astype(np.float64)
    x = x[:: max(1, -(-len(x) // CHOICE_MAX_PIXELS))]
    pw = palette_to_working(palettes).numpy().astype(np.float64)  # [G, K, C]
    d = ((x[None, :, None, :] - pw[:, None, :, :]) ** 2).sum(-1)  # [G, P, K]
    return d.min(-1).sum(-1)


def test_best_palettes_picks_the_fitting_palette_and_breaks_ties_low() -> None:
    red, blue = [255, 0, 0], [0, 0, 255]
    pals = np.array([[blue, [0, 0, 0]], [red, [0, 0, 0]], [red, [0, 0, 0]]], np.uint8)
    imgs = np.array([np.full((3, 5, 3), red), np.full((3, 5, 3), blue)], np.uint8)
    assert best_palettes(imgs, palette_to_working(pals)) == [1, 0]  # 1 and 2 tie: lowest wins


@pytest.mark.parametrize("grey", [False, True])
def test_convert_best_choice_stores_the_argmin_palette(tmp_path: Path, grey: bool) -> None:
    src = make_folder(tmp_path / "src", per_class=4, grey=grey)
    kw = {**QUICK, "threads": 1, "bits": 1}
    convert(src, tmp_path / "c.dcq", palette_choice="cluster", **kw)
    convert(src, tmp_path / "b.dcq", **kw)  # the default
    c, b = DCQFile(tmp_path / "c.dcq"), DCQFile(tmp_path / "b.dcq")
    np.testing.assert_array_equal(b.palettes, c.palettes)  # the fit is unchanged
    assert b.provenance["parameters"]["palette_choice"] == "best"
    files = sorted(p for p in src.rglob("*.png"))
    assert len(files) == len(b) and b.source_paths is not None
    from dcqformat.encode.images import load_image, to_channels

    for i in range(len(b)):
        img = to_channels(load_image(src / b.source_paths[i]), b.channels)
        errs = _errors_reference(img, b.palettes.copy())
        assert int(b.clusters[i]) == int(np.argmin(errs)), i
        assert errs[int(b.clusters[i])] <= errs[int(c.clusters[i])] * (1 + 1e-5)
    assert b.provenance["quality"]["psnr_mean_db"] >= c.provenance["quality"]["psnr_mean_db"] - 1e-6


def test_palette_choice_is_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="palette_choice"):
        convert(tmp_path, tmp_path / "x.dcq", palette_choice="nearest")
