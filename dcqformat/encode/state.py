"""Scale-out of :func:`~dcqformat.encode.pipeline.convert`: shares, the fit-state file and the
hooks ``convert()`` calls (issue #8; README "Scale-out").

**Shares.** The canonical listing positions ``0..N-1`` are cut into *blocks* of ``batch_size``
consecutive positions; block ``b`` belongs to share ``b % count`` (round robin, so every share
gets images of every class and of every size in the listing). Blocks are also the analyse pass's
batches and its random streams are re-seeded per block (:func:`block_seed`), so an image's
features and per-image palette do not depend on which process analysed it: a sharded run
reproduces the single-process run exactly.

**Fit state** (``convert(..., fit_only=True)``, ``dcqformat convert SRC STATE --fit-only``): one
``.npz`` file (read with ``numpy.load(allow_pickle=False)``; no pickled objects) holding

``meta``           JSON text: ``format`` ``"dcqformat-fit-state"``, ``version`` 1, the convert
                   ``parameters``, the ``source`` listing (root, SHA-256, files, classes),
                   ``channels``, ``clusters_used``, ``images``, the ``model`` identity and, for a
                   trained proxy, its architecture and input normalisation (``proxy``),
                   ``refinement`` sums, ``attention_degenerate_maps``, ``gradcam_target``,
                   ``reserved_groups`` (palettes with a reserved colour), ``skipped`` files and ``fit_sha256`` (digest of everything below)
``palettes``       uint8 ``[C, K, channels]``: the refined cluster palettes, as stored in a file
``feature_mean``   float64 ``[1, D]`` and ``feature_std`` ``[1, D]``: the standardisation of the
                   clustering features (absent when no clustering was done)
``centroids``      float32 ``[C, D]``: the k-means centres in standardised feature space
``model/<name>``   the proxy's state dict (absent for a user-supplied model, which a shard run
                   must be given again; its identity is checked)

**Shard runs** (``convert(..., state=S, shard=(i, n))``, :mod:`~.drivers.sharded`): load ``S``, analyse only share ``i``
(features only: no Grad-CAM++ and no per-image palettes are needed), give each image the cluster
of the *nearest centroid* of its standardised features and write its samples with the state's
palettes. k-means ends every run with exactly this assignment (its labels are the nearest centre
of the final centres, same distance function, ties to the lowest index), so a shard's clusters
equal the single-process labels; the only possible difference is a last-bit change of a
distance (the matrix product of an ``[m, D]`` share against ``[C, D]`` centres may round
differently from the full ``[N, D]`` one), which can flip an exact tie -- not observed in the
tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcqformat.encode.kmeans import sq_distances
from dcqformat.encode.model import ProxyNet, TaskModel
from dcqformat.encode.model_files import resolve_task_model
from dcqformat.encode.options import SHARD_PARAMETERS, ConvertOptions
from dcqformat.errors import InvalidArgumentError, StructureError
from dcqformat.format.publish import TempFile, publish_error

__all__ = ["FitState", "Share", "parse_shard", "position_runs", "expand_runs",
           "feature_moments", "apply_moments", "proxy_payload", "task_from_payload", "shard_path",
           "empty_share_error", "STATE_FORMAT"]

STATE_FORMAT = "dcqformat-fit-state"
STATE_VERSION = 1


def parse_shard(value: Any) -> tuple[int, int]:
    """``"i/N"`` or ``(i, N)`` -> ``(i, N)`` with ``0 <= i < N``; InvalidArgumentError otherwise."""
    if isinstance(value, str):
        parts = value.split("/")
        try:
            i, n = (int(p) for p in parts) if len(parts) == 2 else (None, None)
        except ValueError:
            i, n = None, None
    elif isinstance(value, Sequence) and len(value) == 2:
        i, n = value
    else:
        i, n = None, None
    if not isinstance(i, int) or not isinstance(n, int) or isinstance(i, bool) or not 0 <= i < n:
        raise InvalidArgumentError(f"shard must be 'i/N' with 0 <= i < N, got {value!r}")
    return i, n


@dataclass(frozen=True)
class Share:
    """Share ``index`` of ``count``: the positions whose block (``pos // block``) is
    ``index`` modulo ``count``."""

    index: int
    count: int
    block: int

    def owns(self, pos: int) -> bool:
        """Whether listing position ``pos`` belongs to this share."""
        return (pos // self.block) % self.count == self.index


def position_runs(positions: Sequence[int]) -> list[list[int]]:
    """Ascending positions -> half-open runs ``[[start, stop], ...]`` (compact provenance)."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and runs[-1][1] == p:
            runs[-1][1] = p + 1
        else:
            runs.append([int(p), int(p) + 1])
    return runs


def expand_runs(runs: Sequence[Sequence[int]]) -> np.ndarray:
    """Inverse of :func:`position_runs`: int64 positions."""
    parts = [np.arange(int(a), int(b), dtype=np.int64) for a, b in runs]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def feature_moments(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The float64 mean and std ``[1, D]`` :func:`~dcqformat.encode.features.standardize` uses."""
    f = raw.double()
    mean = f.mean(0, keepdim=True)
    std = f.std(0, correction=0, keepdim=True)
    return mean, torch.where(std > 1e-12, std, torch.ones_like(std))


def apply_moments(raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Standardise ``raw [M, D]`` with stored moments (bit-identical to ``standardize`` on the
    rows it was computed from)."""
    return ((raw.double() - mean.to(raw.device)) / std.to(raw.device)).to(raw.dtype)


def proxy_payload(task: TaskModel) -> dict[str, Any] | None:
    """A trained :class:`ProxyNet` task model as plain data (None for any other module)."""
    if not isinstance(task.module, ProxyNet):
        return None
    return {"config": dict(task.module.config), "input_size": list(task.input_size),
            "mean": list(task.mean), "std": list(task.std), "in_channels": task.in_channels,
            "identity": dict(task.identity),
            "state_dict": {k: v.detach().cpu().numpy() for k, v in task.module.state_dict().items()}}


def task_from_payload(p: Mapping[str, Any]) -> TaskModel:
    """Rebuild the task model :func:`proxy_payload` described (bit-identical weights)."""
    cfg = p["config"]
    net = ProxyNet(int(cfg["in_channels"]), int(cfg["num_classes"]), tuple(cfg["widths"]))
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in p["state_dict"].items()})
    net.eval()
    return TaskModel(net, "stage1", "last_block", (int(p["input_size"][0]), int(p["input_size"][1])),
                     tuple(p["mean"]), tuple(p["std"]), int(p["in_channels"]),
                     identity=dict(p["identity"]))


