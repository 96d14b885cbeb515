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

**Shard runs** (``convert(..., state=S, shard=(i, n))``): load ``S``, analyse only share ``i``
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

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcqformat.encode.kmeans import sq_distances
from dcqformat.encode.model import ProxyNet, TaskModel, resolve_task_model
from dcqformat.encode.pipeline import ConvertSummary
from dcqformat.errors import InvalidArgumentError, StructureError

__all__ = ["FitState", "Share", "ScaleOut", "block_seed", "parse_shard", "position_runs",
           "expand_runs", "feature_moments", "apply_moments", "STATE_FORMAT"]

STATE_FORMAT = "dcqformat-fit-state"
STATE_VERSION = 1
# Parameters a shard run must share with the fit (they change pixels, clusters or the file).
SHARED_PARAMETERS = ("bits", "clusters", "palette", "attention", "attention_fraction",
                     "context_weight", "seed", "max_side", "background", "max_pixels", "on_error",
                     "batch_size", "max_points_per_image", "proxy_resolution", "epochs",
                     "max_train_images", "refine", "refine_steps", "refine_images", "refine_crop",
                     "payload_encoding", "reserve_share", "palette_choice")


def block_seed(seed: int, stream: int, block: int) -> int:
    """Seed of random stream ``stream`` for analyse block ``block`` (independent of sharding)."""
    return ((int(seed) * 1_000_003 + int(stream)) * 1_000_003 + int(block)) % (1 << 63)


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
        return {k: v for k, v in self.parameters.items() if k in SHARED_PARAMETERS}

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

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the state atomically (temporary file + rename) and return the path."""
        target = Path(path)
        meta = {**self.meta, "format": STATE_FORMAT, "version": STATE_VERSION,
                "fit_sha256": self.digest()}
        arrays = {"meta": np.array(json.dumps(meta, sort_keys=True)), **self._arrays()}
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
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


class ScaleOut:
    """What one ``convert()`` call does beyond a single-process run; every hook is a no-op
    when ``shard``, ``state``, ``fit_only`` and ``dist`` are all unset.

    ``dist``: a :class:`~dcqformat.encode.distributed.DistContext` (torchrun mode);
    ``shard``: ``"i/N"`` or ``(i, N)`` with ``state`` (shard mode); ``fit_only``: stop after
    refine and write the fit state to ``dst``.
    """

    def __init__(self, *, shard: Any, state: FitState | None, fit_only: bool, dist: Any,
                 params: dict[str, Any], selection: bool) -> None:
        self.state, self.fit_only, self.dist, self.params = state, bool(fit_only), dist, params
        self.active = any(x is not None for x in (shard, state, dist)) or self.fit_only
        if self.active and params["palette"] == "image":
            raise InvalidArgumentError("palette='image' cannot be sharded or fitted (its palettes are "
                                       "refined during the write pass); use 'cluster' or 'global'")
        if self.active and selection:
            raise InvalidArgumentError("coreset / dedup selection and patch dropping are not "
                                       "supported with --shard, --state, --fit-only or torchrun yet")
        if shard is not None and (state is None or dist is not None):
            raise InvalidArgumentError("shard needs a fit state (state=...) and no torchrun")
        if fit_only and state is not None:
            raise InvalidArgumentError("fit_only and state exclude each other")
        if state is not None:
            diff = {k: (params.get(k), state.parameters.get(k)) for k in SHARED_PARAMETERS
                    if params.get(k) != state.parameters.get(k)}
            if diff:
                raise InvalidArgumentError(
                    f"parameters differ from the fit state {state.path!r} (given, fitted): {diff}; "
                    "pass **state.convert_kwargs()")
        self.share: Share | None = None
        if dist is not None:
            self.share = Share(dist.rank, dist.world_size, params["batch_size"])
        elif shard is not None:
            self.share = Share(*parse_shard(shard), params["batch_size"])
        self.features_only = state is not None
        self.is_root = dist is None or dist.rank == 0
        self.fit_id = state.meta["fit_sha256"] if state is not None else ""
        self._fit: dict[str, torch.Tensor] = {}

    # -- model ----------------------------------------------------------------------------
    def model(self, model: Any) -> Any:
        """The model argument to resolve: the fit state's model in shard mode."""
        return self.state.task_model(model) if self.state is not None else model

    def broadcast_proxy(self, task: TaskModel | None) -> TaskModel:
        """torchrun: rank 0 trained the proxy; every other rank receives it."""
        if self.dist is None:
            assert task is not None
            return task
        got = self.dist.broadcast(proxy_payload(task) if self.is_root and task is not None else None,
                                  "train")
        return task if self.is_root and task is not None else task_from_payload(got)

    # -- analyse --------------------------------------------------------------------------
    def owns(self, pos: int) -> bool:
        """Whether this process analyses and writes listing position ``pos``."""
        return self.share is None or self.share.owns(pos)

    def gather_analysis(self, feats: list[np.ndarray], pal_centers: list[torch.Tensor],
                        pal_counts: list[torch.Tensor], skipped: dict[int, str],
                        ok_positions: list[int], heights: list[int], widths: list[int],
                        all_grey: bool, degenerate: int, target_rule: str, k: int,
                        per_image: Sequence[list[Any]] = ()
                        ) -> tuple[list[int], list[int], list[int], bool, int, str]:
        """torchrun: every rank's analysis, merged in position order (lists updated in place;
        ``per_image``: further lists with one item per analysed image). Shard mode: the fit's
        channels and Grad-CAM++ record. Returns ``ok_positions, heights, widths, all_grey,
        degenerate, target_rule``."""
        if self.state is not None:
            if not ok_positions:
                raise self._empty_share()
            pal_centers.append(torch.zeros(0, k, 3))
            pal_counts.append(torch.zeros(0, k))
            m = self.state.meta
            return (ok_positions, heights, widths, self.state.channels == 1,
                    int(m["attention_degenerate_maps"]), str(m["gradcam_target"]))
        if self.dist is None:
            return ok_positions, heights, widths, all_grey, degenerate, target_rule
        mine = {"pos": np.asarray(ok_positions, np.int64), "h": np.asarray(heights, np.int32),
                "w": np.asarray(widths, np.int32),
                "feats": np.concatenate(feats) if feats else None,
                "centers": torch.cat(pal_centers).numpy() if pal_centers else None,
                "counts": torch.cat(pal_counts).numpy() if pal_counts else None,
                "skipped": dict(skipped), "grey": all_grey, "degenerate": degenerate,
                "target": target_rule, "per_image": [_columns(x) for x in per_image]}
        parts = self.dist.all_gather(mine, "analyse")
        pos = np.concatenate([p["pos"] for p in parts])
        order = np.argsort(pos, kind="stable")

        def cat(key: str) -> np.ndarray:
            return np.concatenate([p[key] for p in parts if p[key] is not None])[order]

        if feats:
            feats[:] = [cat("feats")]
        if pal_centers:
            pal_centers[:] = [torch.from_numpy(cat("centers"))]
            pal_counts[:] = [torch.from_numpy(cat("counts"))]
        for j, lst in enumerate(per_image):
            flat = [item for p in parts for item in _rows(p["per_image"][j])]
            lst[:] = [flat[o] for o in order] if flat else []
        for p in parts:
            skipped.update(p["skipped"])
        rule = "predicted" if any(p["target"] == "predicted" for p in parts) else target_rule
        return (pos[order].tolist(), cat("h").tolist(), cat("w").tolist(),
                all(p["grey"] for p in parts), sum(p["degenerate"] for p in parts), rule)

    # -- fit ------------------------------------------------------------------------------
    def record_clusters(self, raw: torch.Tensor, centers: torch.Tensor) -> None:
        """Keep what a fit state needs from the clustering (raw features, k-means centres)."""
        if self.fit_only:
            mean, std = feature_moments(raw)
            self._fit = {"mean": mean.cpu(), "std": std.cpu(), "centers": centers.detach().cpu()}

    def sync_fit(self, groups: torch.Tensor, pal_u8: np.ndarray, refine_stats: dict[str, float]
                 ) -> tuple[torch.Tensor, np.ndarray]:
        """torchrun: every rank takes rank 0's clusters, palettes and refinement record (they
        computed the same; this makes it exact even on mixed hardware). Shard mode: the fit's
        refinement record."""
        if self.state is not None:
            refine_stats.update(self.state.meta["refinement"])
        elif self.dist is not None:
            got = self.dist.broadcast((groups.numpy().astype(np.int32), pal_u8, dict(refine_stats))
                                      if self.is_root else None, "fit")
            groups, pal_u8 = torch.from_numpy(got[0].astype(np.int64)), got[1].copy()
            refine_stats.update(got[2])
        if self.dist is not None or self.fit_only:
            h = hashlib.sha256(np.ascontiguousarray(pal_u8).tobytes())
            h.update(json.dumps(self.params, sort_keys=True, default=str).encode())
            self.fit_id = h.hexdigest()
        return groups, pal_u8

    def save_fit(self, dst: Path, *, task: TaskModel | None, pal_u8: np.ndarray, n_groups: int,
                 channels: int, listing: Any, model_identity: dict[str, Any],
                 refine_stats: dict[str, float], degenerate: int, target_rule: str,
                 skipped: dict[int, str], n: int, device: str, seconds: dict[str, float],
                 reserved_groups: int = 0) -> ConvertSummary:
        """Write the fit state to ``dst`` (rank 0 only) and return a summary of it."""
        payload = proxy_payload(task) if task is not None else None
        meta: dict[str, Any] = {
            "parameters": self.params,
            "source": {"root": str(listing.root), "listing_sha256": listing.listing_hash,
                       "files_listed": len(listing.entries), "classes": list(listing.classes)},
            "channels": channels, "clusters_used": n_groups, "images": n,
            "model": model_identity,
            "proxy": None if payload is None else {k: v for k, v in payload.items() if k != "state_dict"},
            "refinement": dict(refine_stats), "attention_degenerate_maps": degenerate,
            "gradcam_target": target_rule, "reserved_groups": int(reserved_groups),
            "skipped": [{"position": p, "path": listing.entries[p].relpath, "error": e}
                        for p, e in sorted(skipped.items())],
        }
        f = self._fit
        state = FitState(meta, np.ascontiguousarray(pal_u8),
                         f["mean"].numpy() if f else None, f["std"].numpy() if f else None,
                         f["centers"].float().numpy() if f else None,
                         None if payload is None else payload["state_dict"])
        if self.is_root:
            state.save(dst)
        size = dst.stat().st_size if dst.exists() else 0
        return FitSummary(path=str(dst), images=n,
                          skipped=[{"path": s["path"], "error": s["error"]} for s in meta["skipped"]],
                          classes=len(listing.classes), bits=self.params["bits"], channels=channels,
                          palettes=int(pal_u8.shape[0]), palette_mode=self.params["palette"],
                          file_bytes=size, raw_pixel_bytes=0, source_bytes=0, ratio_vs_raw=0.0,
                          ratio_vs_source=0.0, psnr_mean_db=float("nan"), psnr_min_db=float("nan"),
                          device=device, model=model_identity,
                          stage_seconds={s: round(v, 4) for s, v in seconds.items()})

    # -- write ----------------------------------------------------------------------------
    def write_at(self, write_at: list[int], ok_positions: Sequence[int]) -> list[int]:
        """The sample indices (into ``ok_positions``) this process writes."""
        if self.share is None:
            return write_at
        mine = [i for i in write_at if self.share.owns(ok_positions[i])]
        if not mine:
            raise self._empty_share()
        return mine

    def _empty_share(self) -> InvalidArgumentError:
        s = self.share
        assert s is not None
        return InvalidArgumentError(
            f"share {s.index}/{s.count} holds no readable image (shares are blocks of {s.block} "
            "listing positions, dealt round robin); use fewer shards or a smaller batch_size")

    def output(self, dst: Path) -> Path:
        """Where this process writes: ``DST.shard-i-of-N`` in torchrun mode, else ``dst``."""
        return shard_path(dst, self.dist.rank, self.dist.world_size) if self.dist is not None else dst

    def annotate(self, prov: dict[str, Any], *, written: Sequence[int], skipped: Mapping[int, str],
                 psnrs: Sequence[float], raw_bytes: int, source_bytes: int) -> None:
        """Add the ``shard`` record :mod:`dcqformat.format.merge` needs to the provenance."""
        if self.share is None:
            return
        prov["shard"] = {
            "index": self.share.index, "count": self.share.count, "block": self.share.block,
            "rule": "listing position p belongs to shard (p // block) % count",
            "mode": "torchrun" if self.dist is not None else "fit-state",
            "fit_sha256": self.fit_id, "positions": position_runs(written),
            "skipped_positions": sorted(int(p) for p in skipped),
            "images": len(written), "psnr_sum": float(np.sum(psnrs)),
            "psnr_min": float(np.min(psnrs)), "raw_pixel_bytes": int(raw_bytes),
            "source_bytes": int(source_bytes),
        }


