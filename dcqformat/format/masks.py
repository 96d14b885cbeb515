"""Patch masks of the .dcq container (spec ``dcq-v1.md`` §13, feature ``patch-mask``): the
``/masks`` section.

A masked file cuts every sample into a grid of ``P``×``P`` patches, stores a bit-packed keep
mask per sample, the palette indices of the kept patches only, one fill palette index per dropped
patch and the drop ratio θ the encoder chose. The grid arithmetic, mask packing and the Numba
kernels live in :mod:`dcqformat.codecs.patches` (re-exported here for the container's users);
this module is the container side:

- :class:`MaskTable` and :func:`read_masks` (validation of ``/masks`` at open);
- :func:`decode_sample` (the reader's hot path for a masked sample);
- :class:`MaskWriter` (what :class:`~dcqformat.DCQWriter` uses when given ``patch_size``);
- :func:`mask_report` / :func:`mask_report_lines` (``dcqformat info``).

Order of the kept pixels (normative): kept patches in raster order of the patch grid, inside each
patch its pixels in raster order.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dcqformat.codecs.patches import (
    MAX_PATCH,
    check_patch_size,
    decode_masked_into,
    gather_kept,
    grid_shape,
    mask_offsets,
    mask_stats,
    most_common_fills,
    pack_mask,
    patch_areas,
    patch_ids,
    pixel_mask,
    scatter_kept,
    unpack_mask,
)
from dcqformat.errors import InvalidArgumentError, PayloadError, StructureError

if TYPE_CHECKING:
    import h5py

    from dcqformat.format.validate import FileMetadata

FEATURE = "patch-mask"
GROUP = "masks"
ATTR_PATCH_SIZE = "patch_size"
DS_KEEP = "keep"
DS_FILL = "fill"
DS_THETA = "theta"
#: Fill modes of a decode: the stored fill colour (default) or zeros.
FILLS = ("stored", "zero")

__all__ = [
    "FEATURE", "FILLS", "MAX_PATCH", "MaskTable", "MaskWriter", "decode_sample", "read_masks",
    "check_fill", "mask_report", "mask_report_lines",
    # re-exported from dcqformat.codecs.patches
    "check_patch_size", "grid_shape", "patch_areas", "patch_ids", "pack_mask", "unpack_mask",
    "mask_offsets", "mask_stats", "gather_kept", "scatter_kept", "most_common_fills", "pixel_mask",
]


# ----------------------------------------------------------------------------- the table


@dataclass
class MaskTable:
    """The validated ``/masks`` section of an open file."""

    patch_size: int
    keep: np.ndarray  # uint8, all masks concatenated
    mask_offsets: np.ndarray  # int64 [N + 1]
    n_patches: np.ndarray  # int64 [N]
    kept_patches: np.ndarray  # int64 [N]
    kept_pixels: np.ndarray  # int64 [N]
    fill: np.ndarray  # uint8, all fills concatenated
    fill_offsets: np.ndarray  # int64 [N + 1]
    theta: np.ndarray  # float32 [N]

    def sample_keep(self, i: int) -> np.ndarray:
        """Bit-packed mask bytes of sample ``i`` (a view)."""
        return self.keep[self.mask_offsets[i]:self.mask_offsets[i + 1]]

    def sample_fills(self, i: int) -> np.ndarray:
        """Fill indices of sample ``i``'s dropped patches (a view)."""
        return self.fill[self.fill_offsets[i]:self.fill_offsets[i + 1]]

    def grid(self, i: int, h: int, w: int) -> np.ndarray:
        """Boolean keep grid ``[gh, gw]`` of sample ``i`` (``h``×``w`` pixels)."""
        gh, gw = grid_shape(h, w, self.patch_size)
        return unpack_mask(self.sample_keep(i), gh * gw).reshape(gh, gw)