@dataclass
class FitState:
    """The shared state of a fit (see the module docstring for the file layout)."""

    meta: dict[str, Any]
    palettes: np.ndarray
    feature_mean: np.ndarray | None = None
    feature_std: np.ndarray | None = None
    centroids: np.ndarray | None = None
    model_state: dict[str, np.ndarray] | None = None
    path: str | None = field(default=None, compare=False)

    @property
    def parameters(self) -> dict[str, Any]:
        """The convert parameters of the fit."""
        return dict(self.meta["parameters"])

    @property
    def channels(self) -> int:
        """Channels of the fitted dataset (1 when every image is grey)."""
        return int(self.meta["channels"])

    def convert_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``convert`` that reproduce the fit's parameters."""
        return {k: v for k, v in self.parameters.items() if k in SHARD_PARAMETERS}

    def digest(self) -> str:
        """SHA-256 of the arrays and of the parameters, source and model identity."""
        h = hashlib.sha256()
        key = {k: self.meta.get(k) for k in ("parameters", "source", "model", "channels")}
        h.update(json.dumps(key, sort_keys=True).encode())
        for name, arr in sorted(self._arrays().items()):
            h.update(f"{name}|{arr.dtype}|{arr.shape}\n".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def _arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"palettes": self.palettes}
        for name in ("feature_mean", "feature_std", "centroids"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for k, v in (self.model_state or {}).items():
            out[f"model/{k}"] = v
        return out

    def save(self, path: str | os.PathLike[str], overwrite: bool = True) -> Path:
        """Write the state to a temporary file (anonymous where the system allows) and publish
        it under ``path`` (replacing it only with ``overwrite``); return the path."""
        target = Path(path)
        meta = {**self.meta, "format": STATE_FORMAT, "version": STATE_VERSION,
                "fit_sha256": self.digest()}
        arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **self._arrays()}
        tmp = TempFile(target)
        try:
            with tmp.file() as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
            tmp.publish(overwrite)
        except OSError as exc:
            raise publish_error(target, exc) from None
        finally:
            tmp.discard()
        self.meta = meta
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FitState:
        """Read a state written by :meth:`save`; StructureError if it is not one."""
        p = Path(path)
        if not p.is_file():
            raise InvalidArgumentError(f"fit state {str(p)!r} does not exist")
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as exc:
            raise StructureError(f"{p}: not a dcqformat fit state (.npz with 'meta'): {exc}") from None
        if meta.get("format") != STATE_FORMAT or meta.get("version") != STATE_VERSION:
            raise StructureError(f"{p}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                                 f"expected {STATE_FORMAT!r} version {STATE_VERSION}")
        model = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        st = cls(meta, arrays["palettes"], arrays.get("feature_mean"), arrays.get("feature_std"),
                 arrays.get("centroids"), model or None, str(p))
        if st.digest() != meta.get("fit_sha256"):
            raise StructureError(f"{p}: fit_sha256 does not match the stored arrays (corrupt or edited)")
        return st

    def check_parameters(self, opts: ConvertOptions) -> None:
        """InvalidArgumentError naming every shard parameter that differs from the fit's."""
        given, fitted = opts.shard_parameters(), self.parameters
        diff = {k: (given.get(k), fitted.get(k)) for k in SHARD_PARAMETERS
                if given.get(k) != fitted.get(k)}
        if diff:
            raise InvalidArgumentError(
                f"parameters differ from the fit state {self.path!r} (given, fitted): {diff}; "
                "pass **state.convert_kwargs()")

    def task_model(self, model: Any) -> Any:
        """The task model of the fit: the stored proxy, or the caller's model when it has the
        identity the fit recorded (InvalidArgumentError otherwise)."""
        proxy = self.meta.get("proxy")
        if proxy is not None and self.model_state is not None:
            return task_from_payload({**proxy, "state_dict": self.model_state})
        want = self.meta.get("model", {})
        if "sha256" not in want and "file_sha256" not in want:
            return model  # the fit needed no model
        task = resolve_task_model(model)
        got = {} if task is None else task.identity
        for key in ("sha256", "file_sha256"):
            if key in want and got.get(key) != want[key]:
                raise InvalidArgumentError(
                    f"the fit state {self.path!r} was made with the model {want}; pass that model "
                    f"again (got {got or model!r})")
        return task

    def assign(self, feats: Sequence[np.ndarray], n: int, dev: torch.device) -> tuple[int, torch.Tensor]:
        """``(clusters_used, cluster of each of the n images)``: nearest centroid of the
        standardised features (all zeros when the fit did not cluster)."""
        n_groups = int(self.meta["clusters_used"])
        if self.centroids is None or self.feature_mean is None or self.feature_std is None:
            return n_groups, torch.zeros(n, dtype=torch.long)
        raw = torch.from_numpy(np.concatenate(feats)).to(dev)
        x = apply_moments(raw, torch.from_numpy(self.feature_mean), torch.from_numpy(self.feature_std))
        c = torch.from_numpy(self.centroids).to(dev, x.dtype)
        return n_groups, sq_distances(x[None], c[None])[0].min(-1).indices.cpu()


def empty_share_error(share: Share) -> InvalidArgumentError:
    """The error for a share that holds no readable image."""
    return InvalidArgumentError(
        f"share {share.index}/{share.count} holds no readable image (shares are blocks of "
        f"{share.block} listing positions, dealt round robin); use fewer shards or a smaller "
        "batch_size")


def shard_path(dst: Path, rank: int, world: int) -> Path:
    """The shard file of ``rank`` in a torchrun job writing ``dst``."""
    return dst.with_name(f"{dst.name}.shard-{rank}-of-{world}")