def _columns(items: Sequence[Any]) -> list[Any]:
    """Per-image tuples -> one array per field (pickles ~10x smaller than many tiny arrays)."""
    if not items or not isinstance(items[0], tuple):
        return [list(items)]
    cols = []
    for j in range(len(items[0])):
        vals = [t[j] for t in items]
        cols.append(("a", np.stack(vals)) if isinstance(vals[0], np.ndarray) else ("s", np.array(vals)))
    return [cols]


def _rows(packed: list[Any]) -> list[Any]:
    """Inverse of :func:`_columns`."""
    if not packed or not packed[0] or not isinstance(packed[0][0], tuple):
        return list(packed[0]) if packed else []
    cols = [list(c) if kind == "a" else c.tolist() for kind, c in packed[0]]
    return list(zip(*cols, strict=True))


def shard_path(dst: Path, rank: int, world: int) -> Path:
    """The shard file of ``rank`` in a torchrun job writing ``dst``."""
    return dst.with_name(f"{dst.name}.shard-{rank}-of-{world}")


@dataclasses.dataclass
class FitSummary(ConvertSummary):
    """:class:`ConvertSummary` of a ``fit_only`` run (no samples written)."""

    def format(self) -> str:
        """One line per fact of the fit state."""
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.stage_seconds.items())
        return (f"wrote fit state {self.path}: {self.file_bytes:,} bytes, {self.palettes} "
                f"palette(s) of {1 << self.bits} colours, {self.channels} channel(s), fitted on "
                f"{self.images} images\n  time {self.total_seconds:.2f}s on {self.device}: {times}")