def read_masks(h5: h5py.File, meta: FileMetadata, where: str, features: list[str],
               sections: dict[str, int]) -> MaskTable | None:
    """Validate ``/masks`` against the samples of ``meta`` (heights, widths, lengths already
    range-checked); None for a file without masks. Raises a DcqError subclass naming the
    dataset and what was found."""
    import h5py

    from dcqformat.format.h5checks import numeric_attribute, read_array

    listed = FEATURE in features
    group = h5.get(GROUP)
    if group is None:
        if listed:
            raise StructureError(f"{where}: must_understand lists {FEATURE!r} but group '/{GROUP}' is missing")
        return None
    if not listed:  # spec §9: reserved paths are ignored unless must_understand lists them
        return None
    if not isinstance(group, h5py.Group):
        raise StructureError(f"{where}: '/{GROUP}' must be a group, found {type(group).__name__}")
    raw_p = numeric_attribute(group, ATTR_PATCH_SIZE, where, f"'/{GROUP}' attribute {ATTR_PATCH_SIZE!r}")
    if (raw_p is None or raw_p.shape != () or not np.issubdtype(raw_p.dtype, np.integer)
            or not 1 <= int(raw_p) <= MAX_PATCH):
        raise StructureError(
            f"{where}: '/{GROUP}' attribute {ATTR_PATCH_SIZE!r} must be an integer in 1..{MAX_PATCH}, found {raw_p!r}")
    p = int(raw_p)
    n = meta.num_samples
    heights = meta.height.astype(np.int64)
    widths = meta.width.astype(np.int64)
    offsets = mask_offsets(heights, widths, p)
    keep = read_array(group, DS_KEEP, where, np.dtype("u1"), None, sections, meta.file_size)
    if keep.ndim != 1 or keep.shape[0] != int(offsets[-1]):
        raise StructureError(
            f"{where}: dataset '/{GROUP}/{DS_KEEP}' must be 1-D of {int(offsets[-1])} bytes "
            f"(ceil(patches/8) per sample at patch_size {p}), found shape {keep.shape}")
    kept_patches, kept_pixels, bad = mask_stats(keep, heights, widths, p)
    if bad >= 0:
        raise StructureError(
            f"{where}: sample {bad}: the padding bits of its mask in '/{GROUP}/{DS_KEEP}' are not zero "
            f"(last mask byte {int(keep[offsets[bad + 1] - 1]):#04x})")
    n_patches = (-(-heights // p)) * (-(-widths // p))
    dropped = n_patches - kept_patches
    fill_offsets = np.zeros(n + 1, np.int64)
    np.cumsum(dropped, out=fill_offsets[1:])
    fill = read_array(group, DS_FILL, where, np.dtype("u1"), (int(fill_offsets[-1]),), sections,
                      meta.file_size)
    if fill.size and int(fill.max()) >= meta.palette_size:
        j = int(np.argmax(fill >= meta.palette_size))
        i = int(np.searchsorted(fill_offsets, j, side="right") - 1)
        raise StructureError(
            f"{where}: sample {i}: '/{GROUP}/{DS_FILL}'[{j}] is fill index {int(fill[j])}, "
            f">= palette_size {meta.palette_size}")
    theta = read_array(group, DS_THETA, where, np.dtype("<f4"), (n,), sections, meta.file_size)
    bad_theta = ~np.isfinite(theta) | (theta < 0) | (theta > 1)
    if bad_theta.any():
        i = int(np.argmax(bad_theta))
        raise StructureError(
            f"{where}: sample {i}: '/{GROUP}/{DS_THETA}' is {float(theta[i])!r}, expected 0 <= theta <= 1")
    expected = (kept_pixels * meta.bits + 7) // 8
    length = meta.length.astype(np.int64)
    if meta.payload_encoding == "raw":
        wrong = length != expected
        if wrong.any():
            i = int(np.argmax(wrong))
            raise StructureError(
                f"{where}: sample {i}: raw payload length {int(length[i])} != ceil(S*bits/8) = "
                f"{int(expected[i])} for its {int(kept_pixels[i])} kept pixels")
    elif (length < 1).any():
        i = int(np.argmax(length < 1))
        raise StructureError(f"{where}: sample {i}: zstd payload length is 0")
    for arr in (keep, fill, theta):
        arr.setflags(write=False)
    return MaskTable(p, keep, offsets, n_patches, kept_patches, kept_pixels, fill, fill_offsets,
                     theta.astype(np.float32))


def decode_sample(t: MaskTable, i: int, packed: np.ndarray, bits: int, h: int, w: int,
                  palette: np.ndarray, out: np.ndarray, planar: bool, fill: str, where: str) -> None:
    """Decode masked sample ``i`` from its packed kept indices into the flat ``out``."""
    try:
        status = decode_masked_into(packed, bits, h, w, t.patch_size, t.sample_keep(i),
                                    t.sample_fills(i) if fill == "stored" else None, palette, out,
                                    planar)
    except PayloadError as exc:
        raise PayloadError(f"{where}: sample {i}: {exc}") from None
    if status == 1:
        raise PayloadError(f"{where}: sample {i} holds a kept palette index >= palette_size {palette.shape[0]}")
    if status == 2:
        raise PayloadError(f"{where}: sample {i} has a fill index >= palette_size {palette.shape[0]}")


def check_fill(fill: Any) -> str:
    """``fill`` as one of :data:`FILLS`, else :class:`InvalidArgumentError`."""
    if not isinstance(fill, str) or fill not in FILLS:
        raise InvalidArgumentError(f"fill must be one of {FILLS}, got {fill!r}")
    return str(fill)


# ----------------------------------------------------------------------------- writing


@dataclass
class PreparedMask:
    """One sample's checked mask data, ready to append."""

    kept: np.ndarray
    keep_bytes: bytes
    fills: bytes
    theta: float


class MaskWriter:
    """Accumulates the ``/masks`` section while :class:`~dcqformat.DCQWriter` streams samples."""

    def __init__(self, patch_size: Any) -> None:
        self.patch_size = check_patch_size(patch_size)
        self.keep = bytearray()
        self.fill = bytearray()
        self.theta = array("f")

    def prepare(self, idx: np.ndarray, keep_mask: Any, fills: Any, theta: Any, palette_size: int,
                sample: int) -> PreparedMask:
        """Check one sample's mask arguments against its ``[H, W]`` index map; no state changes.

        ``keep_mask``: boolean ``[gh, gw]`` (or ``[G]``), None = every patch kept.
        ``fills``: one palette index per dropped patch (raster order), None = the most common
        index of each dropped patch. ``theta``: the drop ratio, None = dropped / G."""
        p = self.patch_size
        h, w = idx.shape
        gh, gw = grid_shape(h, w, p)
        g = gh * gw
        if keep_mask is None:
            keep = np.ones(g, bool)
        else:
            k = np.asarray(keep_mask)
            if k.shape not in ((gh, gw), (g,)):
                raise InvalidArgumentError(
                    f"sample {sample}: keep_mask must have shape ({gh}, {gw}) for a {h}x{w} image at "
                    f"patch_size {p}, got {k.shape}")
            if k.dtype != bool and not (np.issubdtype(k.dtype, np.integer) and np.isin(k, (0, 1)).all()):
                raise InvalidArgumentError(f"sample {sample}: keep_mask must be boolean (or 0/1), got {k.dtype}")
            keep = k.astype(bool).reshape(-1)
        n_drop = int(g - keep.sum())
        if fills is None:
            fill_arr = most_common_fills(idx, p, keep, palette_size)
        else:
            try:
                f = np.asarray(fills).reshape(-1)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"sample {sample}: fills must be integers") from None
            if f.size != n_drop:
                raise InvalidArgumentError(
                    f"sample {sample}: fills must hold one index per dropped patch ({n_drop}), got {f.size}")
            if f.size and (not np.issubdtype(f.dtype, np.integer) or int(f.min()) < 0
                           or int(f.max()) >= palette_size):
                raise InvalidArgumentError(
                    f"sample {sample}: fills must be integers in 0..{palette_size - 1}, got {f.dtype} "
                    f"{f.min() if f.size else ''}..{f.max() if f.size else ''}")
            fill_arr = f.astype(np.uint8)
        if theta is None:
            t = n_drop / g
        else:
            try:
                t = float(theta)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"sample {sample}: theta must be a number, got {theta!r}") from None
            if not (math.isfinite(t) and 0.0 <= t <= 1.0):
                raise InvalidArgumentError(f"sample {sample}: theta must be in [0, 1], got {theta!r}")
        packed = pack_mask(keep)
        return PreparedMask(gather_kept(idx, p, packed), packed.tobytes(), fill_arr.tobytes(), t)

    def commit(self, prep: PreparedMask) -> None:
        """Append a prepared sample (after its payload was written)."""
        self.keep += prep.keep_bytes
        self.fill += prep.fills
        self.theta.append(prep.theta)

    def write(self, h5: h5py.Group, write_array: Callable[..., None]) -> None:
        """Create ``/masks`` (attribute, three datasets with their CRC-32) in ``h5``."""
        g = h5.create_group(GROUP)
        g.attrs[ATTR_PATCH_SIZE] = np.uint32(self.patch_size)
        write_array(g, DS_KEEP, np.frombuffer(bytes(self.keep), np.uint8), compress=True)
        write_array(g, DS_FILL, np.frombuffer(bytes(self.fill), np.uint8), compress=True)
        write_array(g, DS_THETA, np.frombuffer(self.theta, np.float32).astype("<f4"), compress=True)


