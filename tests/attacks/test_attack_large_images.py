"""Attack class 8 of issue #15: large images. A 9000x9000 image used to need more than 3.2 GB
resident. The encoder now works on large images in bounded pieces: LAB conversion only of the
pixels the per-image k-means samples, index assignment in rows of pixels, exact integer MSE in
chunks, analyse/write batches cut by a pixel budget and a prefetch window sized in pixels. Each
piece must give exactly what the unbounded computation gives; these tests force the bounded
paths on small images and compare. (The memory itself is measured by
``benchmarks/large_image.py``, not asserted here.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from dcqformat.encode import assign  # noqa: E402
from dcqformat.encode.assign import assign_batch, palette_to_working  # noqa: E402
from dcqformat.encode.pipeline import convert  # noqa: E402
from dcqformat.encode.stages import analyse, context, write  # noqa: E402
from dcqformat.encode.stages.write import mse_uint8  # noqa: E402
from dcqformat.format.reader import DCQFile  # noqa: E402


def _folder(root: Path) -> Path:
    from skimage import data

    rng = np.random.default_rng(0)
    for name, img in (("astronaut", data.astronaut()), ("coffee", data.coffee())):
        for i in range(3):
            side = int(rng.integers(90, 130))
            y, x = (int(v) for v in rng.integers(0, 200, 2))
            crop = Image.fromarray(img[y:y + 300, x:x + 300]).resize((side, side + 7))
            (root / name).mkdir(parents=True, exist_ok=True)
            crop.save(root / name / f"{i}.png")
    return root


def _decoded(path: Path) -> tuple[str, bytes, list[int]]:
    with DCQFile(path) as f:
        h = hashlib.sha256()
        for i in range(len(f)):
            h.update(f.decode(i).tobytes())
        return h.hexdigest(), f.palettes.tobytes(), np.asarray(f.clusters).tolist()


def test_the_bounded_paths_give_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    src = _folder(tmp_path / "src")
    kw = dict(epochs=1, clusters=2, refine_steps=2, progress=False, device="cpu", threads=1,
              workers=2, max_points_per_image=500)
    convert(src, tmp_path / "plain.dcq", **kw)
    monkeypatch.setattr(analyse, "LARGE_GROUP_PIXELS", 1000)  # every group takes the sampled path
    monkeypatch.setattr(write, "BATCH_PIXELS", 30_000)        # write batches cut by pixels
    monkeypatch.setattr(context, "PREFETCH_PIXELS", 20_000)   # one image in flight
    monkeypatch.setattr(assign, "_CHUNK_ELEMENTS", 4096)      # assignment in rows of pixels
    convert(src, tmp_path / "bounded.dcq", **kw)
    assert _decoded(tmp_path / "plain.dcq") == _decoded(tmp_path / "bounded.dcq")


def test_analyse_batches_cut_by_pixels_are_deterministic(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Cutting an analyse block changes which images share a batched k-means (so palettes
    may differ from an uncut run), but the cut depends only on the images' sizes: two runs, or
    any sharding, give the same file."""
    src = _folder(tmp_path / "src")
    kw = dict(epochs=1, clusters=2, refine_steps=2, progress=False, device="cpu", threads=1,
              workers=0, max_points_per_image=500)
    monkeypatch.setattr(analyse, "BATCH_PIXELS", 30_000)
    convert(src, tmp_path / "a.dcq", **kw)
    convert(src, tmp_path / "b.dcq", **{**kw, "workers": 2})
    assert _decoded(tmp_path / "a.dcq") == _decoded(tmp_path / "b.dcq")
    DCQFile(tmp_path / "a.dcq").verify()


def test_row_tiled_assignment_equals_whole_image_assignment(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 61, 37, 3), dtype=np.uint8)
    pal = palette_to_working(rng.integers(0, 256, (2, 16, 3), dtype=np.uint8))
    whole = assign_batch(images, pal)
    monkeypatch.setattr(assign, "_CHUNK_ELEMENTS", 37 * 16 * 3 * 5)  # 5 rows at a time
    assert np.array_equal(assign_batch(images, pal), whole)


def test_chunked_mse_is_exact() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (53, 47, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (53, 47, 3), dtype=np.uint8)
    want = float(np.mean((a.astype(np.float64) - b) ** 2))
    assert mse_uint8(a, b) == want and mse_uint8(a, b, chunk=11) == want


@pytest.mark.parametrize("shape", [(300, 200), (97, 1000), (1001, 33)])
def test_banded_resize_equals_one_interpolate(shape: tuple[int, int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.nn.functional as F

    from dcqformat.encode import resize

    monkeypatch.setattr(resize, "BAND_PIXELS", 5000)
    grey = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    convs = [(3, lambda t: t.float().div_(255.0)),
             (3, lambda t: (t.float().div_(255.0) * grey).sum(1, keepdim=True)),
             (1, lambda t: t.float().div_(255.0).expand(-1, 3, -1, -1))]
    for channels, to_float in convs:
        x = torch.randint(0, 256, (2, channels, *shape), dtype=torch.uint8)
        for size in ((32, 32), (24, 40)):
            want = F.interpolate(to_float(x), size=size, mode="bilinear", align_corners=False,
                                 antialias=True)
            assert torch.equal(resize.resize_aa(x, size, to_float), want)


def test_strip_conversion_equals_whole_image_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcqformat.encode import images

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (57, 41, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (57, 41), dtype=np.uint8)
    cases = {"RGB": Image.fromarray(rgb), "RGBA": Image.fromarray(np.dstack([rgb, alpha])),
             "L": Image.fromarray(rgb[..., 0]), "LA": Image.fromarray(rgb[..., :2]),
             "P": Image.fromarray(rgb).convert("P"), "1": Image.fromarray(rgb[..., 0]).convert("1"),
             "I;16": Image.fromarray(rgb[..., 0].astype(np.uint16) * 257),
             "F": Image.fromarray(rgb[..., 0].astype(np.float32) / 255),
             "CMYK": Image.fromarray(rgb).convert("CMYK")}
    keyed = Image.fromarray(rgb).convert("P")
    keyed.info["transparency"] = 3
    cases["P+tRNS"] = keyed
    monkeypatch.setattr(images, "STRIP_PIXELS", 100)
    for bg in ((255, 255, 255), (10, 20, 30), (50, 50, 50)):
        for mode, im in cases.items():
            whole = images._to_array(im, bg)  # noqa: SLF001 (the rule the strips must equal)
            assert np.array_equal(images._to_array_in_strips(im, bg), whole), (mode, bg)


def test_partition_threshold_gives_the_kthvalue_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    from dcqformat.encode import gradcam

    gen = torch.Generator().manual_seed(0)
    for t in range(40):
        g, n = 1 + t % 3, 50 + 37 * t
        x = torch.rand(g, 1, n, generator=gen)
        if t % 2:
            x = (x * 4).floor()  # many ties at the threshold
        if t % 5 == 0:
            x[0, 0, : n // 2] = 0.0
            x[0, 0, 0] = -0.0
        want = gradcam.top_fraction_masks(x, 0.37, torch.Generator().manual_seed(t))
        monkeypatch.setattr(gradcam, "PARTITION_MIN_PIXELS", 0)
        got = gradcam.top_fraction_masks(x, 0.37, torch.Generator().manual_seed(t))
        monkeypatch.setattr(gradcam, "PARTITION_MIN_PIXELS", 1 << 22)
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])
