"""DCQSampler: DistributedSampler semantics over the global index, and resumption from a global
position under a different world size."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DistributedSampler

from dcqformat import DcqError
from dcqformat.torch import DCQSampler


def ranks(n: int, world: int, **kw: object) -> list[list[int]]:
    return [list(DCQSampler(n, num_replicas=world, rank=r, **kw)) for r in range(world)]  # type: ignore[arg-type]


class _Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), world=st.integers(1, 9), seed=st.integers(0, 2**31), epoch=st.integers(0, 5),
       shuffle=st.booleans(), drop_last=st.booleans())
def test_same_split_as_distributed_sampler(n: int, world: int, seed: int, epoch: int, shuffle: bool,
                                           drop_last: bool) -> None:
    for r in range(world):
        ours = DCQSampler(_Sized(n), num_replicas=world, rank=r, shuffle=shuffle, seed=seed,
                          drop_last=drop_last)
        ours.set_epoch(epoch)
        if n == 0:
            assert list(ours) == [] and len(ours) == 0
            continue
        theirs = DistributedSampler(_Sized(n), num_replicas=world, rank=r, shuffle=shuffle,  # type: ignore[arg-type]
                                    seed=seed, drop_last=drop_last)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 80), world=st.integers(1, 8), seed=st.integers(0, 1000), drop_last=st.booleans())
def test_partition_disjoint_complete_equal(n: int, world: int, seed: int, drop_last: bool) -> None:
    parts = ranks(n, world, seed=seed, drop_last=drop_last)
    lengths = {len(p) for p in parts}
    assert len(lengths) == 1  # equal length on every rank
    per_rank = lengths.pop()
    counts = Counter(i for p in parts for i in p)
    if drop_last:
        assert per_rank == n // world
        assert all(c == 1 for c in counts.values())  # disjoint
        assert len(counts) == per_rank * world
    else:
        assert per_rank == math.ceil(n / world)
        assert set(counts) == set(range(n))  # complete
        pad = per_rank * world - n
        assert sum(c - 1 for c in counts.values()) == pad  # only the padding repeats
    assert parts == ranks(n, world, seed=seed, drop_last=drop_last)  # deterministic


def test_order_depends_on_seed_and_epoch_only() -> None:
    s = DCQSampler(100, num_replicas=1, rank=0, seed=7)
    g = torch.Generator()
    g.manual_seed(7 + 3)
    s.set_epoch(3)
    assert s.global_order().tolist() == torch.randperm(100, generator=g).tolist()
    e3 = list(s)
    s.set_epoch(4)
    assert list(s) != e3
    s.set_epoch(3)
    assert list(s) == e3
    assert list(DCQSampler(10, num_replicas=1, rank=0, shuffle=False)) == list(range(10))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 200), world=st.integers(1, 6), new_world=st.integers(1, 6), batch=st.integers(1, 8),
       steps=st.integers(0, 30), seed=st.integers(0, 99), epoch=st.integers(0, 3), drop_last=st.booleans())
def test_resume_under_new_world_size_continues_global_order(
        n: int, world: int, new_world: int, batch: int, steps: int, seed: int, epoch: int,
        drop_last: bool) -> None:
    samplers = [DCQSampler(n, num_replicas=world, rank=r, seed=seed, drop_last=drop_last)
                for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    per_rank = [list(s) for s in samplers]
    steps = min(steps, n // (batch * world))  # checkpoints before the padded last step
    consumed = [i for step in range(steps) for r in range(world)
                for i in per_rank[r][step * batch:(step + 1) * batch]]
    seen = steps * batch * world
    state = samplers[0].state_dict(samples_seen=seen)
    assert "num_replicas" not in state

    resumed = [DCQSampler(n, num_replicas=new_world, rank=r, seed=12345, shuffle=False,
                          drop_last=drop_last)
               for r in range(new_world)]
    for s in resumed:
        s.load_state_dict(state)
        s.set_epoch(epoch)  # the training loop sets the same epoch again: position is kept
    order = samplers[0].global_order().tolist()
    rest = [list(s) for s in resumed]
    assert len({len(p) for p in rest}) == 1
    # Interleaving the ranks' outputs walks the same global order on from the saved position.
    walked = [rest[r][j] for j in range(len(rest[0])) for r in range(new_world)]
    remaining = order[seen:]
    if drop_last:
        assert walked == remaining[: len(remaining) // new_world * new_world]
    else:
        assert walked[: len(remaining)] == remaining
        assert len(walked) - len(remaining) < new_world  # padding only fills the last step
    # Nothing consumed before the checkpoint comes again (except as padding of the last step).
    assert sorted(consumed) == sorted(order[:seen])


def test_position_lifecycle_and_state() -> None:
    s = DCQSampler(10, num_replicas=2, rank=1, seed=1)
    s.set_position(4)
    assert len(s) == 3 and s.total_size == 6
    assert list(s) == s.global_order()[4:][1::2].tolist()
    s.set_epoch(0)
    assert s.position == 4  # same epoch: kept
    s.set_epoch(1)
    assert s.position == 0  # new epoch: from the start
    s.set_position(99)
    assert s.position == 10 and list(s) == [] and len(s) == 0
    state = DCQSampler(10, num_replicas=4, rank=0, seed=5).state_dict(samples_seen=6)
    assert state == {"version": 1, "seed": 5, "epoch": 0, "shuffle": True, "n": 10, "position": 6}
    with pytest.raises(DcqError, match="saved for 10 samples"):
        DCQSampler(11, num_replicas=1, rank=0).load_state_dict(state)
    with pytest.raises(DcqError, match="lacks"):
        DCQSampler(10, num_replicas=1, rank=0).load_state_dict({"seed": 1})
    with pytest.raises(DcqError):
        s.set_position(-1)


def test_arguments() -> None:
    s = DCQSampler(_Sized(5))
    assert (s.num_replicas, s.rank) == (1, 0)  # no process group: a single process
    with pytest.raises(DcqError, match="rank"):
        DCQSampler(5, num_replicas=2, rank=2)
    with pytest.raises(DcqError, match="num_replicas"):
        DCQSampler(5, num_replicas=0, rank=0)
    with pytest.raises(DcqError):
        DCQSampler(2.5, num_replicas=1, rank=0)  # type: ignore[arg-type]
    assert "n=5" in repr(s)
