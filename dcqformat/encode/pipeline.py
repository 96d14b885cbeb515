"""``convert()``: ImageFolder -> ``.dcq`` with Dataset Color Quantization (METHOD.md §1).

Stages (each timed, each with a progress bar when ``progress=True``):

``scan``      list the ImageFolder in canonical (torchvision) order, sizes, listing hash
``sample``    load a bounded, seeded random sample at ``proxy_resolution`` for the proxy model
              (at most ``max_train_images`` thumbnails: ``max_train_images · 3 · r²`` bytes,
              61 MB at the defaults 20,000 and 32 px) -- only when a proxy is trained
``train``     train the proxy classifier on that sample (or load / wrap the user's model)
``analyse``   pass 1 over every image: shallow features, Grad-CAM++ mask (top 50 %), per-image
              LAB palette + counts. Kept per image: ~2·(stage-1 width) feature floats and K
              colours + K counts; nothing that grows with H·W.
``cluster``   k-means (C clusters) of the standardised features
``palettes``  count-weighted k-means of the member palettes -> one K-colour palette per cluster
``refine``    Sobel edge-loss refinement of each cluster palette on up to ``refine_images``
              seeded random crops (``refine_crop`` px) of its members, reloaded from disk
``write``     pass 2: reload each image, nearest-colour indices against its cluster's stored
              (uint8) palette, stream into :class:`~dcqformat.DCQWriter`

Determinism: all randomness derives from ``seed``; torch runs with deterministic algorithms;
the same input, parameters, seed, device type and software versions give a byte-identical file
on the CPU. Safety: the output appears only when complete (the writer renames a temporary file
into place), an error or Ctrl-C leaves no file under ``dst``, and nothing is ever written
inside ``src`` (a ``dst`` inside the source folder is refused).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dcqformat._version import __version__
from dcqformat.device import resolve_device
from dcqformat.encode.assign import assign_batch, palette_to_working, pixels_to_working
from dcqformat.encode.features import pooled_features, standardize
from dcqformat.encode.gradcam import compute_cams, top_fraction_masks, upsample_cam
from dcqformat.encode.images import LoadOptions, is_grey, load_image, parse_background, to_channels
from dcqformat.encode.kmeans import kmeans, sq_distances
from dcqformat.encode.model import TaskModel, deterministic, resolve_task_model, train_proxy
from dcqformat.encode.palettes import (
    RESERVE_RADIUS,
    dominant_colours,
    image_palettes,
    palette_to_uint8,
    reserved_colours,
    shared_palettes,
)
from dcqformat.encode.patchdrop import PatchDropper, parse_patch_drop
from dcqformat.encode.refine import refine_palette, refine_palettes_batched
from dcqformat.encode.scan import FolderListing, SourceEntry, scan_image_folder
from dcqformat.encode.selection_stage import SelectionPlan, SelectionStage, summary_lines
from dcqformat.errors import InputImageError, InvalidArgumentError

__all__ = ["convert", "ConvertSummary", "STAGES"]

STAGES = ("scan", "sample", "train", "analyse", "cluster", "palettes", "select", "refine",
          "write")
PALETTE_MODES = ("cluster", "image", "global")
PALETTE_CHOICES = ("cluster", "best")
CHOICE_MAX_PIXELS = 4096  # pixels per image (strided) that decide palette_choice="best"

# Independent random streams derived from the one seed.
_S_SAMPLE, _S_TRAIN, _S_MASK, _S_IMGPAL, _S_CLUSTER, _S_SHARED, _S_REFINE = range(1, 8)


@dataclass
class ConvertSummary:
    """What :func:`convert` did. Byte counts are of the written file and of the source files of
    the images it holds; ``ratio_*`` are "times smaller" (source / file)."""

    path: str
    images: int
    skipped: list[dict[str, str]]
    classes: int
    bits: int
    channels: int
    palettes: int
    palette_mode: str
    file_bytes: int
    raw_pixel_bytes: int
    source_bytes: int
    ratio_vs_raw: float
    ratio_vs_source: float
    psnr_mean_db: float
    psnr_min_db: float
    device: str
    model: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)  # dedup / coreset (selection_stage)
    patch_drop: dict[str, Any] | None = None  # patch dropping (encode/patchdrop.py)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.stage_seconds.values()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_seconds"] = self.total_seconds
        return d

    def format(self) -> str:
        """A short human-readable report (what ``dcqformat convert`` prints)."""
        pix = self.raw_pixel_bytes / max(1, self.channels)
        lines = [
            f"wrote {self.path}: {self.images} images, {self.classes} classes, {self.bits} bit(s), "
            f"{self.channels} channel(s), {self.palettes} palette(s) ({self.palette_mode})",
            f"  {self.file_bytes:,} bytes = {8 * self.file_bytes / max(1, pix):.3f} bits/pixel, "
            f"{self.file_bytes / max(1, self.images):.1f} bytes/image",
            f"  {self.ratio_vs_raw:.2f}x smaller than raw pixels ({self.raw_pixel_bytes:,} B), "
            f"{self.ratio_vs_source:.2f}x smaller than the source files ({self.source_bytes:,} B)",
            f"  PSNR vs the (flattened) source images: mean {self.psnr_mean_db:.2f} dB, "
            f"min {self.psnr_min_db:.2f} dB",
        ]
        if self.patch_drop:
            d = self.patch_drop
            lines.append(f"  patch drop {d['spec']} (P={d['patch_size']}): mean theta {d['mean_theta']:.3f}, "
                         f"{100 * d['dropped_patch_fraction']:.1f}% of patches dropped")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"    {s['path']}: {s['error']}" for s in self.skipped[:20])
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more (see the provenance)")
        lines.extend(summary_lines(self.selection))
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.stage_seconds.items())
        lines.append(f"  time {self.total_seconds:.2f}s on {self.device}: {times}")
        return "\n".join(lines)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(_check_int("threads", n, 1))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + stream) % (1 << 63))
    return g


_Loaded = tuple[int, np.ndarray | InputImageError]


def _try_load(entry: SourceEntry, opts: LoadOptions) -> np.ndarray | InputImageError:
    try:
        return load_image(entry.path, opts)
    except InputImageError as e:
        return e


def _load_many(
    entries: Sequence[SourceEntry], positions: Sequence[int], opts: LoadOptions, workers: int
) -> Iterator[_Loaded]:
    """Yield ``(position, array or error)`` in order, decoding up to ``workers`` files ahead in
    threads (Pillow's decoders release the GIL)."""
    if workers <= 1:
        for pos in positions:
            yield pos, _try_load(entries[pos], opts)
        return
    window = 4 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dcq-load") as ex:
        pending: deque[tuple[int, Future[np.ndarray | InputImageError]]] = deque()
        it = iter(positions)
        for pos in it:
            pending.append((pos, ex.submit(_try_load, entries[pos], opts)))
            if len(pending) >= window:
                break
        while pending:
            pos, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, ex.submit(_try_load, entries[nxt], opts)))
            yield pos, fut.result()


