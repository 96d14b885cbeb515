"""Dataset-level compression inside ``convert()``: de-duplication, then a coreset (docs/method.md §2).

``convert(..., dedup="phash:T", coreset="bgfdq:0.3", keep_all=False)`` runs these steps:

1. *Observe* (during the ``analyse`` pass, per batch, in the canonical order of the readable
   images): perceptual hashes of the loaded images (after alpha flattening and ``max_side``), the
   task model's embedding -- the last conv block's map averaged over space, i.e. the input of
   the classifier for :class:`~dcqformat.encode.model.ProxyNet` -- and EL2N scores.
2. *EL2N* (``el2n``): :func:`~dcqformat.encode.model.train_proxy` calls back after every epoch;
   after epoch ``EL2N_EPOCH`` (the first, "early in training") a copy of the proxy is kept. In the
   analyse pass that snapshot scores *every* readable image (``||softmax - onehot||_2``), so the
   images outside the proxy's training sample (``max_train_images``) are scored by the same
   early model as the ones inside it. With a user-supplied model the scores come from that model
   as given (recorded as ``scorer``), since there is no training to hook.
3. *Select* (stage ``select``, after the palettes): :func:`~dcqformat.select.dedup_groups` on the
   hashes (connected components within Hamming distance ``T``, medoid kept, cross-class groups
   reported and one medoid per class kept); then the coreset method on the survivors, with
   ``RATIO`` relative to them.
4. *Store*: without ``keep_all`` the file holds exactly the final selection (the coreset, else
   the de-duplicated set), in canonical order; with ``keep_all`` it holds every readable image.
   Every selection is stored over the file's own sample order (a stored index ``j`` is the
   ``j``-th sample of the file) with a best-first ranking whose prefixes are class-balanced
   (:func:`~dcqformat.select.result.interleave`), and attrs with the method, parameters, seed,
   model identity and realised per-class counts. The ``dedup`` selection's attrs list every
   group (source paths, labels, kept members, their position in the file or -1) and which groups
   are cross-class conflicts. Palettes no stored image uses are dropped.

Spec strings: ``coreset`` is ``METHOD:RATIO`` with METHOD one of ``bgfdq``, ``semred``,
``el2n``, ``random`` and RATIO in (0, 1]; ``dedup`` is ``HASH:T`` or ``HASH:T:flip`` with HASH one
of ``phash``, ``ahash``, ``dhash``, ``whash`` and T an integer Hamming threshold in 0..63
(``flip``: mirrored copies match too).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from dcqformat.errors import InvalidArgumentError
from dcqformat.select import (
    Selection,
    bgfdq_select,
    dedup_groups,
    el2n_scores,
    el2n_select,
    interleave,
    perceptual_hashes,
    random_select,
    semred_select,
)
from dcqformat.select.dedup import HASH_METHODS

__all__ = [
    "CORESET_METHODS",
    "EL2N_EPOCH",
    "CoresetSpec",
    "DedupSpec",
    "SelectionPlan",
    "SelectionStage",
    "parse_coreset",
    "parse_dedup",
    "restrict_selection",
    "summary_lines",
]

CORESET_METHODS = ("bgfdq", "semred", "el2n", "random")
EL2N_EPOCH = 1  # EL2N from the proxy after its first epoch ("early in training")
DEDUP_NAME = "dedup"


@dataclass(frozen=True)
class CoresetSpec:
    """A parsed ``--coreset METHOD:RATIO``."""

    method: str
    ratio: float


@dataclass(frozen=True)
class DedupSpec:
    """A parsed ``--dedup HASH:T[:flip]``."""

    hash: str
    threshold: int
    mirror: bool = False


def _split(text: Any, what: str, example: str) -> list[str]:
    if not isinstance(text, str) or ":" not in text:
        raise InvalidArgumentError(f"{what} must be a string like {example!r}, got {text!r}")
    return [p.strip() for p in text.split(":")]


def parse_coreset(text: str | None) -> CoresetSpec | None:
    """Parse ``"bgfdq:0.3"`` (also ``semred``, ``el2n``, ``random``); ``None`` passes through."""
    if text is None:
        return None
    parts = _split(text, "coreset", "bgfdq:0.3")
    if len(parts) != 2 or parts[0].lower() not in CORESET_METHODS:
        raise InvalidArgumentError(
            f"coreset must be METHOD:RATIO with METHOD one of {list(CORESET_METHODS)}, got {text!r}")
    try:
        ratio = float(parts[1])
    except ValueError:
        raise InvalidArgumentError(f"coreset ratio must be a number in (0, 1], got {text!r}") from None
    if not (math.isfinite(ratio) and 0.0 < ratio <= 1.0):
        raise InvalidArgumentError(f"coreset ratio must be in (0, 1], got {ratio} in {text!r}")
    return CoresetSpec(parts[0].lower(), ratio)


def parse_dedup(text: str | None) -> DedupSpec | None:
    """Parse ``"phash:8"`` or ``"phash:8:flip"`` (also ahash, dhash, whash); ``None`` passes."""
    if text is None:
        return None
    parts = _split(text, "dedup", "phash:8")
    if len(parts) not in (2, 3) or parts[0].lower() not in HASH_METHODS:
        raise InvalidArgumentError(
            f"dedup must be HASH:T[:flip] with HASH one of {list(HASH_METHODS)}, got {text!r}")
    if len(parts) == 3 and parts[2].lower() != "flip":
        raise InvalidArgumentError(f"dedup's third field may only be 'flip', got {text!r}")
    try:
        t = int(parts[1])
    except ValueError:
        raise InvalidArgumentError(f"dedup threshold must be an integer in 0..63, got {text!r}") from None
    if not 0 <= t <= 63:
        raise InvalidArgumentError(f"dedup threshold must be in 0..63, got {t} in {text!r}")
    return DedupSpec(parts[0].lower(), t, len(parts) == 3)


def restrict_selection(sel: Selection, stored: np.ndarray, labels: np.ndarray) -> Selection:
    """Re-express ``sel`` (over the canonical order whose labels are ``labels``) over the sample
    order of a file that stores the canonical positions ``stored`` (ascending).

    Members that are not stored are dropped; the per-class best-first orders are kept and merged
    again with :func:`~dcqformat.select.result.interleave`, so prefixes stay class-balanced.
    """
    stored = np.asarray(stored, dtype=np.int64)
    ranking = sel.ranking[np.isin(sel.ranking, stored)]
    local = np.searchsorted(stored, ranking)
    lab_s = labels[stored]
    orders = {int(c): local[lab_s[local] == c] for c in np.unique(lab_s[local]).tolist()}
    return Selection.from_ranking(method=sel.method, params=sel.params, seed=sel.seed,
                                  ranking=interleave(orders), labels=lab_s,
                                  model_identity=sel.model_identity)


def _pil(arr: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


@dataclass
class SelectionPlan:
    """What the write pass stores: canonical positions ``stored`` (ascending, indices into the
    readable images) and the named selections over the file's order, with their attrs."""

    stored: np.ndarray
    selections: dict[str, Selection]
    attrs: dict[str, dict[str, Any]]
    summary: dict[str, Any]

    def compact(self, groups: torch.Tensor, palettes: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Drop palettes no stored image uses; renumber ``groups`` (others get -1)."""
        g = groups.clone()
        used = torch.unique(g[torch.from_numpy(self.stored)])
        remap = torch.full((palettes.shape[0],), -1, dtype=torch.long)
        remap[used] = torch.arange(used.numel())
        return remap[g], np.ascontiguousarray(palettes[used.numpy()])

    def add_to(self, writer: Any) -> None:
        """Store every selection in ``writer`` (a :class:`~dcqformat.DCQWriter`)."""
        for name, sel in self.selections.items():
            writer.add_selection(name, sel.ranking, sel.selected, self.attrs[name])


@dataclass
class SelectionStage:
    """Collects what the selection needs during ``convert()`` and computes the plan."""

    coreset: CoresetSpec | None
    dedup: DedupSpec | None
    keep_all: bool
    seed: int
    hash_size: int = 8
    _hashes: list[np.ndarray] = field(default_factory=list)
    _mirror: list[np.ndarray] = field(default_factory=list)
    _emb: list[np.ndarray] = field(default_factory=list)
    _el2n: list[np.ndarray] = field(default_factory=list)
    _snapshot: nn.Module | None = None
    _scorer: str = ""

    @classmethod
    def from_args(cls, coreset: str | None, dedup: str | None, keep_all: Any,
                  seed: int) -> SelectionStage:
        """Parse and check ``convert()``'s ``coreset`` / ``dedup`` / ``keep_all`` arguments."""
        if not isinstance(keep_all, bool):
            raise InvalidArgumentError(f"keep_all must be True or False, got {keep_all!r}")
        return cls(parse_coreset(coreset), parse_dedup(dedup), keep_all, seed)

    # -- what the pipeline must provide -----------------------------------------------------
    @property
    def active(self) -> bool:
        """True when a coreset or a dedup was asked for."""
        return self.coreset is not None or self.dedup is not None

    @property
    def needs_embeddings(self) -> bool:
        """True when the coreset method (``bgfdq``, ``semred``) needs the model's embeddings."""
        return self.coreset is not None and self.coreset.method in ("bgfdq", "semred")

    @property
    def needs_el2n(self) -> bool:
        """True when the coreset method is ``el2n`` (it needs EL2N scores)."""
        return self.coreset is not None and self.coreset.method == "el2n"

    @property
    def needs_model(self) -> bool:
        """True when the selection needs the task model's outputs (embeddings or EL2N scores)."""
        return self.needs_embeddings or self.needs_el2n

    def check_epochs(self, epochs: int, trains_proxy: bool) -> None:
        """EL2N from a proxy needs at least ``EL2N_EPOCH`` epochs of training."""
        if self.needs_el2n and trains_proxy and epochs < EL2N_EPOCH:
            raise InvalidArgumentError(
                f"coreset el2n scores with the proxy after epoch {EL2N_EPOCH}; epochs={epochs}")

    def epoch_hook(self) -> Callable[[int, nn.Module], None] | None:
        """The ``on_epoch_model`` callback for :func:`train_proxy` (``None`` if not needed)."""
        if not self.needs_el2n:
            return None

        def hook(epoch: int, net: nn.Module) -> None:
            if epoch + 1 == EL2N_EPOCH:
                snap = copy.deepcopy(net)
                snap.eval()
                self._snapshot = snap
        return hook

    # -- the analyse pass --------------------------------------------------------------------
    def observe_images(self, arrs: Sequence[np.ndarray]) -> None:
        """Hash a batch of loaded images (uint8 ``[H, W, C]``), in canonical order."""
        if self.dedup is None:
            return
        ims = [_pil(a) for a in arrs]
        self._hashes.append(perceptual_hashes(ims, self.dedup.hash, self.hash_size))
        if self.dedup.mirror:
            from PIL import ImageOps

            self._mirror.append(perceptual_hashes([ImageOps.mirror(i) for i in ims],
                                                  self.dedup.hash, self.hash_size))

    def observe_model(self, x: torch.Tensor, logits: torch.Tensor, last: torch.Tensor,
                      labels: Sequence[int], n_classes: int) -> None:
        """Record embeddings / EL2N for a batch given the prepared input ``x`` and the task
        model's outputs on it."""
        if self.needs_embeddings:
            self._emb.append(last.detach().float().mean((2, 3)).cpu().numpy())
        if self.needs_el2n:
            if self._snapshot is not None:
                with torch.no_grad():
                    z = self._snapshot(x.detach())
                z = z[0] if isinstance(z, (tuple, list)) else z
                self._scorer = f"proxy after epoch {EL2N_EPOCH} (early-training snapshot)"
            else:
                z = logits.detach()
                self._scorer = "the given task model as supplied (no training to hook)"
            if z.shape[1] != n_classes:
                raise InvalidArgumentError(
                    f"coreset el2n needs a model with one logit per class ({n_classes}); "
                    f"it gives {z.shape[1]}")
            self._el2n.append(el2n_scores(z.cpu().double().numpy(), np.asarray(labels)))

    # -- the select stage ------------------------------------------------------------------
    def select(self, labels: np.ndarray, relpaths: Sequence[str], model: dict[str, Any],
               device: torch.device) -> SelectionPlan:
        """Dedup, then coreset, over the readable images (canonical order, ``labels``)."""
        labels = np.asarray(labels, dtype=np.int64)
        n = labels.shape[0]
        cands = np.arange(n, dtype=np.int64)
        canon: dict[str, Selection] = {}
        extra: dict[str, dict[str, Any]] = {}
        summary: dict[str, Any] = {"readable": n, "keep_all": self.keep_all,
                                   "order": "stored selections index the samples of this file"}
        if self.dedup is not None:
            d = self.dedup
            res = dedup_groups(np.concatenate(self._hashes), labels, d.threshold,
                               hash_method=d.hash, n_bits=self.hash_size ** 2,
                               mirror_hashes=np.concatenate(self._mirror) if d.mirror else None)
            canon[DEDUP_NAME] = res.to_selection()
            cands = res.keep
            conflict_ids = {int(g[0]) for g in res.conflicts}
            extra[DEDUP_NAME] = {"groups": [[int(i) for i in g] for g in res.groups],
                                 "conflict_firsts": conflict_ids}
            summary["dedup"] = {
                "spec": f"{d.hash}:{d.threshold}" + (":flip" if d.mirror else ""),
                "groups": len(res.groups), "removed": int(res.removed.shape[0]),
                "conflicts": len(res.conflicts),
                "conflict_examples": [[relpaths[i] for i in g[:4]] for g in res.conflicts[:5]],
            }
        ident = _short_identity(model)
        if self.coreset is not None:
            c = self.coreset
            sub = self._coreset(c, cands, labels, device, ident)
            canon[c.method] = Selection.from_ranking(
                method=sub.method, params={**sub.params, "applied_to": _applied_to(self.dedup),
                                           "candidates": int(cands.shape[0])},
                seed=sub.seed, ranking=cands[sub.ranking], labels=labels,
                model_identity=sub.model_identity)
        final = canon[self.coreset.method if self.coreset is not None else DEDUP_NAME]
        stored = np.arange(n, dtype=np.int64) if self.keep_all else final.selected.copy()
        sels = {name: restrict_selection(s, stored, labels) for name, s in canon.items()}
        attrs = {name: self._attrs(name, s, canon[name], stored, extra, relpaths, labels, model)
                 for name, s in sels.items()}
        summary["stored"] = int(stored.shape[0])
        if self.coreset is not None:
            fs = canon[self.coreset.method]
            summary["coreset"] = {"spec": f"{self.coreset.method}:{self.coreset.ratio:g}",
                                  "size": fs.size, "candidates": int(cands.shape[0]),
                                  "per_class": {str(k): v for k, v in fs.per_class_counts.items()}}
        return SelectionPlan(stored, sels, attrs, summary)

    def _coreset(self, c: CoresetSpec, cands: np.ndarray, labels: np.ndarray,
                 device: torch.device, ident: str) -> Selection:
        lab = labels[cands]
        if c.method == "random":
            return random_select(lab, c.ratio, seed=self.seed)
        if c.method == "el2n":
            scores = np.concatenate(self._el2n)[cands]
            sel = el2n_select(scores, lab, c.ratio, model_identity=ident)
            return Selection.from_ranking(
                method=sel.method, params={**sel.params, "scorer": self._scorer},
                seed=sel.seed, ranking=sel.ranking, labels=lab, model_identity=ident)
        emb = np.concatenate(self._emb)[cands]
        if c.method == "bgfdq":
            return bgfdq_select(emb, lab, c.ratio, seed=self.seed, device=device,
                                model_identity=ident)
        return semred_select(emb, lab, c.ratio, seed=self.seed, model_identity=ident)

    def _attrs(self, name: str, sel: Selection, canon: Selection, stored: np.ndarray,
               extra: dict[str, dict[str, Any]], relpaths: Sequence[str], labels: np.ndarray,
               model: dict[str, Any]) -> dict[str, Any]:
        import json

        a: dict[str, Any] = json.loads(sel.to_json())
        a["model"] = model if sel.model_identity is not None else None
        a["features"] = ("task model's last conv block, averaged over space"
                         if sel.method in ("bgfdq", "semred") else None)
        a["index_order"] = "samples of this file (stored order)"
        a["canonical_size"] = canon.size
        a["canonical_per_class_counts"] = {str(k): v for k, v in canon.per_class_counts.items()}
        if name == DEDUP_NAME and name in extra:
            pos = np.full(labels.shape[0], -1, dtype=np.int64)
            pos[stored] = np.arange(stored.shape[0])
            kept = set(canon.selected.tolist())
            groups = []
            for g in extra[name]["groups"]:
                groups.append({
                    "members": [relpaths[i] for i in g],
                    "labels": [int(labels[i]) for i in g],
                    "kept": [relpaths[i] for i in g if i in kept],
                    "stored_index": [int(pos[i]) for i in g],
                    "conflict": g[0] in extra[name]["conflict_firsts"],
                })
            a["groups"] = groups
            a["conflicts"] = [i for i, g in enumerate(groups) if g["conflict"]]
        return a


def summary_lines(s: dict[str, Any]) -> list[str]:
    """Lines for :meth:`ConvertSummary.format` from :attr:`SelectionPlan.summary` (none for {})."""
    if not s:
        return []
    lines = [f"  selection: {s['readable']} readable -> {s['stored']} stored"
             + (" (keep-all)" if s["keep_all"] else "")]
    if "dedup" in s:
        d = s["dedup"]
        lines.append(f"    dedup {d['spec']}: {d['groups']} group(s), {d['removed']} duplicate(s) "
                     f"dropped, {d['conflicts']} cross-class conflict(s) (one kept per class)")
        lines.extend(f"      conflict: {', '.join(c)}" for c in d["conflict_examples"])
    if "coreset" in s:
        c = s["coreset"]
        lines.append(f"    coreset {c['spec']}: {c['size']} of {c['candidates']} kept; "
                     f"per class {c['per_class']}")
    return lines


def _short_identity(model: dict[str, Any]) -> str:
    kind = str(model.get("kind", "model"))
    digest = model.get("sha256") or model.get("file_sha256")
    return f"{kind} sha256:{digest}" if digest else kind


def _applied_to(dedup: DedupSpec | None) -> str:
    return "the readable images" if dedup is None else "the images kept by dedup"
