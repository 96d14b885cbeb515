"""What each payload encoding would cost for an open file (``dcqformat info``): raw exactly,
zstd by compressing every stored map at the writer's level, ctx by fitting the writer's model to
the file's maps (the ideal code length of the fitted frequencies, 4 state bytes per sample, the
model's deflated bytes). The encoding the file uses is reported as stored.

Files of more than ``max_samples`` samples are measured on a seeded random subset of that many
and scaled by N / subset (the report says so); everything streams one sample at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import zstandard

from dcqformat.codecs.bitpack import unpack_indices
from dcqformat.errors import PayloadError
from dcqformat.format import ctx as C
from dcqformat.format import layout as L
from dcqformat.format.ctx_writer import CtxFitter, model_storage_bytes

if TYPE_CHECKING:
    from dcqformat.format.reader import DCQFile

__all__ = ["encoding_costs"]


def _rects(f: DCQFile, i: int) -> np.ndarray:
    h, w, _ = f.shape(i)
    if f.patch_size is None:
        return np.array([[h, w]], np.int64)
    return C.kept_rects(h, w, f.patch_size, f.patch_mask(i))


def encoding_costs(f: DCQFile, max_samples: int = 20000, seed: int = 0) -> dict[str, Any]:
    """``{"raw": B, "zstd": B, "ctx": B, "measured_on": n, "ctx_models": kind}``: payload bytes
    each encoding would take (ctx: streams + models), the file's own encoding as stored."""
    m = f.metadata
    n = m.num_samples
    pick = np.arange(n) if n <= max_samples else np.sort(
        np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
    scale = n / pick.size if pick.size else 1.0
    packed_sizes = (np.array([f.stored_pixels(i) for i in range(n)], np.int64) * m.bits + 7) // 8
    costs: dict[str, Any] = {"raw": int(packed_sizes.sum())}
    cctx = zstandard.ZstdCompressor(level=L.ZSTD_DEFAULT_LEVEL, write_content_size=True,
                                    write_checksum=False)
    fitter = CtxFitter(m.palette_size)
    zstd_bytes = 0
    for i in pick.tolist():
        packed = f.packed(i)
        if m.payload_encoding != "zstd":
            zstd_bytes += len(cctx.compress(packed.tobytes()))
        if m.payload_encoding != C.ENCODING:
            values = unpack_indices(packed, f.stored_pixels(i), m.bits)
            if values.size and int(values.max()) >= m.palette_size:  # packed() checks no index
                raise PayloadError(f"{f.path}: sample {i} holds a palette index "
                                   f"{int(values.max())} >= palette_size {m.palette_size}")
            fitter.add(values, _rects(f, i), int(m.cluster[i]))
    costs["zstd"] = m.payload_size if m.payload_encoding == "zstd" else int(round(zstd_bytes * scale))
    if m.payload_encoding == C.ENCODING:
        section: C.CtxSection = m.ctx
        costs["ctx"] = m.payload_size + section.stored_bytes
        costs["ctx_models"] = section.kind
    else:
        fitted, measured = fitter.fit(m.palettes.shape[0])  # streams + model + 4 B per sample
        stream = measured[fitted.kind] - model_storage_bytes(fitted.model)
        costs["ctx"] = int(round(stream * scale + model_storage_bytes(fitted.model)))
        costs["ctx_models"] = fitted.kind
    costs["measured_on"] = int(pick.size)
    return costs