def _thumbnail(arr: np.ndarray, res: int) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> uint8 ``[C, res, res]`` (bilinear, antialiased, aspect squashed)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].float()
    if x.shape[-2:] != (res, res):
        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    return x[0].round().clamp(0, 255).to(torch.uint8)


def _chw(arr: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> ``[1, C, H, W]`` tensor (shares memory)."""
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def _by_shape(arrs: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Positions of the arrays grouped by ``(H, W)``, in first-seen order."""
    out: dict[tuple[int, int], list[int]] = {}
    for i, a in enumerate(arrs):
        out.setdefault((int(a.shape[0]), int(a.shape[1])), []).append(i)
    return out


def _psnr(mse: float) -> float:
    return 99.0 if mse <= 1e-10 else min(99.0, 10.0 * math.log10(255.0 * 255.0 / mse))


def _random_crop(arr: np.ndarray, size: int, gen: torch.Generator) -> np.ndarray:
    h, w = arr.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y = int(torch.randint(0, h - ch + 1, (1,), generator=gen))
    x = int(torch.randint(0, w - cw + 1, (1,), generator=gen))
    return np.ascontiguousarray(arr[y : y + ch, x : x + cw])


def _check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {list(allowed)}, got {value!r}")


def best_palettes(images: np.ndarray, palettes_w: torch.Tensor) -> list[int]:
    """``palette_choice="best"`` (ours): for equal-size uint8 images ``[B, H, W, C]``, the index
    of the palette ``palettes_w [G, K, C]`` (working space) under which each image's
    nearest-colour error (summed squared working-space distance over up to
    :data:`CHOICE_MAX_PIXELS` strided pixels) is smallest; ties go to the lowest index."""
    b, c = images.shape[0], images.shape[-1]
    flat = images.reshape(b, -1, c)
    flat = flat[:, ::max(1, -(-flat.shape[1] // CHOICE_MAX_PIXELS))]  # subsample, then convert
    x = pixels_to_working(np.ascontiguousarray(flat), palettes_w.device).reshape(b, -1, c)
    g = palettes_w.shape[0]
    err = torch.empty(b, g, dtype=torch.float64, device=x.device)
    for j in range(g):  # one palette at a time: memory B*P*K, not B*P*G*K
        d = sq_distances(x, palettes_w[j][None].expand(b, -1, -1))
        err[:, j] = d.min(-1).values.double().sum(-1)
    return [int(v) for v in err.argmin(1).tolist()]


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise InvalidArgumentError(f"{name} must be {rng}, got {v}")
    return v


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _open_writer(dst: Path, bits: int, channels: int, classes: Sequence[str],
                 payload_encoding: str, zstd_level: int, patch_size: int | None = None) -> Any:
    from dcqformat.format.writer import DCQWriter

    return DCQWriter(dst, bits, channels, list(classes), payload_encoding=payload_encoding,
                     zstd_level=zstd_level, patch_size=patch_size)


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    bits: int = 2,
    clusters: int = 20,
    palette: str = "cluster",
    palette_choice: str = "best",
    attention: bool = True,
    refine: bool = True,
    model: Any = "proxy",
    device: str | torch.device = "auto",
    seed: int = 0,
    max_side: int | None = None,
    background: str | Sequence[int] = (255, 255, 255),
    on_error: str = "fail",
    payload_encoding: str = "auto",
    progress: bool = True,
    epochs: int = 4,
    proxy_resolution: int = 32,
    max_train_images: int = 20_000,
    attention_fraction: float = 0.5,
    context_weight: float = 0.1,
    reserve_share: float | None = 0.2,
    refine_steps: int = 20,
    refine_images: int = 8,
    refine_crop: int = 64,
    max_points_per_image: int = 4096,
    batch_size: int = 64,
    workers: int | None = None,
    zstd_level: int = 3,
    overwrite: bool = False,
    max_pixels: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] | None = None,
    coreset: str | None = None,
    dedup: str | None = None,
    keep_all: bool = False,
    shard: Any = None,
    state: Any = None,
    fit_only: bool = False,
    dist: Any = None,
    patch_drop: str | None = None,
    patch_size: int | None = None,
) -> ConvertSummary:
    """Convert the ImageFolder ``src`` into the ``.dcq`` file ``dst``.

    Main parameters (METHOD.md §1 defaults): ``bits`` q (K = 2**q colours per palette),
    ``clusters`` C = 20, ``palette``: ``"cluster"`` (the method), ``"image"`` (one palette per
    image, C = N) or ``"global"`` (one palette, C = 1); ``palette_choice``: ``"best"`` (ours,
    default: an image uses whichever of the C palettes fits it best, see :func:`best_palettes`;
    its stored cluster id is that palette; the fit is unchanged) or ``"cluster"`` (the method as
    published: an image uses its cluster's palette); ``attention``: palettes from the top
    ``attention_fraction`` (50 %) Grad-CAM++ pixels (False: all pixels), the other pixels
    weighing ``context_weight`` (ours, default 0.1; 0 = attended pixels only, as the paper) in
    the per-image palettes so flat backgrounds keep a colour; ``refine``: Sobel
    edge-loss refinement, kept per palette only where it does not lower PSNR on its crops;
    ``reserve_share`` (ours, default 0.2; None = off): a shared palette whose members' most
    frequent colour (a flat background) covers at least this share of their pixels keeps that
    colour exactly as one entry; ``model``: ``"proxy"`` (train one), a checkpoint path, an
    ``nn.Module`` or a :class:`~dcqformat.encode.model.TaskModel`; ``device``: ``"auto"``,
    ``"cpu"``, ``"cuda"``...; ``max_side``: downscale larger images; ``background``: colour
    transparent pixels are flattened onto; ``on_error``: ``"fail"`` or ``"skip"`` unreadable
    images (skipped files are listed in the summary and the provenance); ``payload_encoding``:
    ``"raw"``, ``"zstd"`` or ``"auto"`` (default: per image, the smaller of raw and zstd); ``overwrite``: replace an existing ``dst``;
    ``threads``: torch intra-op CPU threads for the duration (default 1 on the CPU: the
    encoder's tensors are small -- per-image palettes, a 32 px proxy -- so extra threads gain
    little and, on a busy machine, cost up to 8x in spin-waiting; one thread also makes the
    output independent of the core count); ``workers``: image-decoding threads (default
    min(4, CPUs)).

    Dataset-level compression (METHOD.md §2, :mod:`dcqformat.encode.selection_stage`):
    ``dedup`` ``"phash:T"`` (also ahash/dhash/whash; ``":flip"`` matches mirrored copies) drops
    near-duplicates, then ``coreset`` ``"bgfdq:R"`` / ``"semred:R"`` / ``"el2n:R"`` /
    ``"random:R"`` keeps a fraction R of the rest; both are stored as named selections, and
    only the final selection's images are written unless ``keep_all``.

    Scale-out (:mod:`dcqformat.encode.state`, README "Scale-out"): ``fit_only`` stops after
    refine and writes the fit state (an ``.npz``) to ``dst``; ``state`` (a
    :class:`~dcqformat.encode.state.FitState`) with ``shard="i/N"`` encodes share ``i`` of
    ``N`` against it; ``dist`` is set by :func:`~dcqformat.encode.distributed.convert_distributed`.

    Patch dropping (METHOD.md §3, :mod:`dcqformat.encode.patchdrop`): ``patch_drop``
    ``"fixed:THETA"`` drops the THETA fraction of each image's patches with the lowest mean
    Grad-CAM++ attention, ``"spd"`` the largest fraction in 10 %..90 % whose feature shift stays
    below the class's λ_C; only kept patches are stored (spec §13), dropped ones as one fill
    colour. ``patch_size`` P (default ``max(4, smallest side // 8)``).

    Returns a :class:`ConvertSummary`. Raises :class:`~dcqformat.errors.InputImageError` for an
    unreadable image (``on_error="fail"``) and
    :class:`~dcqformat.errors.InvalidArgumentError` for bad arguments.
    """
    # ------------------------------------------------------------------ arguments
    bits = _check_int("bits", bits, 1, 8)
    clusters = _check_int("clusters", clusters, 1)
    _check_choice("palette", palette, PALETTE_MODES)
    _check_choice("palette_choice", palette_choice, PALETTE_CHOICES)
    _check_choice("on_error", on_error, ("fail", "skip"))
    _check_choice("payload_encoding", payload_encoding, ("raw", "zstd", "auto"))
    seed = _check_int("seed", seed, 0)
    epochs = _check_int("epochs", epochs, 0)
    proxy_resolution = _check_int("proxy_resolution", proxy_resolution, 8)
    max_train_images = _check_int("max_train_images", max_train_images, 1)
    refine_steps = _check_int("refine_steps", refine_steps, 0)
    refine_images = _check_int("refine_images", refine_images, 1)
    refine_crop = _check_int("refine_crop", refine_crop, 3)
    max_points_per_image = _check_int("max_points_per_image", max_points_per_image, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if not 0.0 < float(attention_fraction) <= 1.0:
        raise InvalidArgumentError(f"attention_fraction must be in (0, 1], got {attention_fraction}")
    if not 0.0 <= float(context_weight) <= 1.0:
        raise InvalidArgumentError(f"context_weight must be in [0, 1], got {context_weight}")
    if reserve_share is not None and not 0.0 < float(reserve_share) <= 1.0:
        raise InvalidArgumentError(f"reserve_share must be in (0, 1] or None, got {reserve_share}")
    if max_side is not None:
        max_side = _check_int("max_side", max_side, 1)
    bg = parse_background(background)
    opts = LoadOptions(bg, max_side, max_pixels if max_pixels is not None else LoadOptions().max_pixels)
    workers = min(4, os.cpu_count() or 1) if workers is None else _check_int("workers", workers, 0)
    dev = resolve_device(device)
    if threads is None and dev.type == "cpu":
        threads = 1
    k = 1 << bits
    say = log or (lambda _m: None)
    sel_stage = SelectionStage.from_args(coreset, dedup, keep_all, seed)
    drop_spec = parse_patch_drop(patch_drop)
    if drop_spec is None and patch_size is not None:
        raise InvalidArgumentError(f"patch_size={patch_size!r} needs patch_drop ('fixed:THETA' or 'spd')")
    if drop_spec is not None and (shard is not None or state is not None or fit_only or dist is not None):
        raise InvalidArgumentError("patch_drop is not supported with shard/state/fit_only/dist yet")
    dropper = None if drop_spec is None else PatchDropper(drop_spec, patch_size)
    from dcqformat.encode.state import ScaleOut, block_seed  # scale-out hooks (no-ops when unused)

    so = ScaleOut(shard=shard, state=state, fit_only=fit_only, dist=dist,
                  selection=sel_stage.active or dropper is not None,
                  params=dict(bits=bits, clusters=clusters, palette=palette, attention=attention,
                              attention_fraction=float(attention_fraction),
                              context_weight=float(context_weight), seed=seed, max_side=max_side,
                              background=list(bg), max_pixels=opts.max_pixels, on_error=on_error,
                              batch_size=batch_size, max_points_per_image=max_points_per_image,
                              proxy_resolution=proxy_resolution, epochs=epochs,
                              max_train_images=max_train_images, refine=refine,
                              refine_steps=refine_steps, refine_images=refine_images,
                              refine_crop=refine_crop, payload_encoding=payload_encoding,
                              reserve_share=reserve_share, palette_choice=palette_choice))

    src_path = Path(src)
    dst_path = Path(dst)
    if src_path.is_dir() and _is_within(dst_path.resolve(), src_path.resolve()):
        raise InvalidArgumentError(
            f"output {str(dst_path)!r} lies inside the source folder {str(src_path)!r}; "
            "dcqformat never writes into the source"
        )
    if dst_path.exists() and not overwrite:
        raise InvalidArgumentError(f"output {str(dst_path)!r} exists (pass overwrite=True / --force)")

    timer = _Timer()
    need_features = palette == "cluster" and clusters > 1
    need_model = need_features or (attention and not so.features_only) or sel_stage.needs_model \
        or dropper is not None
    skipped: dict[int, str] = {}

    def fail_or_skip(pos: int, err: InputImageError) -> None:
        if on_error == "fail":
            raise err
        skipped.setdefault(pos, str(err))

    with deterministic(seed), _torch_threads(threads):
        # -------------------------------------------------------------- scan
        with timer.stage("scan"):
            listing: FolderListing = scan_image_folder(src_path)
        entries = listing.entries
        n_all = len(entries)
        n_classes = len(listing.classes)
        say(f"found {n_all} images in {n_classes} classes under {listing.root}")

        # -------------------------------------------------------------- model
        task: TaskModel | None = None
        model_identity: dict[str, Any] = {"kind": "none (not needed by these settings)"}
        if need_model:
            task = resolve_task_model(so.model(model))
            sel_stage.check_epochs(epochs, task is None)
            proxy = task is None
            if proxy and so.is_root:  # torchrun: rank 0 trains, the others receive its weights
                with timer.stage("sample"):
                    gen = _generator(seed, _S_SAMPLE, torch.device("cpu"))
                    if n_all <= max_train_images:
                        sample = list(range(n_all))
                    else:
                        sample = sorted(torch.randperm(n_all, generator=gen)[:max_train_images].tolist())
                    thumbs: list[torch.Tensor] = []
                    greys: list[bool] = []
                    tlabels: list[int] = []
                    bar = tqdm(total=len(sample), desc="load sample", unit="img",
                               disable=not progress, leave=False)
                    for pos, got in _load_many(entries, sample, opts, workers):
                        bar.update(1)
                        if isinstance(got, InputImageError):
                            fail_or_skip(pos, got)
                            continue
                        grey_img = is_grey(got)
                        thumbs.append(_thumbnail(got[..., :1] if grey_img else got, proxy_resolution))
                        greys.append(grey_img)
                        tlabels.append(entries[pos].label)
                    bar.close()
                    if not thumbs:
                        raise InputImageError(f"no readable image among the {len(sample)} sampled "
                                              f"from {str(listing.root)!r}")
                    in_ch = 1 if all(greys) else 3
                    timgs = torch.stack([t if t.shape[0] == in_ch else t.expand(in_ch, -1, -1)
                                         for t in thumbs])
                    del thumbs
                with timer.stage("train"):
                    task = train_proxy(
                        timgs, torch.tensor(tlabels), n_classes, epochs=epochs, seed=seed,
                        device=dev, progress=progress, on_epoch_model=sel_stage.epoch_hook(),
                    )
                    del timgs
            if proxy:
                with timer.stage("train"):
                    task = so.broadcast_proxy(task)
            assert task is not None
            task.to(dev)
            task.module.eval()
            model_identity = dict(task.identity)

        # -------------------------------------------------------------- pass 1: analyse
        feats: list[np.ndarray] = []
        pal_centers: list[torch.Tensor] = []
        pal_counts: list[torch.Tensor] = []
        dominant: list[tuple[int, np.ndarray, float]] = []  # per image: bin key, colour, share
        ok_positions: list[int] = []
        heights: list[int] = []
        widths: list[int] = []
        all_grey = True
        degenerate = 0
        target_rule = "label"
        mask_gen = _generator(seed, _S_MASK, torch.device("cpu"))
        pal_gen = _generator(seed, _S_IMGPAL, dev)
        with timer.stage("analyse"):
            bar = tqdm(total=n_all, desc="analyse", unit="img", disable=not progress, leave=False)
            todo = [p for p in range(n_all) if p not in skipped and so.owns(p)]
            batch: list[tuple[int, np.ndarray]] = []

            def flush(batch: list[tuple[int, np.ndarray]]) -> None:
                """Model pass, masks and per-image palettes for one batch (same-size images
                are processed together)."""
                nonlocal degenerate, target_rule
                arrs = [a for _, a in batch]
                blk = batch[0][0] // batch_size  # random streams per block: shard-independent
                mask_gen.manual_seed(block_seed(seed, _S_MASK, blk))
                pal_gen.manual_seed(block_seed(seed, _S_IMGPAL, blk))
                cams = None
                if task is not None:
                    x = torch.cat([task.prepare(_chw(a)) for a in arrs])
                    with torch.set_grad_enabled(attention or dropper is not None):
                        logits, shallow, last = task.forward_maps(x)
                        if need_features:
                            feats.append(pooled_features(shallow).cpu().numpy())
                        if sel_stage.needs_model:
                            sel_stage.observe_model(x, logits, last,
                                                    [entries[p].label for p, _ in batch], n_classes)
                        if (attention or dropper is not None) and not so.features_only:
                            labels = torch.tensor([entries[p].label for p, _ in batch])
                            if logits.shape[1] == n_classes:
                                targets = labels
                            else:
                                target_rule = "predicted"
                                targets = logits.detach().argmax(1).cpu()
                            cams = compute_cams(logits, last, targets).detach()
                            if dropper is not None:  # patch importance: the same maps
                                dropper.record(cams, last)
                                cams = cams if attention else None
                if so.features_only:  # shard mode: palettes come from the fit state
                    return
                sel_stage.observe_images(arrs)
                points: list[torch.Tensor | None] = [None] * len(arrs)
                pweights: list[torch.Tensor | None] = [None] * len(arrs)
                dom: list[tuple[int, np.ndarray, float]] = [(0, np.zeros(3, np.uint8), 0.0)] * len(arrs)
                for shape, members in _by_shape(arrs).items():
                    stack = np.stack([to_channels(arrs[i], 3) for i in members])
                    if reserve_share is not None:
                        dkey, drgb, dshare = dominant_colours(stack)
                        for j, i in enumerate(members):
                            dom[i] = (int(dkey[j]), drgb[j], float(dshare[j]))
                    pix = pixels_to_working(stack, dev).reshape(len(members), -1, 3)
                    if cams is None:
                        for j, i in enumerate(members):
                            points[i] = pix[j]
                        continue
                    up = upsample_cam(cams[members], shape)
                    masks, degen = top_fraction_masks(up, attention_fraction, mask_gen)
                    degenerate += int(degen.sum())
                    masks = masks.reshape(len(members), -1).to(pix.device)
                    for j, i in enumerate(members):
                        if context_weight > 0:  # attended pixels weigh 1, the rest context_weight
                            points[i] = pix[j]
                            pweights[i] = torch.where(masks[j], 1.0, float(context_weight))
                        else:
                            points[i] = pix[j][masks[j]]
                c, n = image_palettes([p for p in points if p is not None], k,
                                      weights=[w for p, w in zip(points, pweights, strict=True)
                                               if p is not None],
                                      max_points=max_points_per_image, generator=pal_gen)
                pal_centers.append(c.cpu())
                pal_counts.append(n.cpu())
                dominant.extend(dom)

            for pos, got in _load_many(entries, todo, opts, workers):
                bar.update(1)
                if isinstance(got, InputImageError):
                    fail_or_skip(pos, got)
                    continue
                all_grey = all_grey and is_grey(got)
                ok_positions.append(pos)
                heights.append(got.shape[0])
                widths.append(got.shape[1])
                if batch and pos // batch_size != batch[0][0] // batch_size:
                    flush(batch)  # a batch is a block of batch_size listing positions
                    batch = []
                batch.append((pos, got))
            if batch:
                flush(batch)
            bar.close()
        ok_positions, heights, widths, all_grey, degenerate, target_rule = so.gather_analysis(
            feats, pal_centers, pal_counts, skipped, ok_positions, heights, widths, all_grey,
            degenerate, target_rule, k, per_image=[dominant])
        n = len(ok_positions)
        if n == 0:
            raise InputImageError(f"none of the {n_all} images under {str(listing.root)!r} "
                                  "could be read")
        channels = 1 if all_grey else 3
        centers_all = torch.cat(pal_centers)  # [n, K, 3] LAB
        counts_all = torch.cat(pal_counts)
        pal_centers.clear()
        pal_counts.clear()
        if channels == 1:
            centers_all = centers_all[..., :1].contiguous()  # L* only
        say(f"analysed {n} images ({len(skipped)} skipped); {channels} channel(s)")
        if dropper is not None:
            dropper.finish(heights, widths, [entries[p].label for p in ok_positions], n_classes)

        # -------------------------------------------------------------- cluster
        with timer.stage("cluster"):
            if so.state is not None:  # shard mode: nearest centroid of the fit state
                n_groups, groups = so.state.assign(feats, n, dev)
            elif palette == "cluster":
                n_groups = min(clusters, n)
                if need_features and n_groups > 1:
                    raw_feats = torch.from_numpy(np.concatenate(feats)).to(dev)
                    f = standardize(raw_feats)
                    res = kmeans(f, n_groups, n_init=4, generator=_generator(seed, _S_CLUSTER, dev))
                    groups = res.labels.cpu()
                    so.record_clusters(raw_feats, res.centers)
                else:
                    groups = torch.zeros(n, dtype=torch.long)
            elif palette == "global":
                n_groups = 1
                groups = torch.zeros(n, dtype=torch.long)
            else:
                n_groups = n
                groups = torch.arange(n)
            feats.clear()

        # -------------------------------------------------------------- palettes
        reserved_groups = 0
        reserved_set: set[int] = set()  # groups whose palette entry 0 is a reserved colour
        with timer.stage("palettes"):
            if so.state is not None:
                pal_u8 = so.state.palettes.copy()
                reserved_groups = int(so.state.meta["reserved_groups"])
            elif palette == "image":
                pal_u8 = palette_to_uint8(centers_all)
            else:
                res_w = has_res = None
                if reserve_share is not None:
                    res_rgb, has_res_np = reserved_colours(
                        np.array([d[0] for d in dominant], np.int64),
                        np.stack([d[1] for d in dominant]), np.array([d[2] for d in dominant]),
                        groups.numpy(), n_groups, reserve_share)
                    reserved_groups = int(has_res_np.sum())
                    reserved_set = {int(g) for g in np.flatnonzero(has_res_np)}
                    res_w = palette_to_working(res_rgb, dev)[..., :channels]
                    has_res = torch.from_numpy(has_res_np)
                shared = shared_palettes(centers_all.to(dev), counts_all.to(dev), groups.to(dev),
                                         n_groups, k, generator=_generator(seed, _S_SHARED, dev),
                                         reserved=res_w, has_reserved=has_res)
                pal_u8 = palette_to_uint8(shared)
            pal_u8 = np.ascontiguousarray(pal_u8)

        # -------------------------------------------------------------- select (dedup, coreset)
        plan: SelectionPlan | None = None
        with timer.stage("select"):
            if sel_stage.active:
                plan = sel_stage.select(np.array([entries[p].label for p in ok_positions]),
                                        [entries[p].relpath for p in ok_positions],
                                        model_identity, dev)
                groups, pal_u8 = plan.compact(groups, pal_u8)
                n_groups = int(pal_u8.shape[0])
                say(f"selection: {n} readable -> {len(plan.stored)} stored")
        write_at = plan.stored.tolist() if plan is not None else list(range(n))

        # -------------------------------------------------------------- refine
        refine_stats: dict[str, float] = {"palettes_refined": 0, "palettes_improved": 0,
                                          "edge_loss_before": 0.0, "edge_loss_after": 0.0}
        rgen = _generator(seed, _S_REFINE, torch.device("cpu"))
        refine_rule = ("keep a refined palette only if it lowers EL + 1.0*MSE and does not raise "
                       "the MSE (PSNR) on its refinement crops")

        def add_refine_stats(r: Any) -> None:
            refine_stats["palettes_refined"] += 1
            refine_stats["palettes_improved"] += int(r.accepted)
            refine_stats["edge_loss_before"] += r.edge_loss_before
            refine_stats["edge_loss_after"] += r.edge_loss_after

        with timer.stage("refine"):
            if refine and refine_steps > 0 and palette != "image" and so.state is None:
                bar = tqdm(total=n_groups, desc="refine", unit="palette", disable=not progress,
                           leave=False)
                groups_np = groups.numpy()
                for g in range(n_groups):
                    members = np.flatnonzero(groups_np == g)
                    bar.update(1)
                    if len(members) == 0:
                        continue
                    pick = torch.randperm(len(members), generator=rgen)[:refine_images]
                    chosen = sorted(int(members[i]) for i in pick.tolist())
                    crops = []
                    for _pos, got in _load_many(entries, [ok_positions[i] for i in chosen], opts, workers):
                        if isinstance(got, InputImageError):
                            raise InputImageError(f"{got} (it was readable earlier: did the source "
                                                  "change during the conversion?)")
                        crops.append(_random_crop(to_channels(got, channels), refine_crop, rgen))
                    r = refine_palette(crops, pal_u8[g], steps=refine_steps, device=dev,
                                       frozen=(0,) if g in reserved_set else ())
                    pal_u8[g] = r.palette
                    add_refine_stats(r)
                bar.close()

        groups, pal_u8 = so.sync_fit(groups, pal_u8, refine_stats)
        if so.fit_only:
            return so.save_fit(dst_path, task=task, pal_u8=pal_u8, n_groups=n_groups,
                               channels=channels, listing=listing, model_identity=model_identity,
                               refine_stats=refine_stats, degenerate=degenerate,
                               target_rule=target_rule, skipped=skipped, n=n, device=str(dev),
                               seconds=timer.seconds, reserved_groups=reserved_groups)
        write_at = so.write_at(write_at, ok_positions)  # shard / torchrun: this share only
        dst_path = so.output(dst_path)

        # -------------------------------------------------------------- pass 2: write
        psnrs: list[float] = []
        raw_bytes = 0
        source_bytes = 0
        prov: dict[str, Any] = {}
        refine_in_write = [0.0]  # palette="image" refines inside pass 2; booked as "refine"
        with timer.stage("write"):
            writer = _open_writer(dst_path, bits, channels, listing.classes, payload_encoding,
                                  zstd_level, None if dropper is None else dropper.patch_size)
            with writer as w:
                pal_w = palette_to_working(pal_u8, dev) if palette != "image" else None
                bar = tqdm(total=len(write_at), desc="write", unit="img", disable=not progress, leave=False)
                pending: list[tuple[int, int, np.ndarray]] = []

                def write_pending() -> None:
                    nonlocal raw_bytes, source_bytes
                    gs = [int(groups[i]) for i, _, _ in pending]
                    batch_imgs = np.stack([img for _, _, img in pending])
                    if palette == "image":
                        if refine and refine_steps > 0:
                            # same-size images: same-size crops, refined together
                            crops = np.stack([_random_crop(img, refine_crop, rgen)
                                              for _, _, img in pending])
                            t_ref = time.perf_counter()
                            results = refine_palettes_batched(crops, pal_u8[gs],
                                                              steps=refine_steps, device=dev)
                            refine_in_write[0] += time.perf_counter() - t_ref
                            for g, r in zip(gs, results, strict=True):
                                pal_u8[g] = r.palette
                                add_refine_stats(r)
                        pws = palette_to_working(pal_u8[gs], dev)
                    else:
                        assert pal_w is not None
                        if palette_choice == "best" and pal_w.shape[0] > 1:
                            gs = best_palettes(batch_imgs, pal_w)
                        pws = pal_w[gs]
                    idxs = assign_batch(batch_imgs, pws)
                    drops = ([None] * len(pending) if dropper is None else  # keep grids and thetas
                             dropper.decide(task, [i for i, _, _ in pending], np.stack([x for _, _, x in pending])))
                    for (_i, pos, img), g, idx, drop in zip(pending, gs, idxs, drops, strict=True):
                        entry = entries[pos]
                        mkw = {} if drop is None else {"keep_mask": drop[0], "theta": drop[1]}
                        decoded = pal_u8[g][idx if dropper is None or drop is None
                                            else dropper.filled_indices(idx, drop[0], k)]
                        mse = float(np.mean((decoded.astype(np.float64) - img) ** 2))
                        psnrs.append(_psnr(mse))
                        raw_bytes += img.size
                        source_bytes += max(0, entry.size)
                        w.add_sample(idx, g, entry.label, source_path=entry.relpath,
                                     source_size=entry.size, **mkw)
                    bar.update(len(pending))
                    pending.clear()

                stream = _load_many(entries, [ok_positions[i] for i in write_at], opts, workers)
                for i, (pos, got) in zip(write_at, stream, strict=True):
                    entry = entries[pos]
                    if isinstance(got, InputImageError):
                        raise InputImageError(f"{got} (it was readable earlier: did the source "
                                              "change during the conversion?)")
                    if got.shape[:2] != (heights[i], widths[i]) or entry.path.stat().st_size != entry.size:
                        raise InputImageError(f"{str(entry.path)!r} changed during the conversion")
                    img = to_channels(got, channels)
                    if pending and (img.shape != pending[0][2].shape or len(pending) >= batch_size):
                        write_pending()
                    pending.append((i, pos, img))
                if pending:
                    write_pending()
                bar.close()
                w.set_palettes(pal_u8)
                skipped_list = [{"path": entries[p].relpath, "error": skipped[p]}
                                for p in sorted(skipped)]
                if refine_stats["palettes_refined"]:
                    m = refine_stats["palettes_refined"]
                    refine_stats["edge_loss_before"] /= m
                    refine_stats["edge_loss_after"] /= m
                prov = {
                    "tool": "dcqformat convert",
                    "tool_version": __version__,
                    "torch_version": torch.__version__,
                    "method": "DCQ (Dataset Color Quantization, ICLR 2026), see METHOD.md §1",
                    "parameters": {
                        "bits": bits, "palette_size": k, "clusters": clusters,
                        "clusters_used": n_groups, "palette": palette,
                        "palette_choice": palette_choice, "attention": attention,
                        "attention_fraction": attention_fraction,
                        "context_weight": context_weight if attention else None,
                        "reserve_share": reserve_share, "reserve_radius": RESERVE_RADIUS,
                        "palettes_with_reserved_colour": reserved_groups,
                        "refine": refine, "refine_rule": refine_rule,
                        "refine_steps": refine_steps, "refine_images": refine_images,
                        "refine_crop": refine_crop, "seed": seed, "max_side": max_side,
                        "background": list(bg), "max_pixels": opts.max_pixels,
                        "on_error": on_error, "payload_encoding": payload_encoding,
                        "epochs": epochs, "proxy_resolution": proxy_resolution,
                        "max_train_images": max_train_images,
                        "max_points_per_image": max_points_per_image,
                        "device_type": dev.type, "threads": threads, "colour_space": "CIE LAB D65 (L* for grey)",
                    },
                    "source": {
                        "root": str(listing.root), "listing_sha256": listing.listing_hash,
                        "files_listed": n_all, "bytes_listed": listing.total_bytes,
                        "classes": list(listing.classes),
                    },
                    "model": {**model_identity, "gradcam_target": target_rule if attention else None},
                    "channels_rule": "1 when every image is grey (one channel or R=G=B), else 3",
                    "alpha": f"composited over background {list(bg)}",
                    "skipped": skipped_list,
                    "attention_degenerate_maps": degenerate,
                    "refinement": refine_stats,
                    "patch_drop": None if dropper is None else dropper.provenance(),
                    "quality": {
                        "psnr_mean_db": float(np.mean(psnrs)),
                        "psnr_min_db": float(np.min(psnrs)),
                    },
                }
                if plan is not None:
                    plan.add_to(w)
                    prov["selection"] = plan.summary
                so.annotate(prov, written=[ok_positions[i] for i in write_at], skipped=skipped,
                            psnrs=psnrs, raw_bytes=raw_bytes, source_bytes=source_bytes)
                w.set_provenance(prov)
        file_bytes = dst_path.stat().st_size
        timer.seconds["write"] -= refine_in_write[0]
        timer.seconds["refine"] += refine_in_write[0]

    summary = ConvertSummary(
        path=str(dst_path),
        images=len(write_at),
        skipped=prov["skipped"],
        classes=n_classes,
        bits=bits,
        channels=channels,
        palettes=int(pal_u8.shape[0]),
        palette_mode=palette,
        file_bytes=file_bytes,
        raw_pixel_bytes=raw_bytes,
        source_bytes=source_bytes,
        ratio_vs_raw=raw_bytes / file_bytes,
        ratio_vs_source=source_bytes / file_bytes,
        psnr_mean_db=float(np.mean(psnrs)),
        psnr_min_db=float(np.min(psnrs)),
        device=str(dev),
        model=model_identity,
        stage_seconds={s: round(timer.seconds[s], 4) for s in STAGES if s in timer.seconds},
        selection=plan.summary if plan is not None else {},
        patch_drop=None if dropper is None else dropper.provenance(),
    )
    return summary