# ----------------------------------------------------------------------------- reports


def mask_report(meta: FileMetadata) -> dict[str, Any]:
    """The ``patch_mask`` entry of ``dcqformat info``: kept fractions and the bytes dropping saved.

    ``bitpacked_bytes_saved`` = Σ ceil(H·W·q/8) − Σ ceil(S·q/8) (what the payload would hold
    without masks minus what it holds, before any zstd); ``net_bytes_saved`` subtracts the
    storage of the ``/masks`` datasets."""
    t: MaskTable = meta.masks
    pixels = meta.height.astype(np.int64) * meta.width.astype(np.int64)
    unmasked = int(((pixels * meta.bits + 7) // 8).sum())
    kept = int(((t.kept_pixels * meta.bits + 7) // 8).sum())
    section = sum(v for k, v in meta.section_bytes.items() if k.startswith(f"/{GROUP}/"))
    patches = int(t.n_patches.sum())
    return {
        "patch_size": t.patch_size,
        "patches": patches,
        "kept_patches": int(t.kept_patches.sum()),
        "kept_patch_fraction": float(t.kept_patches.sum() / patches) if patches else 1.0,
        "kept_pixel_fraction": float(t.kept_pixels.sum() / pixels.sum()) if pixels.sum() else 1.0,
        "mean_theta": float(t.theta.mean()) if t.theta.size else 0.0,
        "samples_with_drops": int((t.kept_patches < t.n_patches).sum()),
        "bitpacked_bytes_unmasked": unmasked,
        "bitpacked_bytes_kept": kept,
        "bitpacked_bytes_saved": unmasked - kept,
        "mask_section_bytes": int(section),
        "net_bytes_saved": unmasked - kept - int(section),
        "payload_encoding": meta.payload_encoding,
    }


def mask_report_lines(r: dict[str, Any]) -> list[str]:
    """Text lines of :func:`mask_report` for ``dcqformat info``."""
    return [
        f"  patch masks (P={r['patch_size']}): kept {r['kept_patches']} of {r['patches']} patches "
        f"({100 * r['kept_patch_fraction']:.1f}%, {100 * r['kept_pixel_fraction']:.1f}% of pixels), "
        f"mean theta {r['mean_theta']:.3f}, {r['samples_with_drops']} samples with drops",
        f"    saved {r['bitpacked_bytes_saved']} of {r['bitpacked_bytes_unmasked']} bit-packed payload "
        f"bytes; masks cost {r['mask_section_bytes']} B; net {r['net_bytes_saved']} B"
        + (" (before zstd: dropped patches are often flat background that zstd stores almost for "
           "free, so compare with an unmasked file for the real saving)"
           if r.get("payload_encoding") == "zstd" else ""),
    ]
