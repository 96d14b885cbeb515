"""Coreset selection and de-duplication: which images a dataset keeps.

Every method returns a :class:`Selection` over one canonical sample order (the order of the
``labels``/feature rows passed in), whose ranking supports nested class-balanced prefixes
(:func:`take_fraction`).

* :func:`bgfdq_select` — BGFDQ neighbour-aware selection (blockwise kNN in torch).
* :func:`semred_select` — SemRed: per-class complete-linkage cosine clustering, keep medoids.
* :func:`el2n_select` / :func:`el2n_scores` — easy-first pruning, equal count per class.
* :func:`random_select` — the stratified random baseline.
* :func:`perceptual_hashes` / :func:`dedup_groups` — perceptual-hash de-duplication.
* :func:`coverage` / :func:`redundancy` — feature-space quality of a selection.

This package needs torch (the ``torch`` extra); :mod:`dcqformat.select.dedup` needs imagehash
only for :func:`perceptual_hashes`.
"""

from __future__ import annotations

from dcqformat.select.baseline import random_select
from dcqformat.select.bgfdq import bgfdq_select
from dcqformat.select.dedup import DedupResult, dedup_groups, hamming_pairs, perceptual_hashes
from dcqformat.select.el2n import el2n_scores, el2n_select
from dcqformat.select.knn import knn_blockwise, nearest_blockwise
from dcqformat.select.metrics import coverage, redundancy
from dcqformat.select.result import Selection, interleave, take_fraction
from dcqformat.select.semred import semred_select

__all__ = [
    "DedupResult",
    "Selection",
    "bgfdq_select",
    "coverage",
    "dedup_groups",
    "el2n_scores",
    "el2n_select",
    "hamming_pairs",
    "interleave",
    "knn_blockwise",
    "nearest_blockwise",
    "perceptual_hashes",
    "random_select",
    "redundancy",
    "semred_select",
    "take_fraction",
]
