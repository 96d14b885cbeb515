"""Bit packing of q-bit palette index maps (q = 1..8).

This module implements the normative bit layout of a sample's index map.

Layout (normative)
------------------
An index map of ``n`` pixels at ``q`` bits per pixel is a little-endian bit stream:

* pixel ``p`` (row-major, 0-based) occupies stream bits ``[p*q, p*q + q)``;
* stream bit ``b`` is bit ``b % 8`` of byte ``b // 8``, bit 0 being the least significant;
* the index value is ``sum_j bit(p*q + j) << j`` (least significant bit first);
* a sample takes ``ceil(n*q / 8)`` bytes and the padding bits after the last pixel MUST be 0.

This is exactly ``np.packbits(bits, bitorder="little")`` of each value's q bits, LSB first.

Worked example, q = 3, indices ``[5, 3, 7]`` (9 bits -> 2 bytes)::

    pixel                  0        1        2
    value                  5        3        7
    value bits, LSB first  1 0 1    1 1 0    1 1 1
    stream bit             0 1 2    3 4 5    6 7 8

    byte 0 = stream bits 7..0 (MSB to LSB) = 1 1 | 0 1 1 | 1 0 1 = 0b11011101 = 0xDD
             (= 5 | 3 << 3 | (7 << 6) & 0xFF)
    byte 1 = stream bit 8 (the top bit of 7), then 7 zero padding bits = 0x01

so ``pack_indices([5, 3, 7], 3) == [0xDD, 0x01]``.

Kernels
-------
``_pack_kernel`` and ``_unpack_kernel`` are the raw ``@njit`` kernels. They do no bounds checks;
call them only with arguments validated the way :func:`pack_indices` / :func:`unpack_indices` do.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numba import njit

from dcqformat.errors import InvalidArgumentError, PayloadError

MIN_BITS = 1
MAX_BITS = 8
U8 = np.dtype(np.uint8)

__all__ = [
    "MAX_BITS",
    "MIN_BITS",
    "U8",
    "as_packed_array",
    "check_bits",
    "check_count",
    "pack_indices",
    "packed_size",
    "padding_is_zero",
    "unpack_indices",
]


def check_bits(bits: Any) -> int:
    """Return ``bits`` as an int after checking it is an integer in 1..8.

    Raises :class:`InvalidArgumentError` otherwise (bool is rejected too).
    """
    if type(bits) is int and MIN_BITS <= bits <= MAX_BITS:  # fast path
        return bits
    if isinstance(bits, bool | np.bool_):
        raise InvalidArgumentError(f"bits must be an integer in 1..8, got {bits!r}")
    try:
        b = operator.index(bits)
    except TypeError:
        raise InvalidArgumentError(
            f"bits must be an integer in 1..8, got {type(bits).__name__} {bits!r}"
        ) from None
    if not MIN_BITS <= b <= MAX_BITS:
        raise InvalidArgumentError(f"bits must be in 1..8, got {b}")
    return b


def check_count(value: Any, name: str) -> int:
    """Return ``value`` as a non-negative int or raise :class:`InvalidArgumentError`."""
    if type(value) is int and value >= 0:  # fast path
        return value
    if isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(f"{name} must be a non-negative integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise InvalidArgumentError(
            f"{name} must be a non-negative integer, got {type(value).__name__} {value!r}"
        ) from None
    if v < 0:
        raise InvalidArgumentError(f"{name} must be >= 0, got {v}")
    return v


def as_packed_array(packed: Any, what: str = "packed") -> np.ndarray:
    """Return ``packed`` as a 1-D C-contiguous uint8 array (bytes-like objects are wrapped)."""
    if (
        type(packed) is np.ndarray
        and packed.dtype is U8
        and packed.ndim == 1
        and packed.flags.c_contiguous
    ):  # fast path
        return packed
    if isinstance(packed, bytes | bytearray | memoryview):
        packed = np.frombuffer(packed, dtype=np.uint8)
    if not isinstance(packed, np.ndarray):
        raise InvalidArgumentError(
            f"{what} must be a 1-D uint8 numpy array, got {type(packed).__name__}"
        )
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise InvalidArgumentError(
            f"{what} must be a 1-D uint8 array, got dtype {packed.dtype} with shape {packed.shape}"
        )
    if type(packed) is not np.ndarray:  # np.memmap and other subclasses: a plain view
        packed = packed.view(np.ndarray)
    if not packed.flags.c_contiguous:
        packed = np.ascontiguousarray(packed)
    return packed


def packed_size(n_pixels: int, bits: int) -> int:
    """Number of bytes of a packed index map: ``ceil(n_pixels * bits / 8)``.

    Raises :class:`InvalidArgumentError` if ``bits`` is not in 1..8 or ``n_pixels`` < 0.
    """
    n = check_count(n_pixels, "n_pixels")
    q = check_bits(bits)
    return (n * q + 7) // 8


@njit(cache=True, nogil=True)
def _pack_kernel(values, bits, out):  # type: ignore[no-untyped-def]
    """Pack ``values`` (1-D uint8, each < 2**bits) into ``out`` (packed_size bytes, zeroed tail).

    Works in groups of 8 pixels, which span exactly ``bits`` bytes.
    """
    n = values.shape[0]
    if bits == 8:
        for i in range(n):
            out[i] = values[i]
        return
    full = n // 8
    for g in range(full):
        base = g * 8
        chunk = np.int64(0)
        for j in range(8):
            chunk |= np.int64(values[base + j]) << (j * bits)
        ob = g * bits
        for k in range(bits):
            out[ob + k] = (chunk >> (8 * k)) & 0xFF
    rem = n - full * 8
    if rem > 0:
        base = full * 8
        chunk = np.int64(0)
        for j in range(rem):
            chunk |= np.int64(values[base + j]) << (j * bits)
        ob = full * bits
        nbytes = (rem * bits + 7) // 8
        for k in range(nbytes):
            out[ob + k] = (chunk >> (8 * k)) & 0xFF


@njit(cache=True, nogil=True)
def _unpack_kernel(packed, bits, n_pixels, out):  # type: ignore[no-untyped-def]
    """Unpack ``n_pixels`` indices of ``bits`` bits from ``packed`` into ``out`` (1-D uint8).

    Reads only the first ``ceil(n_pixels*bits/8)`` bytes of ``packed``.
    """
    if bits == 8:
        for i in range(n_pixels):
            out[i] = packed[i]
        return
    mask = (1 << bits) - 1
    full = n_pixels // 8
    for g in range(full):
        ib = g * bits
        chunk = np.int64(0)
        for k in range(bits):
            chunk |= np.int64(packed[ib + k]) << (8 * k)
        base = g * 8
        for j in range(8):
            out[base + j] = (chunk >> (j * bits)) & mask
    rem = n_pixels - full * 8
    if rem > 0:
        ib = full * bits
        nbytes = (rem * bits + 7) // 8
        chunk = np.int64(0)
        for k in range(nbytes):
            chunk |= np.int64(packed[ib + k]) << (8 * k)
        base = full * 8
        for j in range(rem):
            out[base + j] = (chunk >> (j * bits)) & mask


def pack_indices(indices: np.ndarray, bits: int) -> np.ndarray:
    """Pack an index map into the normative little-endian q-bit stream.

    ``indices`` is an integer array of any shape (flattened row-major; array-likes are converted
    with ``np.asarray``); every value must be in
    ``0 .. 2**bits - 1``. Returns a new 1-D uint8 array of ``packed_size(indices.size, bits)``
    bytes whose padding bits are zero.

    Raises :class:`InvalidArgumentError` if ``bits`` is not in 1..8, if ``indices`` is not an
    array of an integer dtype (bool, float, object are refused), or if a value is out of range.
    """
    q = check_bits(bits)
    if not isinstance(indices, np.ndarray):
        try:
            indices = np.asarray(indices)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"indices must be an integer array: {exc}") from None
    if indices.dtype.kind not in "ui":
        raise InvalidArgumentError(
            f"indices must have an unsigned or signed integer dtype, got {indices.dtype}"
        )
    flat = indices.reshape(-1)
    if flat.size:
        lo = int(flat.min())
        hi = int(flat.max())
        if lo < 0 or hi >= (1 << q):
            bad = lo if lo < 0 else hi
            pos = int(np.flatnonzero(flat == bad)[0])
            raise InvalidArgumentError(
                f"index value {bad} at flat position {pos} is outside 0..{(1 << q) - 1} "
                f"allowed at bits={q}"
            )
    values = np.ascontiguousarray(flat, dtype=np.uint8)
    out = np.empty((values.size * q + 7) // 8, dtype=np.uint8)
    _pack_kernel(values, q, out)
    return out


def unpack_indices(packed: np.ndarray, n_pixels: int, bits: int) -> np.ndarray:
    """Unpack ``n_pixels`` q-bit indices from a packed stream; returns a new 1-D uint8 array.

    ``packed`` must be a 1-D uint8 array (bytes-like objects are accepted) of exactly
    ``packed_size(n_pixels, bits)`` bytes. The padding bits are not inspected; use
    :func:`padding_is_zero` to check them.

    Raises :class:`InvalidArgumentError` for bad ``bits``/``n_pixels``/dtype and
    :class:`PayloadError` if the length of ``packed`` is wrong.
    """
    q = check_bits(bits)
    n = check_count(n_pixels, "n_pixels")
    arr = as_packed_array(packed)
    need = (n * q + 7) // 8
    if arr.size != need:
        raise PayloadError(
            f"packed index map has {arr.size} bytes, expected {need} for {n} pixels at {q} bits"
        )
    out = np.empty(n, dtype=np.uint8)
    _unpack_kernel(arr, q, n, out)
    return out


def padding_is_zero(packed: np.ndarray, n_pixels: int, bits: int) -> bool:
    """Return True if the padding bits after the last pixel of ``packed`` are all zero.

    Raises :class:`PayloadError` if ``packed`` is not exactly ``packed_size(n_pixels, bits)``
    bytes, and :class:`InvalidArgumentError` for bad arguments.
    """
    q = check_bits(bits)
    n = check_count(n_pixels, "n_pixels")
    arr = as_packed_array(packed)
    need = (n * q + 7) // 8
    if arr.size != need:
        raise PayloadError(
            f"packed index map has {arr.size} bytes, expected {need} for {n} pixels at {q} bits"
        )
    used = (n * q) % 8
    if used == 0:
        return True
    return int(arr[-1]) >> used == 0
