"""Colour transforms applied to a sample's K palette entries instead of its H×W pixels.

A decoded pixel is ``palette[index]``, so any *pointwise* colour transform ``t`` satisfies
``t(decode(indices, palette)) == decode(indices, t(palette))``: transforming the K colours of
the sample's cluster palette and decoding with the result gives the same image as
transforming every decoded pixel, at a cost of K instead of H·W. :class:`~dcqformat.torch.
DCQDataset` does this when given ``palette_transform=``.

The arithmetic follows torchvision's tensor functions for uint8 images step by step (float32
blend ``ratio * img1 + (1 - ratio) * img2``, clamped to 0..255, truncated back to uint8;
grey = ``0.2989 R + 0.587 G + 0.114 B`` truncated to uint8), so for the pointwise transforms
the result equals torchvision's applied to the decoded image **exactly**:

- :func:`adjust_brightness`, :func:`adjust_saturation`, :func:`rgb_to_grayscale` — exact.
- :func:`adjust_contrast` blends every colour with a grey level ``mean``. torchvision uses the
  mean grey level of the *image*, which is not pointwise. Here ``center`` chooses it:

  * ``"image"`` (default): the image mean computed from the palette and the index histogram
    (``counts``; the dataset computes it by unpacking the indices, an extra O(H·W) pass that
    is still far cheaper than a pixel-space transform). Equal to torchvision's up to float32
    summation order: a pixel may differ by 1 where the blend lands on an integer boundary.
  * ``"palette"``: the unweighted mean grey level of the K palette entries. Free, but not the
    image mean: a palette entry used by one pixel weighs as much as one used by all of them,
    so results differ from torchvision whenever the colours are used unevenly.
  * a number in 0..255: a fixed grey level (e.g. ``127.5``), the same for every image.

Hue is not offered (it is pointwise, so it would be exact too, but it is not implemented).
Random parameters are drawn from the ``generator`` given to the transform, or from torch's
global generator, which DataLoader seeds differently in every worker.

Every transform takes and returns a palette as a uint8 tensor ``[K, channels]`` (channels 1
or 3); the random ones accept ``counts`` (int64 ``[K]``, pixels per palette entry) as keyword.

Batches on a device. ``t.batch(palettes, counts)`` transforms the per-sample palettes
``[B, K, channels]`` of a batch on their own device (CUDA, MPS, CPU) with the vectorised torch
arithmetic of :mod:`dcqformat.torch.palette_batch`: parameters are drawn per sample, in batch
order, exactly as ``B`` successive calls ``t(palette_b)`` would draw them, so row ``b`` equals
``t(palette_b)`` bit for bit given the same generator state. ``dcqformat.torch.expand`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dcqformat.errors import InvalidArgumentError
from dcqformat.torch import palette_batch as PB

__all__ = [
    "PaletteTransform",
    "PaletteBrightness",
    "PaletteContrast",
    "PaletteSaturation",
    "PaletteGrayscale",
    "PaletteColorJitter",
    "PaletteCompose",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "rgb_to_grayscale",
]


def _check_palette(palette: torch.Tensor) -> torch.Tensor:
    if not isinstance(palette, torch.Tensor) or palette.dtype != torch.uint8 or palette.ndim != 2 \
            or palette.shape[1] not in (1, 3):
        what = (f"{palette.dtype} {tuple(palette.shape)}" if isinstance(palette, torch.Tensor)
                else type(palette).__name__)
        raise InvalidArgumentError(f"palette must be a uint8 tensor [K, 1 or 3], got {what}")
    return palette


# The arithmetic runs in NumPy on the K entries: a handful of colours, where torch's per-op
# dispatch would cost more than the work. Every step is the float32 operation torch performs
# for ``python_float * uint8_tensor`` (the scalar rounded to float32, then one float32
# multiply or add per element), so results are bit-identical to the torch formulas.
_F32 = np.float32


def _np(palette: torch.Tensor) -> np.ndarray:
    return _check_palette(palette).numpy()


def _blend(img1: np.ndarray, img2: np.ndarray | np.float32, ratio: float) -> np.ndarray:
    """``ratio * img1 + (1 - ratio) * img2`` in float32, clamped to 0..255, truncated to uint8."""
    ratio = float(ratio)
    mixed = _F32(ratio) * img1.astype(_F32) + _F32(1.0 - ratio) * np.asarray(img2, dtype=_F32)
    return np.clip(mixed, 0, 255).astype(np.uint8)


def _grey(palette: np.ndarray) -> np.ndarray:
    """Grey level of each RGB entry, uint8 [K, 1] (truncated, like the pixel-space formula)."""
    r, g, b = (palette[:, c].astype(_F32) for c in range(3))
    return (_F32(0.2989) * r + _F32(0.587) * g + _F32(0.114) * b).astype(np.uint8)[:, None]


def _out(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr))


def adjust_brightness(palette: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiply every colour by ``factor`` (>= 0); exact w.r.t. the pixel-space transform."""
    pal = _np(palette)
    if factor < 0:
        raise InvalidArgumentError(f"brightness factor must be >= 0, got {factor}")
    return _out(_blend(pal, _F32(0.0), factor))


