"""A resumable distributed sampler over the global index of a dataset.

Definitions (the contract the tests check):

- **Global order** of an epoch: ``torch.randperm(n, generator=g)`` with ``g`` a
  ``torch.Generator`` seeded with ``seed + epoch`` (``shuffle=True``), else ``0..n-1``. It
  depends only on ``(n, seed, epoch, shuffle)``, never on the world size or rank, so it is
  exactly the order :class:`torch.utils.data.DistributedSampler` uses.
- **Position** ``p``: the number of samples of the global order already consumed in this
  epoch, summed over all ranks (``0 <= p <= n``; larger values mean "epoch finished").
- **Partition** of the remainder ``order[p:]`` (length ``m = n - p``) among ``W`` replicas:
  without ``drop_last`` the remainder is padded to a multiple of ``W`` by repeating its head
  (cyclically if needed); with ``drop_last`` its tail is cut to a multiple of ``W``. Rank ``r``
  takes positions ``r, r + W, r + 2W, ...`` of that list, i.e. global positions
  ``p + r, p + r + W, ...``. Every rank gets the same number of samples. At ``p = 0`` this is
  DistributedSampler's split, index for index.

A dataset that has ``set_epoch`` (``DCQDataset(combine=n)``, whose canvases are re-drawn each
epoch) follows the sampler: when the sampler is built on it, :meth:`DCQSampler.set_epoch` and
:meth:`DCQSampler.load_state_dict` pass the epoch on, so canvases and order change together.

Because the global order does not depend on ``W``, a run checkpointed at position ``p`` with
``W`` ranks and resumed with ``W'`` ranks hands out exactly ``order[p:]`` again, split ``W'``
ways: nothing is skipped or repeated (apart from the padding of the last, partial step).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Mapping, Sized
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from dcqformat.errors import InvalidArgumentError

_STATE_VERSION = 1


def _world() -> tuple[int, int]:
    """(world size, rank) of the default process group, or (1, 0) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _as_int(value: Any, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidArgumentError(f"{name} must be an integer, got {type(value).__name__}") from None


class DCQSampler(Sampler[int]):
    """DistributedSampler semantics over the global index, resumable under a new world size.

    Parameters
    ----------
    dataset_or_len:
        A sized dataset (its ``len`` is used) or the number of samples ``n``.
    num_replicas, rank:
        World size ``W`` and this process's rank; default: from the initialised
        ``torch.distributed`` process group, else 1 and 0 (a single process).
    shuffle:
        Permute the global index each epoch (seeded with ``seed + epoch``).
    seed:
        Base seed; must be the same on every rank.
    drop_last:
        Cut the tail of the remainder to a multiple of ``W`` instead of padding it.

    See the module docstring for the exact definitions of order, position and partition.
    Typical use::

        sampler = DCQSampler(ds, shuffle=True, seed=0)
        loader = DataLoader(ds, batch_size=256, sampler=sampler, num_workers=4)
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch)           # keeps a resumed position in the same epoch
            for step, batch in enumerate(loader):
                ...
                if checkpoint_now:
                    seen = sampler.position + (step + 1) * 256 * sampler.num_replicas
                    save(sampler.state_dict(samples_seen=seen))

        # resume, possibly with another world size:
        sampler.load_state_dict(saved)        # the next epoch pass starts at its position
    """

    def __init__(self, dataset_or_len: Sized | int, num_replicas: int | None = None,
                 rank: int | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if isinstance(dataset_or_len, (int, np.integer)):
            n = int(dataset_or_len)
        elif isinstance(dataset_or_len, Sized):
            n = len(dataset_or_len)
        else:
            raise InvalidArgumentError(
                f"dataset_or_len must be a sized dataset or an int, got {type(dataset_or_len).__name__}")
        if n < 0:
            raise InvalidArgumentError(f"the number of samples must be >= 0, got {n}")
        world, my_rank = _world()
        num_replicas = world if num_replicas is None else _as_int(num_replicas, "num_replicas")
        rank = my_rank if rank is None else _as_int(rank, "rank")
        if num_replicas < 1:
            raise InvalidArgumentError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise InvalidArgumentError(f"rank must be in 0..{num_replicas - 1}, got {rank}")
        self.n = n
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = bool(shuffle)
        self.seed = _as_int(seed, "seed")
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.position = 0
        follow = getattr(dataset_or_len, "set_epoch", None)
        self._dataset_set_epoch = follow if callable(follow) else None

    # -- the contract ---------------------------------------------------------------------
    def global_order(self) -> np.ndarray:
        """The epoch's global order over all ``n`` samples (int64), the same on every rank."""
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            return torch.randperm(self.n, generator=g).numpy()
        return np.arange(self.n, dtype=np.int64)

    @property
    def num_samples(self) -> int:
        """Samples this rank yields from the current position to the end of the epoch."""
        m = self.n - self.position
        if m <= 0:
            return 0
        if self.drop_last:
            return m // self.num_replicas
        return math.ceil(m / self.num_replicas)

    @property
    def total_size(self) -> int:
        """Samples all ranks together yield from the current position (padding included)."""
        return self.num_samples * self.num_replicas

    def indices(self) -> np.ndarray:
        """This rank's indices for the rest of the epoch (what ``iter`` yields), int64."""
        remainder = self.global_order()[self.position:]
        total = self.total_size
        if total == 0:
            return np.empty(0, dtype=np.int64)
        # np.resize repeats the head cyclically when growing and cuts the tail when shrinking:
        # exactly DistributedSampler's padding (not drop_last) and truncation (drop_last).
        arranged = np.resize(remainder, total)
        return arranged[self.rank:total:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    # -- epochs and resumption ----------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order is used. Moving to a different epoch resets the
        position to 0; setting the current epoch again keeps a resumed position. A dataset
        with ``set_epoch`` the sampler was built on gets the epoch too."""
        epoch = _as_int(epoch, "epoch")
        if epoch != self.epoch:
            self.position = 0
        self.epoch = epoch
        if self._dataset_set_epoch is not None:
            self._dataset_set_epoch(epoch)

    def set_position(self, samples_seen: int) -> None:
        """Start the next pass over this epoch after ``samples_seen`` samples of the global
        order (counted over all ranks, from the start of the epoch). Values past ``n`` mean
        the epoch is finished (the padding of a last partial step may make them exceed ``n``)."""
        samples_seen = _as_int(samples_seen, "samples_seen")
        if samples_seen < 0:
            raise InvalidArgumentError(f"samples_seen must be >= 0, got {samples_seen}")
        self.position = min(samples_seen, self.n)

    def state_dict(self, samples_seen: int | None = None) -> dict[str, Any]:
        """What is needed to resume: seed, epoch, shuffle, ``n`` and the global position.

        ``samples_seen`` (global, from the start of the epoch) records the position to save;
        without it the current ``position`` is saved. The state holds no world size: it can be
        loaded by a sampler with any ``num_replicas``.
        """
        position = self.position if samples_seen is None else _as_int(samples_seen, "samples_seen")
        if position < 0:
            raise InvalidArgumentError(f"samples_seen must be >= 0, got {position}")
        return {"version": _STATE_VERSION, "seed": self.seed, "epoch": self.epoch,
                "shuffle": self.shuffle, "n": self.n, "position": min(position, self.n)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore seed, epoch, shuffle and position saved by :meth:`state_dict` (under any
        world size). The number of samples must match: another ``n`` is another order."""
        missing = {"seed", "epoch", "shuffle", "n", "position"} - set(state)
        if missing:
            raise InvalidArgumentError(f"sampler state lacks {sorted(missing)}; got keys {sorted(state)}")
        if int(state.get("version", _STATE_VERSION)) != _STATE_VERSION:
            raise InvalidArgumentError(
                f"sampler state version {state['version']} is not {_STATE_VERSION}")
        if int(state["n"]) != self.n:
            raise InvalidArgumentError(
                f"sampler state was saved for {int(state['n'])} samples, this sampler has {self.n}")
        self.seed = int(state["seed"])
        self.shuffle = bool(state["shuffle"])
        self.epoch = int(state["epoch"])
        if self._dataset_set_epoch is not None:
            self._dataset_set_epoch(self.epoch)
        self.set_position(int(state["position"]))

    def __repr__(self) -> str:
        return (f"DCQSampler(n={self.n}, num_replicas={self.num_replicas}, rank={self.rank}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"epoch={self.epoch}, position={self.position})")
