"""The result of every selection method: :class:`Selection`, and nested prefixes of it.

A selection refers to one canonical sample order (the order of ``labels`` and of the feature
rows it was computed from); every index it holds is a position in that order.

Nested, class-balanced prefixes
-------------------------------
``Selection.ranking`` lists the selected samples best-first. It is built by
:func:`interleave`: each class contributes its own best-first order, and the per-class orders
are merged by the key ``(j + 0.5) / m_c`` for the class's ``j``-th item (``m_c`` = items the
class has in the selection), ties to the lower class id. This is the sequential Sainte-Laguë
(Webster) apportionment, which is house-monotone: every prefix of the ranking holds, per class,
a prefix of that class's order, and a class's count in a prefix of length ``L`` differs from its
proportional share ``L * m_c / m`` by less than ``1/2 + C * m_c / (2 m)`` items for ``C`` classes
(under one item when classes are about equal; exactly round-robin when they are equal). So
``ranking[:L]`` for any ``L`` is a smaller class-balanced selection, and smaller ``L`` give
subsets of larger ones.

:func:`take_fraction` re-derives the per-class orders from the ranking and the labels and merges
them the same way, so it also gives nested class-balanced prefixes for a ranking that was not
made by :func:`interleave` (one stored by another tool); for rankings made here it equals
``ranking[:L]``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcqformat.errors import InvalidArgumentError
from dcqformat.select._validate import check_labels, check_ratio

__all__ = ["Selection", "interleave", "take_fraction"]


def interleave(orders: Mapping[int, np.ndarray]) -> np.ndarray:
    """Merge per-class best-first orders into one class-balanced ranking.

    ``orders`` maps a class id to an int array of sample indices, best first. Item ``j`` of a
    class with ``m_c`` items gets the key ``(j + 0.5) / m_c``; the ranking is the items sorted by
    key, ties to the lower class id (sequential Sainte-Laguë apportionment; see the module doc).
    """
    keys: list[np.ndarray] = []
    cls: list[np.ndarray] = []
    items: list[np.ndarray] = []
    for c in sorted(orders):
        order = np.asarray(orders[c], dtype=np.int64).ravel()
        m = order.shape[0]
        if m == 0:
            continue
        keys.append((np.arange(m, dtype=np.float64) + 0.5) / m)
        cls.append(np.full(m, c, dtype=np.int64))
        items.append(order)
    if not items:
        return np.empty(0, dtype=np.int64)
    key = np.concatenate(keys)
    cl = np.concatenate(cls)
    it = np.concatenate(items)
    perm = np.lexsort((cl, key))  # primary: key, secondary: class id
    return it[perm]


def _json_ready(value: Any, where: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"{where} must be JSON-serialisable, got {value!r}: {exc}"
        ) from exc
    return value


@dataclass(frozen=True, eq=False)
class Selection:
    """Which samples a method kept, in which order, and how it was made.

    Fields
    ------
    method: name of the method (``"bgfdq"``, ``"semred"``, ``"el2n"``, ``"random"``,
        ``"dedup-phash"``, ...).
    params: the parameters that, with ``seed`` and the inputs, reproduce the selection
        (JSON-serialisable).
    seed: the seed of the random choices, or ``None`` for a deterministic method.
    ranking: int64 indices into the canonical sample order, best first; its length is the
        realised size ``m``, so ``ranking[:m]`` is the selected set, and any prefix is a nested,
        class-balanced smaller selection (see the module doc).
    selected: the same indices, sorted ascending.
    per_class_counts: class id -> number of selected samples (every class present in the labels,
        zero counts included).
    model_identity: the feature / scoring model's identity (name, weights hash), or ``None``
        when no model was involved.

    The arrays are stored read-only copies. Equality compares every field, arrays by value.
    """

    method: str
    params: dict[str, Any]
    seed: int | None
    ranking: np.ndarray
    selected: np.ndarray
    per_class_counts: dict[int, int]
    model_identity: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise InvalidArgumentError(f"method must be a non-empty string, got {self.method!r}")
        _json_ready(self.params, "params")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise InvalidArgumentError(f"seed must be an int or None, got seed={self.seed!r}")
        ranking = np.array(self.ranking, dtype=np.int64, copy=True).ravel()
        selected = np.array(self.selected, dtype=np.int64, copy=True).ravel()
        if ranking.size and int(ranking.min()) < 0:
            raise InvalidArgumentError("ranking must hold non-negative sample indices")
        if not np.array_equal(np.sort(ranking), selected):
            raise InvalidArgumentError(
                "selected must equal sorted(ranking) without repeats; got "
                f"{selected.shape[0]} selected for a ranking of {ranking.shape[0]}"
            )
        if selected.size > 1 and not np.all(np.diff(selected) > 0):
            raise InvalidArgumentError("ranking must not repeat a sample index")
        counts = {int(k): int(v) for k, v in dict(self.per_class_counts).items()}
        if sum(counts.values()) != selected.shape[0]:
            raise InvalidArgumentError(
                f"per_class_counts sum to {sum(counts.values())} but {selected.shape[0]} "
                "samples are selected"
            )
        ranking.setflags(write=False)
        selected.setflags(write=False)
        object.__setattr__(self, "ranking", ranking)
        object.__setattr__(self, "selected", selected)
        object.__setattr__(self, "per_class_counts", counts)
        object.__setattr__(self, "params", json.loads(json.dumps(self.params)))

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_ranking(
        cls,
        *,
        method: str,
        params: dict[str, Any],
        seed: int | None,
        ranking: np.ndarray,
        labels: np.ndarray,
        model_identity: str | None = None,
    ) -> Selection:
        """Build a selection from its ranking, deriving ``selected`` and per-class counts."""
        ranking = np.asarray(ranking, dtype=np.int64).ravel()
        labels = check_labels(labels)
        if ranking.size and int(ranking.max()) >= labels.shape[0]:
            raise InvalidArgumentError(
                f"ranking holds index {int(ranking.max())} but labels has {labels.shape[0]} entries"
            )
        classes = np.unique(labels)
        counts = {int(c): 0 for c in classes.tolist()}
        sel_classes, sel_counts = np.unique(labels[ranking], return_counts=True)
        for c, n in zip(sel_classes.tolist(), sel_counts.tolist(), strict=True):
            counts[int(c)] = int(n)
        return cls(
            method=method,
            params=params,
            seed=seed,
            ranking=ranking,
            selected=np.sort(ranking),
            per_class_counts=counts,
            model_identity=model_identity,
        )

    # -- properties ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """The realised number of selected samples ``m``."""
        return int(self.selected.shape[0])

    def with_model_identity(self, model_identity: str | None) -> Selection:
        """A copy that records the feature model's identity."""
        return Selection(
            method=self.method,
            params=self.params,
            seed=self.seed,
            ranking=self.ranking,
            selected=self.selected,
            per_class_counts=self.per_class_counts,
            model_identity=model_identity,
        )

    # -- serialisation ---------------------------------------------------------------------
    def to_json(self) -> str:
        """Metadata as JSON: method, params, seed, model identity, size, per-class counts.

        The index arrays are not included (a container stores them as integer arrays); pass
        the ranking back to :meth:`from_json`. Class ids become JSON object keys (strings).
        """
        doc = {
            "method": self.method,
            "params": self.params,
            "seed": self.seed,
            "model_identity": self.model_identity,
            "size": self.size,
            "per_class_counts": {str(k): v for k, v in sorted(self.per_class_counts.items())},
        }
        return json.dumps(doc, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, ranking: Sequence[int] | np.ndarray) -> Selection:
        """Rebuild a selection from :meth:`to_json` output and its stored ranking."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"text is not valid selection JSON: {exc}") from exc
        missing = {"method", "params", "seed", "size", "per_class_counts"} - set(doc)
        if missing:
            raise InvalidArgumentError(f"selection JSON lacks the keys {sorted(missing)}")
        ranking_arr = np.asarray(ranking, dtype=np.int64).ravel()
        if ranking_arr.shape[0] != int(doc["size"]):
            raise InvalidArgumentError(
                f"ranking has {ranking_arr.shape[0]} entries but the JSON says size={doc['size']}"
            )
        return cls(
            method=doc["method"],
            params=doc["params"],
            seed=doc["seed"],
            ranking=ranking_arr,
            selected=np.sort(ranking_arr),
            per_class_counts={int(k): int(v) for k, v in doc["per_class_counts"].items()},
            model_identity=doc.get("model_identity"),
        )

    # -- comparison ------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selection):
            return NotImplemented
        return (
            self.method == other.method
            and self.params == other.params
            and self.seed == other.seed
            and np.array_equal(self.ranking, other.ranking)
            and np.array_equal(self.selected, other.selected)
            and self.per_class_counts == other.per_class_counts
            and self.model_identity == other.model_identity
        )

    __hash__ = None  # type: ignore[assignment]


def take_fraction(selection: Selection, labels: Any, fraction: float) -> np.ndarray:
    """A nested, class-balanced prefix holding ``fraction`` of a selection.

    ``fraction`` is relative to the selection's realised size ``m`` (``fraction=0.5`` of a 20 %
    selection keeps 10 % of the dataset): the prefix has ``L = floor(fraction * m + 0.5)``
    samples. Per-class orders are read off ``selection.ranking`` (the samples of each class in
    ranking order) and merged by :func:`interleave`, so for ``f1 < f2`` the result for ``f1`` is a
    subset of the result for ``f2``, and each class keeps about its share of ``L``.
    ``labels`` are the labels of the canonical order (length ``N``). Returns sorted int64 indices.
    """
    frac = check_ratio(fraction, "fraction")
    if not isinstance(selection, Selection):
        raise InvalidArgumentError(f"selection must be a Selection, got {type(selection).__name__}")
    lab = check_labels(labels)
    ranking = selection.ranking
    if ranking.size and int(ranking.max()) >= lab.shape[0]:
        raise InvalidArgumentError(
            f"labels has {lab.shape[0]} entries but the selection refers to sample "
            f"{int(ranking.max())}; pass the labels of the canonical order"
        )
    m = ranking.shape[0]
    length = min(m, math.floor(frac * m + 0.5))
    ranked_labels = lab[ranking]
    orders = {int(c): ranking[ranked_labels == c] for c in np.unique(ranked_labels).tolist()}
    merged = interleave(orders)
    return np.sort(merged[:length])
