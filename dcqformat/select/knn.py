"""Blockwise nearest-neighbour search in torch (never a dense N x N distance matrix).

Squared Euclidean distances are computed tile by tile as ``|q|^2 + |k|^2 - 2 q.k`` over query
blocks and key blocks of ``block_size`` rows each; a running top-k per query row is merged with
each tile's top-k. For the k nearest neighbours of a set within itself
(:func:`knn_blockwise`) each pair of blocks is computed once and serves both blocks (the
distance is symmetric). Peak extra memory is two ``block_size x block_size`` tiles plus the
running top-k, whatever the number of samples. Arithmetic is float32 unless the input is
float64; the expansion loses precision for distances that are tiny next to the vectors' squared
norms (near-duplicates), so their *order* among themselves may differ from an exact computation.
Distances are clamped at 0. Ties between equal distances are broken by ``torch.topk``
(deterministic for a given device and input, but not by index).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcqformat.device import resolve_device
from dcqformat.errors import InvalidArgumentError
from dcqformat.select._validate import check_features_shape, check_int

__all__ = ["as_feature_tensor", "knn_blockwise", "nearest_blockwise"]


def as_feature_tensor(features: Any, device: torch.device, name: str = "features") -> torch.Tensor:
    """Features as a 2-D finite float tensor on ``device`` (float64 kept, all else float32)."""
    if isinstance(features, torch.Tensor):
        t = features.detach()
    else:
        arr = np.asarray(features)
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
            raise InvalidArgumentError(f"{name} must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    check_features_shape(tuple(t.shape), name)
    if t.dtype not in (torch.float32, torch.float64):
        if t.dtype == torch.bool or t.is_complex():
            raise InvalidArgumentError(f"{name} must be real-valued, got dtype {t.dtype}")
        t = t.to(torch.float32)
    t = t.to(device)
    step = max(1, (1 << 24) // max(1, t.shape[1]))  # bounded temporaries: ~16M flags at a time
    for s in range(0, t.shape[0], step):
        block = t[s : s + step]
        if not bool(torch.isfinite(block).all()):
            r, c = torch.nonzero(~torch.isfinite(block))[0].tolist()
            raise InvalidArgumentError(
                f"{name} must be finite, got {name}[{s + r}, {c}]={block[r, c].item()}"
            )
    return t


def _row_sq_norms(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """``|x_i|^2`` per row, computed in blocks (``(x * x).sum(1)`` would allocate a full copy)."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], block_size):
        xb = x[s : s + block_size]
        out[s : s + block_size] = (xb * xb).sum(dim=1)
    return out


