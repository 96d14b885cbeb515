"""§13 of spec/dcq-v1.md, patch masks, for ``tools/independent_reader.py``: the checks of
/masks when a file is opened, and each sample's patches.

Written from the spec alone, like the reader: h5py and NumPy, never dcqformat (nor the
reader itself: a broken rule is a :class:`MaskRuleError`, which the reader reports as a
StructureError at open).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np

MAX_PATCH = 65536


class MaskRuleError(ValueError):
    """A rule of §13 broken; the message says which (the reader adds file, family and stage)."""


def patches(p: int, keep: np.ndarray, h: int, w: int) -> list[tuple[bool, slice, slice]]:
    """The patches of an H×W sample with mask ``keep`` at patch size ``p``, in increasing g:
    (kept, rows, columns), clipped at the border."""
    gh, gw = keep.shape
    return [(bool(keep[r, c]), slice(r * p, min(r * p + p, h)), slice(c * p, min(c * p + p, w)))
            for r in range(gh) for c in range(gw)]


def read_masks(h5: h5py.File, heights: Sequence[int], widths: Sequence[int], palette_size: int,
               checked: Callable[..., np.ndarray]) -> dict[str, Any]:
    """§13: the checked /masks of a file whose samples are ``heights`` × ``widths``:
    ``patch_size``, ``keep`` (a bool grid per sample), ``fill`` (the fills of its dropped
    patches, per sample) and ``kept_pixels`` (S_i). ``checked`` is the reader's dataset
    reader (its errors pass through); a broken rule of §13 is a MaskRuleError."""
    group = h5.get("masks")
    if not isinstance(group, h5py.Group):
        raise MaskRuleError("patch-mask listed but /masks is not a group")
    if "patch_size" not in group.attrs:
        raise MaskRuleError("/masks has no patch_size")
    raw_p = np.asarray(group.attrs["patch_size"])
    if raw_p.shape != () or raw_p.dtype.kind not in "iu" or not 1 <= int(raw_p) <= MAX_PATCH:
        raise MaskRuleError(f"/masks patch_size {raw_p!r} outside 1..{MAX_PATCH}")
    p = int(raw_p)
    n = len(heights)
    grids = [(-(-heights[i] // p), -(-widths[i] // p)) for i in range(n)]
    keep_bytes = checked(h5, "masks/keep", "u1", None)
    if keep_bytes.size != sum((gh * gw + 7) // 8 for gh, gw in grids):
        raise MaskRuleError("/masks/keep has the wrong length")
    keeps, pos = [], 0
    for i, (gh, gw) in enumerate(grids):
        m = (gh * gw + 7) // 8
        bits = np.unpackbits(keep_bytes[pos:pos + m], bitorder="little")
        if bits[gh * gw:].any():
            raise MaskRuleError(f"sample {i}: non-zero mask padding bits")
        keeps.append(bits[:gh * gw].astype(bool).reshape(gh, gw))
        pos += m
    n_dropped = sum(int((~k).sum()) for k in keeps)
    fill = checked(h5, "masks/fill", "u1", (n_dropped,))
    if fill.size and int(fill.max()) >= palette_size:
        raise MaskRuleError(f"/masks/fill holds {int(fill.max())} >= K")
    theta = checked(h5, "masks/theta", "<f4", (n,))
    if not (np.isfinite(theta) & (theta >= 0) & (theta <= 1)).all():
        raise MaskRuleError("/masks/theta holds a value outside 0..1")
    fills, pos = [], 0
    for k in keeps:
        d = int((~k).sum())
        fills.append([int(v) for v in fill[pos:pos + d]])
        pos += d
    kept_pixels = [sum((rows.stop - rows.start) * (cols.stop - cols.start)
                       for kept, rows, cols in patches(p, keeps[i], heights[i], widths[i]) if kept)
                   for i in range(n)]
    return {"patch_size": p, "keep": keeps, "fill": fills, "kept_pixels": kept_pixels}
