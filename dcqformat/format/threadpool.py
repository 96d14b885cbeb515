"""The reader's decode threads: how many, how a batch is split, and the process's pool.

A batch decode is split into contiguous chunks of about equal pixel count
(:func:`split_by_pixels`) and :func:`run_chunks` decodes chunk 0 in the calling thread and the
others on a :class:`~concurrent.futures.ThreadPoolExecutor`. That pays off because every
decode kernel is compiled with ``nogil=True`` and python-zstandard's batch decompression
releases the GIL too, so the chunks run on separate cores.

:func:`resolve_threads` turns the public ``threads`` argument into a count: None is automatic
(the CPUs this process may run on, ``len(os.sched_getaffinity(0))`` where the system has it,
at most :data:`MAX_AUTO_THREADS`, and one thread per :data:`MIN_PIXELS_PER_THREAD` pixels of
the batch for its kind of work, so a small batch is never split); an int must be >= 1.

The pool is made lazily, once per process, and is fork-safe: a ``fork`` child (a DataLoader
worker) never uses the pool it inherited (its threads do not exist there). The pool remembers
the process id that made it, and an at-fork hook drops the pool and its lock in the child, so
the child makes a new one on its first threaded decode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from dcqformat.checks import check_int

__all__ = ["MAX_AUTO_THREADS", "MIN_PIXELS_PER_THREAD", "available_cpus", "resolve_threads",
           "split_by_pixels", "run_chunks", "pool"]

#: The most threads ``threads=None`` uses.
MAX_AUTO_THREADS = 8
#: ``threads=None`` uses one thread per this many pixels of the batch, by the work done per
#: pixel: ``"ctx"`` entropy decoding (~5 ns/px), ``"zstd"`` (~1.3 ns/px in all) and
#: ``"palette"`` (raw payloads, cached maps, :func:`~dcqformat.torch.expand`: ~0.3 ns/px). A
#: batch under twice the count stays in the calling thread: handing a chunk to another thread
#: and back costs ~0.1 ms on a 2-core VM (more for zstd, whose chunks pass the GIL back and forth
#: between their compiled steps). Measured there (64 and 224 px, q = 2), 2 threads vs 1: ctx
#: 1.06x at 65K pixels, 1.72x at 262K; zstd 0.71x at 262K, 1.18x at 1M; palette 0.84x at 1M,
#: 1.26-1.41x at 3.2-4.2M.
MIN_PIXELS_PER_THREAD = {"ctx": 1 << 16, "zstd": 1 << 19, "palette": 1 << 21}


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask where the system has
    one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: Any, pixels: int, work: str = "palette") -> int:
    """The thread count for a batch of ``pixels`` pixels of ``work`` (a key of
    :data:`MIN_PIXELS_PER_THREAD`): ``threads`` itself (validated: an int >= 1, else
    :class:`~dcqformat.errors.InvalidArgumentError` naming the value) or, for None, the
    automatic count described in the module docstring."""
    if threads is not None:
        return check_int(threads, "threads", minimum=1)
    per = MIN_PIXELS_PER_THREAD[work]
    return max(1, min(MAX_AUTO_THREADS, available_cpus(), int(pixels) // per))


def split_by_pixels(pixels: np.ndarray, threads: int) -> list[tuple[int, int]]:
    """At most ``threads`` contiguous, non-empty ``(start, stop)`` ranges covering
    ``range(len(pixels))`` whose sums of ``pixels`` (per-sample counts) are about equal."""
    b = int(pixels.size)
    n = max(1, min(int(threads), b))
    if n == 1:
        return [(0, b)]
    cum = np.cumsum(pixels, dtype=np.int64)
    targets = cum[-1] * np.arange(1, n, dtype=np.int64) / n
    # the boundary after the first sample whose running total reaches each target
    cuts = np.searchsorted(cum, targets, side="left") + 1
    bounds = np.unique(np.concatenate(([0], np.clip(cuts, 1, b - 1), [b])))
    return [(int(s), int(e)) for s, e in zip(bounds[:-1], bounds[1:], strict=True)]


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_size = 0
_lock = threading.Lock()


def _forget_pool_in_child() -> None:
    """At-fork hook: the child must not use (or wait on the lock of) the parent's pool."""
    global _pool, _pool_pid, _pool_size, _lock
    _pool, _pool_pid, _pool_size, _lock = None, 0, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def pool(workers: int) -> ThreadPoolExecutor:
    """This process's decode pool with at least ``workers`` threads (made on first use, and
    again in a forked child or when more threads are asked for; a replaced pool's idle
    threads exit once it is no longer referenced)."""
    global _pool, _pool_pid, _pool_size
    pid = os.getpid()
    with _lock:
        if _pool is None or _pool_pid != pid or _pool_size < workers:
            size = max(workers, _pool_size if _pool_pid == pid else 0)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="dcq-decode")
            _pool_pid, _pool_size = pid, size
        return _pool


def run_chunks(fn: Callable[[int, int], Any], chunks: list[tuple[int, int]]) -> list[Any]:
    """``[fn(start, stop) for (start, stop) in chunks]``, chunk 0 in the calling thread and
    the others on :func:`pool`. Every chunk has finished when it returns or raises; an
    exception is re-raised from the first chunk (in batch order) that raised one."""
    if len(chunks) == 1:
        return [fn(*chunks[0])]
    executor = pool(len(chunks) - 1)
    futures: list[Future[Any]] = [executor.submit(fn, s, e) for s, e in chunks[1:]]
    results: list[Any] = []
    error: BaseException | None = None
    try:
        results.append(fn(*chunks[0]))
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other chunks
        error = exc
    for fut in futures:
        try:
            results.append(fut.result())
        except BaseException as exc:  # noqa: BLE001
            error = exc if error is None else error
    if error is not None:
        raise error
    return results