def _topk_blockwise(
    queries: torch.Tensor,
    keys: torch.Tensor,
    k: int,
    block_size: int,
    self_index: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k (smallest squared distance) of every query row over all key rows.

    ``self_index[r]``, when given, is a key index that query ``r`` must not match (itself).
    Returns ``(dist, idx)``, both ``(n_queries, k)``, ascending distance; ``idx`` is int64.
    """
    nq, nk = queries.shape[0], keys.shape[0]
    dev, dt = queries.device, queries.dtype
    out_d = torch.empty((nq, k), dtype=dt, device=dev)
    out_i = torch.empty((nq, k), dtype=torch.int64, device=dev)
    if k == 0 or nq == 0:
        return out_d, out_i
    key_sq = _row_sq_norms(keys, block_size)
    inf = torch.tensor(float("inf"), dtype=dt, device=dev)
    for q0 in range(0, nq, block_size):
        q1 = min(nq, q0 + block_size)
        q = queries[q0:q1]
        b = q1 - q0
        rows = torch.arange(b, device=dev)
        best_d = torch.full((b, k), float("inf"), dtype=dt, device=dev)
        best_i = torch.full((b, k), -1, dtype=torch.int64, device=dev)
        s_idx = None if self_index is None else self_index[q0:q1]
        for k0 in range(0, nk, block_size):
            k1 = min(nk, k0 + block_size)
            # |k|^2 - 2 q.k ; |q|^2 is constant per row and added at the end.
            tile = torch.addmm(key_sq[k0:k1], q, keys[k0:k1].T, beta=1.0, alpha=-2.0)
            if s_idx is not None:
                hit = (s_idx >= k0) & (s_idx < k1)
                if bool(hit.any()):
                    tile[rows[hit], s_idx[hit] - k0] = inf
            kk = min(k, k1 - k0)
            td, ti = torch.topk(tile, kk, dim=1, largest=False, sorted=False)
            cand_d = torch.cat([best_d, td], dim=1)
            cand_i = torch.cat([best_i, ti + k0], dim=1)
            best_d, pos = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
            best_i = torch.gather(cand_i, 1, pos)
        q_sq = (q * q).sum(dim=1, keepdim=True)
        out_d[q0:q1] = (best_d + q_sq).clamp_min_(0.0)
        out_i[q0:q1] = best_i
    return out_d, out_i


def _merge_topk(
    best_d: torch.Tensor,
    best_i: torch.Tensor,
    r0: int,
    r1: int,
    tile: torch.Tensor,
    c0: int,
) -> None:
    """Merge the k smallest entries of each row of ``tile`` (columns offset by ``c0``) into the
    running top-k of rows ``r0:r1``, in place."""
    k = best_d.shape[1]
    kk = min(k, tile.shape[1])
    td, ti = torch.topk(tile, kk, dim=1, largest=False, sorted=False)
    cand_d = torch.cat([best_d[r0:r1], td], dim=1)
    cand_i = torch.cat([best_i[r0:r1], ti + c0], dim=1)
    new_d, pos = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
    best_d[r0:r1] = new_d
    best_i[r0:r1] = torch.gather(cand_i, 1, pos)


def _knn_self_blockwise(
    x: torch.Tensor, k: int, block_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """k nearest other rows of every row of ``x``, using the symmetry of the distance.

    Each pair of blocks ``(a, b)`` with ``b >= a`` is computed once as a full squared-distance
    tile; its rows update block ``a``'s running top-k and its columns (a transposed copy of the
    tile) update block ``b``'s. Half the matrix products of the one-sided scheme; peak extra
    memory two ``block_size^2`` tiles.
    """
    m = x.shape[0]
    dev, dt = x.device, x.dtype
    best_d = torch.full((m, k), float("inf"), dtype=dt, device=dev)
    best_i = torch.full((m, k), -1, dtype=torch.int64, device=dev)
    if k == 0:
        return best_d, best_i
    sq = _row_sq_norms(x, block_size)
    starts = list(range(0, m, block_size))
    for ai, a0 in enumerate(starts):
        a1 = min(m, a0 + block_size)
        xa = x[a0:a1]
        for b0 in starts[ai:]:
            b1 = min(m, b0 + block_size)
            tile = torch.addmm(sq[b0:b1], xa, x[b0:b1].T, beta=1.0, alpha=-2.0)
            tile.add_(sq[a0:a1, None])
            if a0 == b0:
                tile.fill_diagonal_(float("inf"))
            _merge_topk(best_d, best_i, a0, a1, tile, b0)
            if a0 != b0:
                _merge_topk(best_d, best_i, b0, b1, tile.T.contiguous(), a0)
            del tile
    best_d.clamp_min_(0.0)
    return best_d, best_i


def knn_blockwise(
    features: Any,
    k: int = 20,
    *,
    block_size: int = 4096,
    device: Any = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's ``k`` nearest other rows by squared Euclidean distance, blockwise.

    Returns ``(sq_dist, index)``, each of shape ``(M, min(k, M - 1))``, sorted ascending by
    distance, on the chosen device. A row never lists itself (exact duplicates of it are listed,
    at distance 0). Memory: one ``block_size^2`` tile plus ``O(M k)``; time ``O(M^2 d)``.
    """
    k = check_int(k, "k", minimum=1)
    block_size = check_int(block_size, "block_size", minimum=1)
    dev = resolve_device(device)
    x = as_feature_tensor(features, dev)
    m = x.shape[0]
    return _knn_self_blockwise(x, min(k, m - 1), block_size)


def nearest_blockwise(
    queries: Any,
    keys: Any,
    *,
    exclude_same_index: bool = False,
    block_size: int = 4096,
    device: Any = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, the squared distance to and index of its nearest key row.

    With ``exclude_same_index`` (queries and keys are the same rows) a row may not match itself.
    Returns 1-D ``(sq_dist, index)``; when there is no admissible key the distance is ``inf`` and
    the index ``-1``.
    """
    block_size = check_int(block_size, "block_size", minimum=1)
    dev = resolve_device(device)
    q = as_feature_tensor(queries, dev, "queries")
    kt = as_feature_tensor(keys, dev, "keys")
    if q.shape[1] != kt.shape[1]:
        raise InvalidArgumentError(
            f"queries and keys must have the same dimension, got {q.shape[1]} and {kt.shape[1]}"
        )
    if kt.dtype != q.dtype:
        dt = torch.float64 if torch.float64 in (q.dtype, kt.dtype) else torch.float32
        q, kt = q.to(dt), kt.to(dt)
    self_index = None
    if exclude_same_index:
        if q.shape[0] != kt.shape[0]:
            raise InvalidArgumentError(
                "exclude_same_index needs as many queries as keys, got "
                f"{q.shape[0]} and {kt.shape[0]}"
            )
        self_index = torch.arange(q.shape[0], device=dev)
        if kt.shape[0] == 1:
            return (
                torch.full((1,), float("inf"), dtype=q.dtype, device=dev),
                torch.full((1,), -1, dtype=torch.int64, device=dev),
            )
    d, i = _topk_blockwise(q, kt, 1, block_size, self_index)
    return d[:, 0], i[:, 0]
