"""BGFDQ neighbour-aware coreset selection (bin-generation-free dataset quantization).

Per class, with target ratio ``rho`` and budget ``n_c = round_half_up(rho * M_c)`` (at least 1):

1. Each sample's ``K`` nearest neighbours within its class by squared Euclidean distance, found
   blockwise in torch (:func:`dcqformat.select.knn.knn_blockwise`; never an ``M x M`` matrix).
2. The neighbour-aware loop: pick a sample uniformly at random from the pool, keep it, and
   remove its ``k``-th nearest neighbour (``k = 1..K``) from the pool with probability
   ``p_k = exp(-rho * alpha * k)``. One uniform draw is made per rank ``k`` at every pick, whether
   or not that neighbour is still in the pool, so the random stream does not depend on the pool.
3. Refill (ours; the paper says only "farthest first"): when the pool empties before the budget
   is met, every sample not yet kept returns to the pool with the priority "squared distance to
   the nearest kept sample" (computed exactly, blockwise). From then on picks are deterministic,
   farthest first (ties to the lower index); after each pick the priorities of its K neighbours
   drop to their distance to the pick (an approximate farthest-point traversal that costs
   ``O(K log M)`` per pick instead of ``O(M d)``), and the probabilistic neighbour removal goes
   on. If the pool empties again it is refilled again with exact priorities.

The kept samples of a class, in pick order, are that class's best-first order; classes are
merged by :func:`dcqformat.select.result.interleave`. Every class draws from its own generator
``numpy.random.default_rng(SeedSequence([seed, class_id]))``, so a class's selection does not
depend on the other classes. Deterministic for a seed on a given device.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import torch

from dcqformat.device import resolve_device
from dcqformat.errors import InvalidArgumentError
from dcqformat.select._validate import (
    check_int,
    check_labels,
    check_nonnegative_float,
    check_ratio,
    check_seed,
    class_budgets,
)
from dcqformat.select.knn import as_feature_tensor, knn_blockwise, nearest_blockwise
from dcqformat.select.result import Selection, interleave

__all__ = ["bgfdq_select", "neighbour_aware_order", "removal_probabilities"]


def removal_probabilities(ratio: float, alpha: float, k: int) -> np.ndarray:
    """``p_k = exp(-ratio * alpha * k)`` for ``k = 1..K``."""
    return np.exp(-ratio * alpha * np.arange(1, k + 1, dtype=np.float64))


def neighbour_aware_order(
    nbr_index: np.ndarray,
    nbr_sqdist: np.ndarray,
    budget: int,
    ratio: float,
    *,
    alpha: float = 1.0,
    rng: np.random.Generator,
    features: torch.Tensor | None = None,
    block_size: int = 4096,
) -> tuple[np.ndarray, int]:
    """Run the neighbour-aware loop on one class; return (kept local indices in pick order, refills).

    ``nbr_index``/``nbr_sqdist`` are the ``(M, K)`` neighbour lists of the class (local indices).
    ``features`` (the class's rows, as a tensor) are needed only if the pool empties and must be
    refilled; ``block_size`` bounds the refill's distance tiles.
    """
    m = int(nbr_index.shape[0])
    budget = min(int(budget), m)
    k = int(nbr_index.shape[1]) if nbr_index.ndim == 2 else 0
    p = removal_probabilities(ratio, alpha, k)

    pool = list(range(m))  # swap-remove array of pooled indices
    pos = list(range(m))  # pos[i] = position of i in pool
    in_pool = [True] * m
    kept = [False] * m
    size = m

    def remove(j: int) -> None:
        nonlocal size
        at = pos[j]
        last = pool[size - 1]
        pool[at] = last
        pos[last] = at
        size -= 1
        in_pool[j] = False

    order: list[int] = []
    farthest = False
    heap: list[tuple[float, int]] = []
    prio: np.ndarray = np.empty(0)
    refills = 0
    while len(order) < budget:
        if size == 0:
            if features is None:
                raise InvalidArgumentError(
                    "the pool emptied before the budget was met and no features were given to "
                    "refill it"
                )
            refills += 1
            rest = np.flatnonzero(~np.asarray(kept))
            chosen = np.asarray(order, dtype=np.int64)
            dev = features.device
            kept_rows = features[torch.from_numpy(chosen).to(dev)]  # copy of <= budget rows
            prio = np.full(m, -1.0)
            step = 8 * block_size  # query rows copied at a time: memory stays bounded
            for s in range(0, rest.shape[0], step):
                part = rest[s : s + step]
                d, _ = nearest_blockwise(
                    features[torch.from_numpy(part).to(dev)],
                    kept_rows,
                    block_size=block_size,
                    device=dev,
                )
                prio[part] = d.double().cpu().numpy()
            del kept_rows
            heap = [(-float(prio[i]), int(i)) for i in rest.tolist()]
            heapq.heapify(heap)
            for i in rest.tolist():
                pool[size] = i
                pos[i] = size
                in_pool[i] = True
                size += 1
            farthest = True
        if farthest:
            while True:
                negd, i = heapq.heappop(heap)
                if in_pool[i] and -negd == prio[i]:
                    break
        else:
            i = pool[int(rng.integers(size))]
        remove(i)
        kept[i] = True
        order.append(i)
        if k == 0:
            continue
        draws = rng.random(k) < p
        row = nbr_index[i]
        for j in row[draws].tolist():
            if in_pool[j]:
                remove(j)
        if farthest:
            for j, dj in zip(row.tolist(), nbr_sqdist[i].tolist(), strict=True):
                if in_pool[j] and dj < prio[j]:
                    prio[j] = dj
                    heapq.heappush(heap, (-dj, j))
    return np.asarray(order, dtype=np.int64), refills


def bgfdq_select(
    features: Any,
    labels: Any,
    ratio: float,
    *,
    k: int = 20,
    alpha: float = 1.0,
    seed: int = 0,
    device: Any = "auto",
    block_size: int = 4096,
    model_identity: str | None = None,
) -> Selection:
    """BGFDQ neighbour-aware selection of ``ratio`` of every class (see the module doc).

    ``features``: ``(N, d)`` numpy array or torch tensor (penultimate features, canonical order);
    ``labels``: ``N`` non-negative class ids; ``ratio`` in (0, 1]; ``k`` neighbours per sample
    (K = 20 in the paper); ``alpha`` scales the removal probabilities (1.0: not published, ours);
    ``seed`` fixes the random picks; ``device`` ``"auto"`` uses CUDA when available;
    ``block_size`` rows per distance tile (memory ``~ block_size^2`` floats).

    Returns a :class:`Selection` with ``method="bgfdq"``; ``params`` records ratio, k, alpha,
    the per-class budgets rule and how many refills each class needed.
    """
    rho = check_ratio(ratio)
    k = check_int(k, "k", minimum=1)
    alpha = check_nonnegative_float(alpha, "alpha")
    seed = check_seed(seed)
    block_size = check_int(block_size, "block_size", minimum=1)
    dev = resolve_device(device)
    x = as_feature_tensor(features, dev)
    lab = check_labels(labels, x.shape[0])

    budgets = class_budgets(lab, rho)
    orders: dict[int, np.ndarray] = {}
    refills: dict[str, int] = {}
    for c, budget in budgets.items():
        idx = np.flatnonzero(lab == c)
        if int(idx[-1]) - int(idx[0]) + 1 == idx.shape[0]:
            xc = x[int(idx[0]) : int(idx[-1]) + 1]  # classes stored contiguously: a view, no copy
        else:
            xc = x[torch.from_numpy(idx).to(dev)]
        d, nbr = knn_blockwise(xc, k, block_size=block_size, device=dev)
        rng = np.random.default_rng(np.random.SeedSequence([seed, c]))
        local, n_refill = neighbour_aware_order(
            nbr.cpu().numpy(),
            d.double().cpu().numpy(),
            budget,
            rho,
            alpha=alpha,
            rng=rng,
            features=xc,
            block_size=block_size,
        )
        orders[c] = idx[local]
        refills[str(c)] = n_refill
    ranking = interleave(orders)
    params = {
        "ratio": rho,
        "k": k,
        "alpha": alpha,
        "distance": "squared_euclidean",
        "budget_rule": "per class min(M_c, max(1, floor(ratio*M_c+0.5)))",
        "refill": "farthest-first from kept set, kNN-updated priorities",
        "refills_per_class": refills,
    }
    return Selection.from_ranking(
        method="bgfdq",
        params=params,
        seed=seed,
        ranking=ranking,
        labels=lab,
        model_identity=model_identity,
    )
