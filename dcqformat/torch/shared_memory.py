"""New shared-memory buffers for the batches a DataLoader worker sends, made ready to write.

A worker sends every tensor storage that is not yet in shared memory by copying it into a new
segment; a batch decoded into such a segment in the first place is sent as it is. Two costs of
making one were measured on the 2-core development VM for a batch of 256 64-px RGB images
(3 MiB; ``benchmarks/shm_alloc.py``):

- ``torch.empty(n).share_memory_()`` allocates private memory, then a segment, and copies the
  (untouched) private pages into it: each page is faulted twice. :func:`shared_uint8` asks torch
  for a new segment directly (``UntypedStorage._new_shared``, what ``torch.multiprocessing``
  itself uses; ``share_memory_`` where a torch lacks it).
- Writing a fresh segment faults in one 4 KiB page at a time (768 faults for 3 MiB). On Linux
  :func:`shared_uint8` maps all of them in one ``madvise(MADV_POPULATE_WRITE)`` call (Linux
  5.14 and later; on older kernels, or elsewhere, the call fails or is skipped and the pages
  fault in as they are written, as before).
"""

from __future__ import annotations

import ctypes
import functools
import sys
from typing import Any

import torch

__all__ = ["populate", "shared_uint8"]

MADV_POPULATE_WRITE = 23  # <linux/mman.h>
PAGE = 4096


@functools.cache
def _libc_madvise() -> Any:
    """libc's ``madvise`` (None where there is none to call)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def populate(address: int, nbytes: int) -> bool:
    """Map the pages of the writable mapping ``[address, address + nbytes)`` now, in one call,
    instead of one fault per page as they are first written. Returns whether the kernel did
    (False off Linux, on kernels before 5.14, or for an empty range); the memory's content is
    unchanged either way."""
    if nbytes <= 0 or not sys.platform.startswith("linux"):
        return False
    fn = _libc_madvise()
    if fn is None:
        return False
    start = address - address % PAGE
    return bool(fn(start, nbytes + (address - start), MADV_POPULATE_WRITE) == 0)


def shared_uint8(nbytes: int) -> torch.Tensor:
    """A new uint8 tensor of ``nbytes`` elements in shared memory (torch's current sharing
    strategy), its pages mapped (:func:`populate`); the content is undefined."""
    new_shared = getattr(torch.UntypedStorage, "_new_shared", None)
    if new_shared is None:  # pragma: no cover - every torch this project supports has it
        return torch.empty(nbytes, dtype=torch.uint8).share_memory_()
    buf = torch.empty(0, dtype=torch.uint8).set_(new_shared(nbytes))
    populate(buf.data_ptr(), nbytes)
    return buf