def rgb_to_grayscale(palette: torch.Tensor) -> torch.Tensor:
    """Replace every RGB colour by its grey level, kept as 3 equal channels (1-channel
    palettes are returned unchanged); exact w.r.t. the pixel-space transform."""
    pal = _np(palette)
    if pal.shape[1] == 1:
        return palette
    return _out(np.repeat(_grey(pal), 3, axis=1))


def adjust_saturation(palette: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend every colour with its grey level (0: grey, 1: unchanged, >1: more saturated);
    1-channel palettes are returned unchanged. Exact w.r.t. the pixel-space transform."""
    pal = _np(palette)
    if factor < 0:
        raise InvalidArgumentError(f"saturation factor must be >= 0, got {factor}")
    if pal.shape[1] == 1:
        return palette
    return _out(_blend(pal, _grey(pal), factor))


def contrast_center(palette: torch.Tensor, center: str | float = "image",
                    counts: torch.Tensor | np.ndarray | None = None) -> float:
    """The grey level that :func:`adjust_contrast` blends towards (see the module docstring)."""
    pal = _np(palette)
    if not isinstance(center, str):
        value = float(center)
        if not 0 <= value <= 255:
            raise InvalidArgumentError(f"a numeric contrast center must lie in 0..255, got {value}")
        return value
    grey = (_grey(pal) if pal.shape[1] == 3 else pal)[:, 0].astype(np.float64)
    if center == "palette":
        return float(_F32(grey.mean()))
    if center == "image":
        if counts is None:
            raise InvalidArgumentError(
                "contrast center 'image' needs counts (pixels per palette entry); pass counts= "
                "or use center='palette' or a number")
        c = (counts.numpy() if isinstance(counts, torch.Tensor) else np.asarray(counts)).astype(np.float64).reshape(-1)
        if c.size != grey.size:
            raise InvalidArgumentError(f"counts has {c.size} entries, the palette {grey.size}")
        total = float(c.sum())
        if total <= 0:
            raise InvalidArgumentError("counts must hold at least one pixel")
        # float64 sum then one rounding to float32: the correctly rounded float32 mean, which
        # torchvision's float32 reduction matches or misses by an ulp.
        return float(_F32(float(c @ grey) / total))
    raise InvalidArgumentError(f"contrast center must be 'image', 'palette' or a number, got {center!r}")


def adjust_contrast(palette: torch.Tensor, factor: float, center: str | float = "image",
                    counts: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
    """Blend every colour with the grey level chosen by ``center`` (0: flat grey,
    1: unchanged). With ``center="image"`` and ``counts`` this is torchvision's contrast up to
    float32 summation order; see the module docstring for the other choices."""
    pal = _np(palette)
    if factor < 0:
        raise InvalidArgumentError(f"contrast factor must be >= 0, got {factor}")
    mean = contrast_center(palette, center, counts)
    return _out(_blend(pal, _F32(mean), factor))


# -- random transforms ------------------------------------------------------------------------
def _factor_range(value: float | Sequence[float], name: str) -> tuple[float, float] | None:
    """torchvision's convention: a number v means [max(0, 1 - v), 1 + v]; a pair is (lo, hi)."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidArgumentError(f"{name} must be >= 0, got {value}")
        lo, hi = max(0.0, 1.0 - float(value)), 1.0 + float(value)
    else:
        if len(value) != 2:
            raise InvalidArgumentError(f"{name} must be a number or a (min, max) pair, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if not 0 <= lo <= hi:
            raise InvalidArgumentError(f"{name} range must satisfy 0 <= min <= max, got {value!r}")
    return None if lo == hi == 1.0 else (lo, hi)


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(lo, hi, generator=generator))


def _check_batch(palettes: torch.Tensor) -> torch.Tensor:
    if not isinstance(palettes, torch.Tensor) or palettes.dtype != torch.uint8 or palettes.ndim != 3 \
            or palettes.shape[2] not in (1, 3):
        what = (f"{palettes.dtype} {tuple(palettes.shape)}" if isinstance(palettes, torch.Tensor)
                else type(palettes).__name__)
        raise InvalidArgumentError(f"palettes must be a uint8 tensor [B, K, 1 or 3], got {what}")
    return palettes


def _where_drawn(palettes: torch.Tensor, params: Sequence[float | None],
                 op: Any) -> torch.Tensor:
    """``op(palettes, factors)`` on the rows whose parameter is not None; the others unchanged."""
    rows = [b for b, f in enumerate(params) if f is not None]
    if not rows:
        return palettes
    if len(rows) == len(params):
        return op(palettes, params)
    idx = torch.as_tensor(rows, dtype=torch.int64).to(palettes.device)
    out = palettes.clone()
    out[idx] = op(palettes[idx], [params[b] for b in rows])
    return out


def _contrast_rows(palettes: torch.Tensor, params: Sequence[float | None], center: str | float,
                   counts: torch.Tensor | None) -> torch.Tensor:
    """:func:`~.palette_batch.batch_contrast` on the rows whose factor is not None."""
    rows = [b for b, f in enumerate(params) if f is not None]
    if not rows:
        return palettes
    idx = torch.as_tensor(rows, dtype=torch.int64).to(palettes.device)
    sub_counts = None if counts is None else counts[idx]
    out = palettes.clone()
    out[idx] = PB.batch_contrast(palettes[idx], [f for f in params if f is not None], center, sub_counts)
    return out


class PaletteTransform:
    """Base class: ``t(palette, counts=None) -> palette`` (uint8 tensors ``[K, channels]``).

    ``needs_counts`` tells :class:`~dcqformat.torch.DCQDataset` to compute the index histogram
    and pass it as ``counts``; it is False unless a contrast with ``center="image"`` is inside.

    A subclass that splits its work into :meth:`draw` (the random parameters of one sample)
    and :meth:`apply_batch` (the arithmetic for a batch, given one parameter set per sample)
    and sets ``batched = True`` gets a vectorised :meth:`batch`; otherwise :meth:`batch` calls
    the transform once per sample.
    """

    needs_counts: bool = False
    batched: bool = False

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Transform one palette."""
        raise NotImplementedError

    def draw(self) -> Any:
        """Draw the random parameters of one sample (what ``__call__`` draws first)."""
        raise NotImplementedError

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Transform ``palettes`` [B, K, C] with ``params[b]`` (from :meth:`draw`) for row b."""
        raise NotImplementedError

    def batch(self, palettes: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Transform the per-sample palettes ``[B, K, C]`` (uint8, any device) as ``B`` calls in
        batch order would; ``counts`` int64 ``[B, K]`` when ``needs_counts``."""
        _check_batch(palettes)
        if not self.batched:
            return PB.per_sample(self, palettes, counts)
        return self.apply_batch(palettes, [self.draw() for _ in range(palettes.shape[0])], counts)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "generator")
        return f"{type(self).__name__}({args})"


class PaletteBrightness(PaletteTransform):
    """Brightness factor drawn uniformly from ``brightness`` (a number v: [1-v, 1+v])."""

    def __init__(self, brightness: float | Sequence[float],
                 generator: torch.Generator | None = None) -> None:
        self.range = _factor_range(brightness, "brightness")
        self.generator = generator

    batched = True

    def draw(self) -> float | None:
        """The brightness factor of one sample (None: no range, nothing drawn)."""
        return None if self.range is None else _uniform(*self.range, self.generator)

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Apply a random brightness factor."""
        factor = self.draw()
        return _check_palette(palette) if factor is None else adjust_brightness(palette, factor)

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Each row times its factor."""
        return _where_drawn(palettes, params, PB.batch_brightness)


class PaletteContrast(PaletteTransform):
    """Contrast factor drawn uniformly from ``contrast``; ``center`` as in :func:`adjust_contrast`."""

    def __init__(self, contrast: float | Sequence[float], center: str | float = "image",
                 generator: torch.Generator | None = None) -> None:
        self.range = _factor_range(contrast, "contrast")
        if isinstance(center, str) and center not in ("image", "palette"):
            raise InvalidArgumentError(f"center must be 'image', 'palette' or a number, got {center!r}")
        self.center = center
        self.needs_counts = center == "image" and self.range is not None
        self.generator = generator

    batched = True

    def draw(self) -> float | None:
        """The contrast factor of one sample (None: no range, nothing drawn)."""
        return None if self.range is None else _uniform(*self.range, self.generator)

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Apply a random contrast factor."""
        factor = self.draw()
        if factor is None:
            return _check_palette(palette)
        return adjust_contrast(palette, factor, self.center, counts)

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Each row blended with its contrast centre by its factor."""
        return _contrast_rows(palettes, params, self.center, counts)


class PaletteSaturation(PaletteTransform):
    """Saturation factor drawn uniformly from ``saturation`` (identity on grey palettes)."""

    def __init__(self, saturation: float | Sequence[float],
                 generator: torch.Generator | None = None) -> None:
        self.range = _factor_range(saturation, "saturation")
        self.generator = generator

    batched = True

    def draw(self) -> float | None:
        """The saturation factor of one sample (None: no range, nothing drawn)."""
        return None if self.range is None else _uniform(*self.range, self.generator)

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Apply a random saturation factor."""
        factor = self.draw()
        return _check_palette(palette) if factor is None else adjust_saturation(palette, factor)

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Each row blended with its grey levels by its factor."""
        return _where_drawn(palettes, params, PB.batch_saturation)


class PaletteGrayscale(PaletteTransform):
    """Turn the palette grey (3 equal channels) with probability ``p`` (like RandomGrayscale)."""

    def __init__(self, p: float = 0.1, generator: torch.Generator | None = None) -> None:
        if not 0 <= p <= 1:
            raise InvalidArgumentError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    batched = True

    def draw(self) -> bool:
        """Whether one sample turns grey."""
        return float(torch.rand(1, generator=self.generator)) < self.p

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Grey out the palette with probability ``p``."""
        _check_palette(palette)
        return rgb_to_grayscale(palette) if self.draw() else palette

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """The selected rows grey."""
        return PB.batch_grayscale(palettes, [bool(x) for x in params])


class PaletteColorJitter(PaletteTransform):
    """ColorJitter in palette space: brightness, contrast and saturation factors drawn
    uniformly (a number v means [max(0, 1-v), 1+v]) and applied in a random order, each step
    rounding to uint8 as torchvision does. Parameters are drawn in torchvision's order
    (``randperm(4)``, then brightness, contrast, saturation), so with the same generator state
    the factors are torchvision's; there is no hue."""

    def __init__(self, brightness: float | Sequence[float] = 0, contrast: float | Sequence[float] = 0,
                 saturation: float | Sequence[float] = 0, center: str | float = "image",
                 generator: torch.Generator | None = None) -> None:
        self.brightness = _factor_range(brightness, "brightness")
        self.contrast = _factor_range(contrast, "contrast")
        self.saturation = _factor_range(saturation, "saturation")
        if isinstance(center, str) and center not in ("image", "palette"):
            raise InvalidArgumentError(f"center must be 'image', 'palette' or a number, got {center!r}")
        self.center = center
        self.needs_counts = center == "image" and self.contrast is not None
        self.generator = generator

    def get_params(self) -> tuple[list[int], float | None, float | None, float | None]:
        """Draw (order, brightness, contrast, saturation) for one sample."""
        g = self.generator
        order = torch.randperm(4, generator=g).tolist()
        b = None if self.brightness is None else _uniform(*self.brightness, g)
        c = None if self.contrast is None else _uniform(*self.contrast, g)
        s = None if self.saturation is None else _uniform(*self.saturation, g)
        return order, b, c, s

    batched = True

    def draw(self) -> tuple[list[int], float | None, float | None, float | None]:
        """The parameters of one sample (:meth:`get_params`)."""
        return self.get_params()

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Every row's factors in its own order: for each of the 4 steps, each operation on
        the rows whose order puts it at that step."""
        for step in range(4):
            for op in (0, 1, 2):
                factors = [p[1 + op] if p[0][step] == op else None for p in params]
                if op == 0:
                    palettes = _where_drawn(palettes, factors, PB.batch_brightness)
                elif op == 1:
                    palettes = _contrast_rows(palettes, factors, self.center, counts)
                else:
                    palettes = _where_drawn(palettes, factors, PB.batch_saturation)
        return palettes

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Apply randomly drawn factors in a random order."""
        _check_palette(palette)
        order, b, c, s = self.get_params()
        for op in order:
            if op == 0 and b is not None:
                palette = adjust_brightness(palette, b)
            elif op == 1 and c is not None:
                palette = adjust_contrast(palette, c, self.center, counts)
            elif op == 2 and s is not None:
                palette = adjust_saturation(palette, s)
        return palette


class PaletteCompose(PaletteTransform):
    """Apply palette transforms in sequence (the same ``counts`` reach each one: they count
    pixels per palette *entry*, which no palette transform changes)."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        self.transforms = list(transforms)
        self.needs_counts = any(getattr(t, "needs_counts", False) for t in self.transforms)
        self.batched = all(isinstance(t, PaletteTransform) and t.batched for t in self.transforms)

    def draw(self) -> list[Any]:
        """One parameter set per inner transform, drawn in order."""
        return [t.draw() for t in self.transforms]

    def apply_batch(self, palettes: torch.Tensor, params: Sequence[Any],
                    counts: torch.Tensor | None) -> torch.Tensor:
        """Every inner transform in order, each with its column of the parameters."""
        for j, t in enumerate(self.transforms):
            palettes = t.apply_batch(palettes, [p[j] for p in params], counts)
        return palettes

    def __call__(self, palette: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Apply every transform in order."""
        for t in self.transforms:
            palette = t(palette, counts=counts) if getattr(t, "needs_counts", False) else t(palette)
        return palette
