"""Preview grids: original images beside their decoded ``.dcq`` versions, as one PNG.

Originals come from ``source`` (an ImageFolder root) or, when not given, from the source root
recorded in the file's provenance; each sample's recorded relative path locates its file. They
are loaded with the same background and ``max_side`` the conversion used, so the two halves of a
pair differ only by the quantization. When no original can be found the grid shows decoded
images only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dcqformat.encode.images import LoadOptions, load_image, to_channels
from dcqformat.encode.patchdrop import mask_overlay
from dcqformat.errors import InputImageError, InvalidArgumentError

__all__ = ["make_preview", "pick_samples", "tile"]

_GAP = 2
_BG = 96  # grey between tiles


def pick_samples(n_total: int, n: int) -> list[int]:
    """``n`` sample positions spread evenly over ``0..n_total-1`` (all of them when fewer)."""
    if n_total <= 0 or n <= 0:
        return []
    if n >= n_total:
        return list(range(n_total))
    return sorted({int(round(v)) for v in np.linspace(0, n_total - 1, n)})


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def tile(rows: list[list[np.ndarray]], cols: int, scale: int = 1) -> np.ndarray:
    """Lay out groups of images (each group side by side) in a grid of ``cols`` groups per row;
    every image is upscaled (nearest) by ``scale`` and padded to the largest size."""
    if not rows:
        raise InvalidArgumentError("nothing to preview")
    per = max(len(g) for g in rows)
    ch = max(im.shape[0] for g in rows for im in g) * scale
    cw = max(im.shape[1] for g in rows for im in g) * scale
    gw = per * cw + (per - 1) * _GAP
    nrows = math.ceil(len(rows) / cols)
    out = np.full((nrows * (ch + 2 * _GAP) + _GAP, cols * (gw + 3 * _GAP) + _GAP, 3), _BG,
                  dtype=np.uint8)
    for k, group in enumerate(rows):
        r, c = divmod(k, cols)
        y0 = _GAP + r * (ch + 2 * _GAP)
        x0 = _GAP + c * (gw + 3 * _GAP)
        for j, im in enumerate(group):
            big = _rgb(im).repeat(scale, 0).repeat(scale, 1)
            x = x0 + j * (cw + _GAP)
            out[y0 : y0 + big.shape[0], x : x + big.shape[1]] = big
    return out


def _load_options(prov: dict[str, Any]) -> LoadOptions:
    params = prov.get("parameters", {}) if isinstance(prov, dict) else {}
    bg = params.get("background", (255, 255, 255))
    kwargs: dict[str, Any] = {"background": tuple(int(v) for v in bg), "max_side": params.get("max_side")}
    if params.get("max_pixels"):
        kwargs["max_pixels"] = int(params["max_pixels"])
    return LoadOptions(**kwargs)


def make_preview(
    dcq_path: str | os.PathLike[str],
    out_png: str | os.PathLike[str],
    *,
    source: str | os.PathLike[str] | None = None,
    n: int = 16,
    cols: int | None = None,
    min_cell: int = 64,
) -> dict[str, Any]:
    """Write the preview PNG; return ``{"path", "samples", "with_originals", "psnr_db", "masks"}``
    (PSNR of the shown pairs that have an original). For a file with patch masks each group
    gains a tile with the dropped patches hatched in magenta (``masks`` True)."""
    from dcqformat.format.reader import DCQFile

    f = DCQFile(dcq_path)
    prov = f.provenance or {}
    root: Path | None = Path(source) if source is not None else None
    if root is None:
        recorded = prov.get("source", {}).get("root") if isinstance(prov, dict) else None
        root = Path(recorded) if recorded else None
    if source is not None and not Path(source).is_dir():
        raise InvalidArgumentError(f"--source {str(source)!r} is not a directory")
    paths = f.source_paths
    opts = _load_options(prov)
    chosen = pick_samples(len(f), n)
    groups: list[list[np.ndarray]] = []
    psnrs: list[float] = []
    with_orig = 0
    for i in chosen:
        decoded, _label = f[i]
        group = [decoded]
        if root is not None and paths and paths[i]:
            p = root / paths[i]
            try:
                orig = to_channels(load_image(p, opts), decoded.shape[2]) if p.is_file() else None
            except (InputImageError, InvalidArgumentError):
                orig = None
            if orig is not None and orig.shape == decoded.shape:
                group = [orig, decoded]
                with_orig += 1
                mse = float(np.mean((orig.astype(np.float64) - decoded) ** 2))
                psnrs.append(99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse))
        if f.patch_size is not None:  # patch masks: a third tile, dropped patches hatched
            group.append(mask_overlay(decoded, f.pixel_mask(i)))
        groups.append(group)
    if not groups:
        raise InvalidArgumentError(f"{str(dcq_path)!r} holds no samples to preview")
    biggest = max(max(im.shape[:2]) for g in groups for im in g)
    scale = max(1, math.ceil(min_cell / biggest))
    ncols = cols or max(1, min(len(groups), round(math.sqrt(len(groups)))))
    grid = tile(groups, ncols, scale)
    out = Path(out_png)
    Image.fromarray(grid).save(out)
    return {
        "path": str(out),
        "samples": chosen,
        "with_originals": with_orig,
        "psnr_db": float(np.mean(psnrs)) if psnrs else None,
        "masks": f.patch_size is not None,
    }
