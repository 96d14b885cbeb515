"""Index maps from packed bytes with torch operations, on whatever device the bytes are on.

:func:`unpack_bits` is the torch counterpart of :func:`dcqformat.codecs.bitpack.unpack_indices`
for rows of equal pixel count; :func:`raster_maps` and :func:`masked_maps` turn the packed
samples of one shape group of a :class:`~dcqformat.torch.packed.PackedBatch` into full
``[b, H·W]`` index maps (spec §5; §13 for patch masks). Everything here is integer arithmetic,
so the result is exact on every device.

Bit order (spec §5): pixel p occupies stream bits [p·q, p·q + q), stream bit t is bit t mod 8
of byte ⌊t/8⌋, least significant first. Eight pixels span exactly q bytes, so the bytes are
viewed as groups of q and pixel j of a group (j = 0..7) starts at bit j·q of it: byte
⌊j·q/8⌋, shift j·q mod 8. When q divides 8 (1, 2, 4) no index crosses a byte; for q = 3, 5,
6, 7 an index may continue into the next byte of its group, whose low bits are shifted in
above the first byte's (uint8 arithmetic suffices: only the low q ≤ 7 bits are kept).
"""

from __future__ import annotations

import numpy as np
import torch

from dcqformat.codecs.bitpack import check_bits
from dcqformat.errors import InvalidArgumentError

__all__ = ["masked_maps", "raster_maps", "rows_of", "unpack_bits"]


