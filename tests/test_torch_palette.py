"""Palette-space colour transforms equal the same transform applied to the decoded pixels.

The pixel-space references below follow torchvision's tensor formulas for uint8 images
(float32 blend, clamp to 0..255, truncate to uint8; grey = 0.2989 R + 0.587 G + 0.114 B,
truncated; contrast blends with the image's mean grey level). torchvision is not required."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat import DcqError, DCQFile, DCQWriter
from dcqformat.codecs.palette import decode_into
from dcqformat.torch import (
    DCQDataset,
    PaletteBrightness,
    PaletteColorJitter,
    PaletteCompose,
    PaletteContrast,
    PaletteGrayscale,
    PaletteSaturation,
)
from dcqformat.torch import palette_transforms as PT


# -- pixel-space references (CHW uint8 tensors) ---------------------------------------------------
def ref_blend(img1: torch.Tensor, img2: torch.Tensor, ratio: float) -> torch.Tensor:
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, 255).to(torch.uint8)


def ref_grey(img: torch.Tensor) -> torch.Tensor:
    r, g, b = img.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8).unsqueeze(-3)


def ref_brightness(img: torch.Tensor, f: float) -> torch.Tensor:
    return ref_blend(img, torch.zeros_like(img), f)


def ref_saturation(img: torch.Tensor, f: float) -> torch.Tensor:
    return img if img.shape[-3] == 1 else ref_blend(img, ref_grey(img), f)


def ref_contrast(img: torch.Tensor, f: float) -> torch.Tensor:
    grey = ref_grey(img) if img.shape[-3] == 3 else img
    mean = torch.mean(grey.to(torch.float32), dim=(-3, -2, -1), keepdim=True)
    return ref_blend(img, mean, f)


def ref_grayscale(img: torch.Tensor) -> torch.Tensor:
    return img if img.shape[-3] == 1 else ref_grey(img).expand(img.shape).contiguous()


def decode(indices: np.ndarray, palette: torch.Tensor) -> torch.Tensor:
    """CHW decode of an index map through a [K, ch] palette, with the library's kernel."""
    h, w = indices.shape
    out = np.empty((palette.shape[1], h, w), np.uint8)
    packed = np.ascontiguousarray(indices.reshape(-1))  # q = 8: one byte per index
    assert decode_into(packed, 8, h * w, palette.numpy(), out, True) == 0
    return torch.from_numpy(out)


def counts_of(indices: np.ndarray, k: int) -> torch.Tensor:
    return torch.from_numpy(np.bincount(indices.reshape(-1), minlength=k).astype(np.int64))


case = st.tuples(st.integers(1, 16), st.sampled_from([1, 3]), st.integers(1, 12), st.integers(1, 12),
                 st.integers(0, 2**32 - 1))


