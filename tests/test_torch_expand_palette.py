"""Batched palette transforms (``t.batch(palettes [B, K, C], counts)``, what ``expand`` uses on
the device) equal the single-palette transforms called on each row in turn, bit for bit, when
the parameters are drawn from generators in the same state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcqformat.errors import InvalidArgumentError
from dcqformat.torch import palette_batch as PB
from dcqformat.torch import palette_transforms as PT

Factory = Callable[[torch.Generator], Any]

FACTORIES: dict[str, Factory] = {
    "brightness": lambda g: PT.PaletteBrightness(0.6, generator=g),
    "contrast_image": lambda g: PT.PaletteContrast((0.2, 1.8), generator=g),
    "contrast_palette": lambda g: PT.PaletteContrast(0.5, center="palette", generator=g),
    "contrast_number": lambda g: PT.PaletteContrast(0.5, center=127.5, generator=g),
    "saturation": lambda g: PT.PaletteSaturation((0.0, 2.5), generator=g),
    "grayscale": lambda g: PT.PaletteGrayscale(0.5, generator=g),
    "jitter": lambda g: PT.PaletteColorJitter(0.4, 0.4, 0.4, generator=g),
    "jitter_palette_center": lambda g: PT.PaletteColorJitter(0.3, 0.7, 0.0, center="palette", generator=g),
    "jitter_brightness_only": lambda g: PT.PaletteColorJitter(brightness=0.5, generator=g),
    "compose": lambda g: PT.PaletteCompose([
        PT.PaletteGrayscale(0.3, generator=g), PT.PaletteColorJitter(0.2, 0.3, 0.4, generator=g),
        PT.PaletteCompose([PT.PaletteBrightness(0.1, generator=g)])]),
    "identity_range": lambda g: PT.PaletteBrightness(0, generator=g),
}


def per_row(t: Any, palettes: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    return torch.stack([t(palettes[b].clone(), counts=counts[b]) if t.needs_counts else t(palettes[b].clone())
                        for b in range(palettes.shape[0])])


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(FACTORIES)), b=st.integers(1, 9), k=st.integers(1, 16),
       channels=st.sampled_from([1, 3]), seed=st.integers(0, 2**31 - 1))
def test_batch_equals_each_row_in_turn(name: str, b: int, k: int, channels: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    palettes = torch.from_numpy(rng.integers(0, 256, (b, k, channels), dtype=np.uint8))
    counts = torch.from_numpy(rng.integers(0, 50, (b, k)).astype(np.int64))
    counts[:, 0] += 1  # at least one pixel per sample
    want = per_row(FACTORIES[name](torch.Generator().manual_seed(seed)), palettes, counts)
    t = FACTORIES[name](torch.Generator().manual_seed(seed))
    assert t.batched
    got = t.batch(palettes, counts)
    assert got.dtype == torch.uint8 and torch.equal(got, want)


def test_functional_batch_ops_equal_the_numpy_ones() -> None:
    rng = np.random.default_rng(5)  # 64 x 256 colours: enough to hit float32 rounding boundaries
    factors = [0.0, 0.3, 1.0, 1.7, 2.9, 0.05, *rng.uniform(0, 3, 58).tolist()]
    pal = torch.from_numpy(rng.integers(0, 256, (len(factors), 256, 3), dtype=np.uint8))
    counts = torch.from_numpy(rng.integers(1, 9, (len(factors), 256)).astype(np.int64))
    for b, f in enumerate(factors):
        assert torch.equal(PB.batch_brightness(pal, factors)[b], PT.adjust_brightness(pal[b], f))
        assert torch.equal(PB.batch_saturation(pal, factors)[b], PT.adjust_saturation(pal[b], f))
        for center in ("image", "palette", 100.0):
            assert torch.equal(PB.batch_contrast(pal, factors, center, counts)[b],
                               PT.adjust_contrast(pal[b], f, center, counts[b]))
    grey = PB.batch_grayscale(pal, [True, False] * 32)
    assert torch.equal(grey[0], PT.rgb_to_grayscale(pal[0])) and torch.equal(grey[1], pal[1])


def test_plain_callables_run_per_sample_and_are_checked() -> None:
    pal = torch.arange(24, dtype=torch.uint8).reshape(2, 4, 3)
    seen: list[torch.Tensor] = []

    def invert(p: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        seen.append(counts)
        return 255 - p

    invert.needs_counts = True  # type: ignore[attr-defined]
    counts = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
    assert torch.equal(PB.transform_palettes(invert, pal, counts), 255 - pal)
    assert [c.tolist() for c in seen] == counts.tolist()
    assert torch.equal(PB.transform_palettes(lambda p: p, pal), pal)
    with pytest.raises(InvalidArgumentError, match="palette_transform must return"):
        PB.transform_palettes(lambda p: p.float(), pal)
    with pytest.raises(InvalidArgumentError, match="counts"):
        PT.PaletteContrast(0.5).batch(pal, None)
    with pytest.raises(InvalidArgumentError, match="palettes must be"):
        PT.PaletteBrightness(0.5).batch(pal[0])


def test_user_subclass_without_draw_falls_back_to_per_sample() -> None:
    class AddOne(PT.PaletteTransform):
        def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
            return palette + 1

    pal = torch.zeros((3, 2, 1), dtype=torch.uint8)
    assert not AddOne().batched and torch.equal(AddOne().batch(pal), pal + 1)
    compose = PT.PaletteCompose([AddOne(), PT.PaletteBrightness(0.5)])
    assert not compose.batched and compose.batch(pal).shape == pal.shape
