"""What every stage of a conversion shares: the checked options, the device, the timer, the
random streams and the threaded image loader (:class:`RunContext`)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dcqformat.device import resolve_device
from dcqformat.encode.images import LoadOptions, scale_image
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.sources import ImageSource
from dcqformat.errors import InputImageError

__all__ = ["RunContext", "Timer", "Loaded", "STREAMS", "block_seed", "torch_threads"]

#: Independent random streams derived from the one seed (their numbers are part of the output).
STREAMS = {"sample": 1, "train": 2, "mask": 3, "image_palette": 4, "cluster": 5, "shared": 6,
           "refine": 7}

Loaded = tuple[int, "np.ndarray | InputImageError"]

#: The loader prefetches ahead of the stage only as many images as fit this many pixels.
PREFETCH_PIXELS = 1 << 24


def block_seed(seed: int, stream: int, block: int) -> int:
    """Seed of random stream ``stream`` for analyse block ``block`` (independent of sharding)."""
    return ((int(seed) * 1_000_003 + int(stream)) * 1_000_003 + int(block)) % (1 << 63)


class Timer:
    """Seconds per stage name (a stage may be entered several times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block under ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        """Book ``seconds`` under ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: leave them)."""
    if n is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@dataclass
class RunContext:
    """One conversion's shared state. ``skipped`` maps listing positions of unreadable images
    (``on_error="skip"``) to their error message."""

    opts: ConvertOptions
    source: ImageSource
    device: torch.device
    threads: int | None
    timer: Timer = field(default_factory=Timer)
    skipped: dict[int, str] = field(default_factory=dict)
    original_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def create(cls, opts: ConvertOptions, source: ImageSource, timer: Timer | None = None
               ) -> RunContext:
        """Resolve the device and the thread rule (one torch thread on the CPU by default)."""
        dev = resolve_device(opts.device)
        threads = 1 if opts.threads is None and dev.type == "cpu" else opts.threads
        return cls(opts, source, dev, threads, timer or Timer())

    @property
    def load_options(self) -> LoadOptions:
        """How source images become arrays."""
        o = self.opts
        return LoadOptions(o.background, o.max_side, o.max_pixels)

    def say(self, message: str) -> None:
        """One line for the log callback (if any)."""
        if self.opts.log is not None:
            self.opts.log(message)

    def bar(self, total: int, desc: str, unit: str = "img") -> Any:
        """A progress bar (disabled unless ``progress``)."""
        return tqdm(total=total, desc=desc, unit=unit, disable=not self.opts.progress, leave=False)

    def generator(self, stream: str, device: torch.device | None = None) -> torch.Generator:
        """The torch generator of random stream ``stream`` on ``device`` (default: ours)."""
        g = torch.Generator(device=device or self.device)
        g.manual_seed((int(self.opts.seed) * 1_000_003 + STREAMS[stream]) % (1 << 63))
        return g

    def fail_or_skip(self, pos: int, err: InputImageError) -> None:
        """Raise ``err`` (``on_error="fail"``) or record position ``pos`` as skipped."""
        if self.opts.on_error == "fail":
            raise err
        self.skipped.setdefault(pos, str(err))

    def load_many(self, positions: Sequence[int]) -> Iterator[Loaded]:
        """Yield ``(position, array or error)`` in order, decoding up to ``workers`` images ahead
        in threads (Pillow's decoders release the GIL). With ``scale`` < 1 the arrays are the
        scaled images and :attr:`original_sizes` records each position's size before."""
        loaded = _load_many(self.source, positions, self.load_options,
                            self.opts.resolved_workers())
        if self.opts.scale == 1.0:
            return loaded
        return self._scaled(loaded)

    def _scaled(self, loaded: Iterator[Loaded]) -> Iterator[Loaded]:
        for pos, got in loaded:
            if isinstance(got, np.ndarray):
                self.original_sizes[pos] = (int(got.shape[0]), int(got.shape[1]))
                got = scale_image(got, self.opts.scale)
            yield pos, got

    def reload(self, positions: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Like :meth:`load_many` for images that were readable before: an error now means the
        source changed during the conversion."""
        for pos, got in self.load_many(positions):
            if isinstance(got, InputImageError):
                raise InputImageError(f"{got} (it was readable earlier: did the source change "
                                      "during the conversion?)")
            yield pos, got


def _try_load(source: ImageSource, pos: int, opts: LoadOptions) -> np.ndarray | InputImageError:
    try:
        return source.load(pos, opts)
    except InputImageError as e:
        return e


def _load_many(source: ImageSource, positions: Sequence[int], opts: LoadOptions,
               workers: int) -> Iterator[Loaded]:
    if workers <= 1:
        for pos in positions:
            yield pos, _try_load(source, pos, opts)
        return
    # Images in flight: up to 4 per thread while they are small, fewer once large ones are
    # seen, so that the prefetched pixels stay near PREFETCH_PIXELS.
    window, largest = workers, 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dcq-load") as ex:
        pending: deque[tuple[int, Future[np.ndarray | InputImageError]]] = deque()
        it = iter(positions)
        done = False
        while True:
            while not done and len(pending) < window:
                nxt = next(it, None)
                if nxt is None:
                    done = True
                else:
                    pending.append((nxt, ex.submit(_try_load, source, nxt, opts)))
            if not pending:
                return
            pos, fut = pending.popleft()
            got = fut.result()
            if isinstance(got, np.ndarray):
                largest = max(largest, got.shape[0] * got.shape[1])
                window = max(1, min(4 * workers, PREFETCH_PIXELS // largest))
            yield pos, got