def make_case(k: int, ch: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    palette = torch.from_numpy(rng.integers(0, 256, (k, ch), dtype=np.uint8))
    return palette, rng.integers(0, k, (h, w), dtype=np.uint8)


@settings(max_examples=80, deadline=None)
@given(case=case, factor=st.floats(0, 3))
def test_pointwise_transforms_are_exact(case: tuple[int, int, int, int, int], factor: float) -> None:
    palette, idx = make_case(*case)
    img = decode(idx, palette)
    assert torch.equal(decode(idx, PT.adjust_brightness(palette, factor)), ref_brightness(img, factor))
    assert torch.equal(decode(idx, PT.adjust_saturation(palette, factor)), ref_saturation(img, factor))
    assert torch.equal(decode(idx, PT.rgb_to_grayscale(palette)), ref_grayscale(img))


@settings(max_examples=80, deadline=None)
@given(case=case, factor=st.floats(0, 3))
def test_contrast_with_image_center_matches_pixel_space(case: tuple[int, int, int, int, int],
                                                        factor: float) -> None:
    palette, idx = make_case(*case)
    img = decode(idx, palette)
    ours = decode(idx, PT.adjust_contrast(palette, factor, "image", counts_of(idx, palette.shape[0])))
    diff = (ours.int() - ref_contrast(img, factor).int()).abs()
    assert int(diff.max()) <= 1  # float32 summation order of the mean; usually 0


def test_contrast_centers_documented_difference() -> None:
    # One dark colour on almost every pixel, one bright colour on one pixel: the image mean is
    # dark, the unweighted palette mean is mid-grey, so "palette" differs from pixel space.
    palette = torch.tensor([[10, 10, 10], [250, 250, 250]], dtype=torch.uint8)
    idx = np.zeros((8, 8), np.uint8)
    idx[0, 0] = 1
    img = decode(idx, palette)
    exact = decode(idx, PT.adjust_contrast(palette, 0.5, "image", counts_of(idx, 2)))
    assert torch.equal(exact, ref_contrast(img, 0.5))
    assert PT.contrast_center(palette, "palette") == pytest.approx(130, abs=1)
    assert not torch.equal(decode(idx, PT.adjust_contrast(palette, 0.5, "palette")), exact)
    fixed = PT.adjust_contrast(palette, 0.0, 127.5)
    assert fixed.unique().tolist() == [127]
    with pytest.raises(DcqError, match="counts"):
        PT.adjust_contrast(palette, 0.5, "image")
    with pytest.raises(DcqError):
        PT.adjust_contrast(palette, 0.5, "median")


def test_grey_palettes_saturation_and_grayscale_are_identity() -> None:
    palette = torch.arange(0, 256, 64, dtype=torch.uint8).reshape(4, 1)
    assert torch.equal(PT.adjust_saturation(palette, 2.0), palette)
    assert torch.equal(PT.rgb_to_grayscale(palette), palette)
    with pytest.raises(DcqError, match="uint8"):
        PT.adjust_brightness(palette.float(), 1.0)


def test_color_jitter_draws_like_torchvision_and_matches_pixel_space() -> None:
    palette, idx = make_case(8, 3, 10, 11, seed=5)
    img = decode(idx, palette)
    counts = counts_of(idx, 8)
    for seed in range(20):
        jitter = PaletteColorJitter(0.4, 0.4, 0.4, generator=torch.Generator().manual_seed(seed))
        out = decode(idx, jitter(palette, counts=counts))
        # Same draws, in torchvision's order (randperm(4), then b, c, s), applied to pixels.
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(4, generator=g).tolist()
        b, c, s = (float(torch.empty(1).uniform_(0.6, 1.4, generator=g)) for _ in range(3))
        ref = img
        for op in order:
            if op == 0:
                ref = ref_brightness(ref, b)
            elif op == 1:
                ref = ref_contrast(ref, c)
            elif op == 2:
                ref = ref_saturation(ref, s)
        assert int((out.int() - ref.int()).abs().max()) <= 1


def test_random_transforms_use_their_generator() -> None:
    palette, _ = make_case(4, 3, 1, 1, seed=1)
    for cls in (PaletteBrightness, PaletteSaturation):
        a = cls(0.5, generator=torch.Generator().manual_seed(0))
        b = cls(0.5, generator=torch.Generator().manual_seed(0))
        outs_a = [a(palette) for _ in range(5)]
        assert all(torch.equal(x, b(palette)) for x in outs_a)
        assert any(not torch.equal(outs_a[0], x) for x in outs_a[1:])
    grey = PaletteGrayscale(p=1.0)
    assert torch.equal(grey(palette), PT.rgb_to_grayscale(palette))
    assert torch.equal(PaletteGrayscale(p=0.0)(palette), palette)
    assert PaletteContrast(0.5).needs_counts and not PaletteContrast(0.5, center="palette").needs_counts
    assert PaletteCompose([PaletteBrightness(0.1), PaletteContrast(0.2)]).needs_counts
    assert not PaletteColorJitter(brightness=0.3).needs_counts
    assert torch.equal(PaletteBrightness(0)(palette), palette)  # zero range: identity, no draw
    with pytest.raises(DcqError):
        PaletteBrightness(-1)
    with pytest.raises(DcqError):
        PaletteSaturation((1.5, 0.5))
    assert "PaletteContrast" in repr(PaletteContrast(0.5))


# -- through the dataset ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dcq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pal") / "x.dcq"
    rng = np.random.default_rng(0)
    with DCQWriter(path, bits=3, channels=3, classes=["a", "b"], palette_size=6) as w:
        w.set_palettes(rng.integers(0, 256, (2, 6, 3), dtype=np.uint8))
        for i in range(12):
            shape = (7, 9) if i % 3 else (5, 5)
            w.add_sample(rng.integers(0, 6, shape, dtype=np.uint8), cluster=i % 2, label=i % 2)
    return path


def test_dataset_palette_transform_equals_pixel_transform(dcq: Path) -> None:
    f = DCQFile(dcq)
    ds = DCQDataset(dcq, palette_transform=lambda p: PT.adjust_saturation(PT.adjust_brightness(p, 1.3), 0.2))
    for i in range(len(f)):
        img = torch.from_numpy(f.decode(i, "chw"))
        want = ref_saturation(ref_brightness(img, 1.3), 0.2)
        got, y = ds[i]
        assert torch.equal(got, want) and y == int(f.labels[i])
    batch = ds.__getitems__([1, 2, 4])  # same result on the batched path
    assert all(torch.equal(x, ds[i][0]) for i, (x, _) in zip([1, 2, 4], batch, strict=True))
    hwc = DCQDataset(dcq, output="numpy", palette_transform=PT.rgb_to_grayscale)[3][0]
    assert np.array_equal(hwc, ref_grayscale(torch.from_numpy(f.decode(3, "chw"))).permute(1, 2, 0).numpy())


def test_dataset_contrast_uses_index_histogram(dcq: Path) -> None:
    f = DCQFile(dcq)
    seen: list[torch.Tensor] = []

    class Spy(PT.PaletteTransform):
        needs_counts = True

        def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
            assert counts is not None
            seen.append(counts)
            return PT.adjust_contrast(palette, 0.3, "image", counts)

    ds = DCQDataset(dcq, palette_transform=Spy())
    for i in range(len(f)):
        got, _ = ds[i]
        want = ref_contrast(torch.from_numpy(f.decode(i, "chw")), 0.3)
        assert int((got.int() - want.int()).abs().max()) <= 1
        assert int(seen[-1].sum()) == f.shape(i)[0] * f.shape(i)[1] and seen[-1].numel() == 6


def test_decode_with_palette_and_bad_transform(dcq: Path) -> None:
    ds = DCQDataset(dcq)
    f = DCQFile(dcq)
    pal = np.full((6, 3), 7, np.uint8)
    assert (ds.decode_with_palette(0, pal) == 7).all()
    assert ds.decode_with_palette(1, torch.from_numpy(f.palettes[int(f.clusters[1])].copy()),
                                  layout="hwc").tolist() == f.decode(1, "hwc").tolist()
    with pytest.raises(DcqError, match="palette"):
        ds.decode_with_palette(0, np.zeros((6, 1), np.uint8))
    with pytest.raises(DcqError, match=">= the given palette"):  # the reader's message
        ds.decode_with_palette(0, np.zeros((2, 3), np.uint8))  # indices up to 5 need 6 colours
    bad = DCQDataset(dcq, palette_transform=lambda p: p.float())
    with pytest.raises(DcqError, match="palette_transform must return"):
        bad[0]