def unpack_bits(rows: torch.Tensor, n_pixels: int, bits: int) -> torch.Tensor:
    """The first ``n_pixels`` q-bit indices of every row of ``rows`` (uint8 ``[b, L]`` with
    ``L >= ceil(n_pixels*q/8)``), as uint8 ``[b, n_pixels]`` on the same device."""
    q = check_bits(bits)
    if rows.dtype != torch.uint8 or rows.ndim != 2:
        raise InvalidArgumentError(f"rows must be a uint8 [b, L] tensor, got {rows.dtype} {tuple(rows.shape)}")
    b, length = rows.shape
    need = (n_pixels * q + 7) // 8
    if length < need:
        raise InvalidArgumentError(f"rows of {length} bytes cannot hold {n_pixels} pixels at {q} bits")
    dev = rows.device
    if q == 8:
        return rows[:, :n_pixels]
    mask = (1 << q) - 1
    if 8 % q == 0:  # 1, 2, 4: whole indices per byte, LSB first
        per = 8 // q
        shifts = torch.arange(0, 8, q, dtype=torch.uint8, device=dev)
        out = (rows[:, :need, None] >> shifts) & mask
        return out.reshape(b, need * per)[:, :n_pixels]
    groups = -(-n_pixels // 8)
    width = groups * q
    if length < width:
        rows = torch.nn.functional.pad(rows, (0, width - length))
    grp = rows[:, :width].reshape(b, groups, q)
    start = np.arange(8) * q
    first = start // 8
    shift = start % 8
    lo = torch.as_tensor(first, dtype=torch.int64).to(dev)
    hi = torch.as_tensor(np.minimum(first + 1, q - 1), dtype=torch.int64).to(dev)
    # Shift the next byte in above the first byte's remaining 8 - s bits. Where an index does
    # not cross (s + q <= 8) that lands at bit >= q and is masked off; 7 caps s = 0 (q <= 7).
    up = torch.as_tensor(np.minimum(8 - shift, 7), dtype=torch.uint8).to(dev)
    down = torch.as_tensor(shift, dtype=torch.uint8).to(dev)
    out = ((grp[:, :, lo] >> down) | (grp[:, :, hi] << up)) & mask
    return out.reshape(b, groups * 8)[:, :n_pixels]


def rows_of(buffer: torch.Tensor, starts: np.ndarray, lengths: np.ndarray, width: int) -> torch.Tensor:
    """``buffer[starts[r] : starts[r] + lengths[r]]`` for every r as the rows of a uint8
    ``[b, width]`` tensor on ``buffer``'s device, zero beyond each length (``lengths <= width``;
    the ranges lie inside ``buffer``: the batch was validated). Consecutive full-width rows are
    a view."""
    b = int(starts.size)
    dev = buffer.device
    if width == 0 or b == 0 or buffer.numel() == 0:
        return torch.zeros((b, width), dtype=torch.uint8, device=dev)
    s0 = int(starts[0])
    if (lengths == width).all() and (b == 1 or (np.diff(starts) == width).all()):
        return buffer[s0:s0 + b * width].view(b, width)
    cols = torch.arange(width, device=dev)
    pos = torch.as_tensor(np.asarray(starts, np.int64)).to(dev)[:, None] + cols
    valid = cols < torch.as_tensor(np.asarray(lengths, np.int64)).to(dev)[:, None]
    out = buffer[pos.clamp_(max=buffer.numel() - 1)]
    return out.masked_fill_(~valid, 0)


def raster_maps(data: torch.Tensor, offsets: np.ndarray, rows: np.ndarray, n: int, q: int) -> torch.Tensor:
    """Index maps uint8 ``[b, n]`` of the unmasked samples ``rows`` (all of ``n`` pixels)."""
    length = (n * q + 7) // 8
    starts = offsets[rows]
    return unpack_bits(rows_of(data, starts, np.full(rows.size, length), length), n, q)


def _geometry(h: int, w: int, p: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per pixel its patch number and its position inside the patch (raster order), and the
    area of every patch (edge patches clipped): int64 ``[h·w]``, ``[h·w]``, ``[G]``."""
    gw = -(-w // p)
    y = torch.arange(h, device=dev)
    x = torch.arange(w, device=dev)
    r, c = y // p, x // p
    patch_w = torch.clamp(w - torch.arange(gw, device=dev) * p, max=p)
    patch_h = torch.clamp(h - torch.arange(-(-h // p), device=dev) * p, max=p)
    pid = (r[:, None] * gw + c[None, :]).reshape(-1)
    local = ((y - r * p)[:, None] * patch_w[c][None, :] + (x - c * p)[None, :]).reshape(-1)
    area = (patch_h[:, None] * patch_w[None, :]).reshape(-1)
    return pid, local, area


def masked_maps(data: torch.Tensor, keep: torch.Tensor, fills: torch.Tensor, lay: dict[str, np.ndarray],
                rows: np.ndarray, h: int, w: int, p: int, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index maps uint8 ``[b, h·w]`` of the patch-masked samples ``rows`` (spec §13: kept
    pixels in patch order, the fill index in dropped patches) and the boolean ``[b, h·w]`` of
    kept pixels. ``lay`` holds the batch's host arrays offsets, stored, keep_offsets,
    fill_offsets."""
    dev = data.device
    pid, local, area = _geometry(h, w, p, dev)
    n_patches = int(area.numel())
    mbytes = (n_patches + 7) // 8
    keep_rows = rows_of(keep, lay["keep_offsets"][rows], np.full(rows.size, mbytes), mbytes)
    kept = unpack_bits(keep_rows, n_patches, 1).bool()
    kept_area = kept * area
    start = torch.cumsum(kept_area, 1) - kept_area
    dropped = (~kept).to(torch.int64)
    rank = torch.cumsum(dropped, 1) - dropped
    n_fill = lay["fill_offsets"][rows + 1] - lay["fill_offsets"][rows]
    fill_w = max(int(n_fill.max()), 1)
    fill_rows = rows_of(fills, lay["fill_offsets"][rows], n_fill, fill_w)
    fill_of_patch = torch.gather(fill_rows, 1, rank.clamp_(max=fill_w - 1))
    stored = lay["stored"][rows]
    s_max = max(int(stored.max()), 1)
    lengths = (stored * q + 7) // 8
    stream = unpack_bits(rows_of(data, lay["offsets"][rows], lengths, (s_max * q + 7) // 8), s_max, q)
    kept_px = kept[:, pid]
    pos = (start[:, pid] + local).clamp_(max=s_max - 1)
    idx = torch.where(kept_px, torch.gather(stream, 1, pos), fill_of_patch[:, pid])
    return idx, kept_px
