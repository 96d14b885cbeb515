"""Coverage and redundancy of a selection in feature space (Euclidean, blockwise).

* ``coverage`` R(S) = mean over *all* samples of the distance to the nearest selected sample.
  Lower is better: every sample has a selected sample close to it. Selected samples contribute 0.
* ``redundancy`` Gamma(S) = mean over selected samples of the distance to the nearest *other*
  selected sample. Higher is better: selected samples are not near-copies of each other.

Both are computed globally (across classes); pass one class's rows and its selected positions
for a per-class figure. Distances are Euclidean (square roots of the blockwise squared
distances), float32 unless the features are float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcqformat.device import resolve_device
from dcqformat.errors import InvalidArgumentError
from dcqformat.select.knn import as_feature_tensor, nearest_blockwise

__all__ = ["coverage", "redundancy"]


def _selected_index(selected: Any, n: int) -> np.ndarray:
    sel = np.asarray(selected.selected if hasattr(selected, "selected") else selected)
    if sel.dtype == bool:
        if sel.shape != (n,):
            raise InvalidArgumentError(
                f"a boolean selected mask must have length {n}, got {sel.shape}"
            )
        sel = np.flatnonzero(sel)
    sel = sel.astype(np.int64).ravel()
    if sel.size == 0:
        raise InvalidArgumentError("selected must hold at least one index, got none")
    if int(sel.min()) < 0 or int(sel.max()) >= n:
        raise InvalidArgumentError(
            f"selected indices must be in [0, {n}), got values in [{int(sel.min())}, {int(sel.max())}]"
        )
    return np.unique(sel)


def coverage(
    features: Any, selected: Any, *, block_size: int = 4096, device: Any = "auto"
) -> float:
    """R(S): mean distance from every sample to its nearest selected sample (lower = better).

    ``selected``: indices, a boolean mask, or a :class:`~dcqformat.select.result.Selection`.
    """
    dev = resolve_device(device)
    x = as_feature_tensor(features, dev)
    sel = _selected_index(selected, x.shape[0])
    d, _ = nearest_blockwise(x, x[torch.from_numpy(sel).to(dev)], block_size=block_size, device=dev)
    return float(d.double().sqrt().mean().item())


def redundancy(
    features: Any, selected: Any, *, block_size: int = 4096, device: Any = "auto"
) -> float:
    """Gamma(S): mean distance from each selected sample to its nearest other selected sample
    (higher = less redundant). Needs at least two selected samples."""
    dev = resolve_device(device)
    x = as_feature_tensor(features, dev)
    sel = _selected_index(selected, x.shape[0])
    if sel.shape[0] < 2:
        raise InvalidArgumentError(
            f"redundancy needs at least 2 selected samples, got {sel.shape[0]}"
        )
    xs = x[torch.from_numpy(sel).to(dev)]
    d, _ = nearest_blockwise(xs, xs, exclude_same_index=True, block_size=block_size, device=dev)
    return float(d.double().sqrt().mean().item())
