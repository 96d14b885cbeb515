"""Numba codecs of dcqformat: bit packing, palette decode, patch masks, the ctx coder.

Every public function validates its arguments in Python and then calls an ``@njit`` kernel
(``cache=True, nogil=True``); the kernels do no bounds checks. Each kernel has a pure-NumPy
counterpart in :mod:`dcqformat.codecs.reference` (the ctx coder's in
:mod:`dcqformat.codecs.ctx_reference`, the zstd frame walk's in
:mod:`dcqformat.codecs.zstd_reference`), and Hypothesis property tests check that they agree;
``tests/test_kernel_references.py`` fails for a kernel that has no registered reference and test.

Debugging: set the environment variable ``NUMBA_DISABLE_JIT=1`` *before* importing dcqformat to
turn Numba compilation off; every kernel then runs as plain Python (slowly, but with Python's
bounds checks and tracebacks, and under pdb).

Public API:

* :func:`packed_size`, :func:`pack_indices`, :func:`unpack_indices`, :func:`padding_is_zero`
  -- the normative q-bit little-endian layout (see :mod:`dcqformat.codecs.bitpack`);
* :func:`decode_into`, :func:`decode_many_into` -- unpack + palette gather into uint8 buffers,
  HWC or planar CHW (see :mod:`dcqformat.codecs.palette`);
* :func:`gather_kept`, :func:`scatter_kept`, :func:`decode_masked_into`, :func:`mask_stats`
  -- the patch masks of spec §13 (see :mod:`dcqformat.codecs.patches`).
"""

from __future__ import annotations

from dcqformat.codecs.bitpack import (
    MAX_BITS,
    MIN_BITS,
    check_bits,
    pack_indices,
    packed_size,
    padding_is_zero,
    unpack_indices,
)
from dcqformat.codecs.palette import decode_into, decode_many_into
from dcqformat.codecs.patches import decode_masked_into, gather_kept, mask_stats, scatter_kept

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "check_bits",
    "decode_into",
    "decode_many_into",
    "decode_masked_into",
    "gather_kept",
    "mask_stats",
    "pack_indices",
    "packed_size",
    "padding_is_zero",
    "scatter_kept",
    "unpack_indices",
]
