"""Train probe (issue #7): does a model trained on a ``.dcq`` file learn as well as on the originals?

    python benchmarks/train_probe.py                       # the full table (< 60 min, 2 CPU cores)
    python benchmarks/train_probe.py --quick               # tiny, for iteration (a few minutes)
    python benchmarks/train_probe.py --datasets emoji64 --seeds 3 --configs original,dcq-q2

Protocol (DCQ paper, docs/method.md §1): train on the compressed TRAINING set, test on the ORIGINAL
test set. For every configuration the same small CNN, schedule, augmentation (random crop with
replicate padding + horizontal flip, in torch) and seeds; the schedule is a fixed number of SGD
steps (``epochs`` passes over the full training set), so a smaller subset gets the same compute.

Configurations (``--configs``, comma-separated names):

- ``original``: the training images as they are (bytes: every image stored as optimised PNG).
- ``dcq-q1``, ``dcq-q2``: ``dcqformat.convert`` at q = 1, 2 with C = 20 (cluster palettes,
  attention, refinement), ``payload_encoding="auto"``; bytes = the whole ``.dcq`` file. Trained
  on batches read through ``DCQDataset`` (``__getitems__`` + ``DCQDataset.collate`` in a
  DataLoader), or ``DCQFile.decode_batch`` when the torch extra is missing.
- ablations at q = 2: ``dcq-q2-image`` (one palette per image; WITHOUT refinement, because
  per-image refinement costs ~0.4-0.8 s per image on this machine -- compare it with
  ``dcq-q2-norefine``), ``dcq-q2-global`` (one palette),
  ``dcq-q2-noattn`` (palettes from all pixels), ``dcq-q2-norefine`` (no edge refinement),
  ``dcq-q2-paper`` (palettes from the attended pixels only and no reserved background colour,
  as docs/method.md §1 states the method; the encoder's defaults since the diagnosis in
  ``results/train_probe_diagnosis.md`` weigh the other pixels 0.1 and keep a flat dominant colour).
- ``dcq-q1-cluster``, ``dcq-q2-cluster``: as dcq-q1/q2 with ``palette_choice="cluster"`` (the
  paper's rule: every image uses its own cluster's palette; the encoder's default since commit
  5b62f2a's measurement is ``"best"``, the best-fitting of the 20 palettes); the bar lines compare
  them with the same baselines as dcq-qX, whose subsets are matched to dcq-qX's bytes.
- per-image quantizers: ``mediancut-q1/q2`` (Pillow MEDIANCUT, 2**q colours) and ``kmeans-q1/q2``
  (MEDIANCUT refined by Pillow's k-means until no pixel moves); bytes = PNG-8 files (optimised).
- ``jpeg@dcq-q1/q2``: JPEG (optimised Huffman tables) at the one quality, searched per dataset,
  whose total bytes are closest to that ``.dcq`` file.
- ``subset@dcq-q1/q2``: a random class-stratified subset of the ORIGINAL images whose optimised
  PNG files add up to at most the bytes of that ``.dcq`` file.

Seeds (``--encodings per-seed``, the default): training seed s (initialisation, batch order,
augmentation) runs on the ``.dcq`` files converted with ``seed=s`` and on the random subsets
drawn with seed s, so the reported std includes the encoder's own randomness (k-means starts,
attention ties, refinement crops): on emoji64 at q = 1 two encodings of the same data differ by
up to 4 points (``results/train_probe_diagnosis.md``). The per-image quantizers and JPEG are
deterministic (one encoding, every training seed). ``--encodings once`` encodes once with seed 0
(the earlier protocol). Every ``.dcq`` of a dataset uses ONE proxy task model trained once
with the library's ``train_proxy`` on the library's default sample (the pipeline's defaults: up to
20,000 thumbnails at 32 px, 4 epochs) and passed to ``convert(model=...)``; its training time is
added to the encode time of every ``.dcq`` row (what a user converting once would pay).

Budget choices (the full table ran in 35 min on 2 CPU cores): Fashion-MNIST uses a class-stratified
10,000 of its 60,000 training images (``--fm-train``; six converts plus ~90 training runs of
the full set do not fit in an hour on 2 cores) and the full 10,000 test images, 28x28, 8 epochs;
emoji64 is trained at 32x32 (area downscale of the 64x64 decode), 30 epochs; CNN width 16.

Outputs: a markdown table per dataset on stdout and in ``benchmarks/results/train_probe_<dataset>.md``
(with the command line, date and all choices) and the raw numbers in ``train_probe_<dataset>.json``.
Tasks (proxy, converts, baseline encodings, training runs) run in ``--jobs`` processes with one
torch thread each: on a shared 2-core machine one thread per process is several times faster
than two threads fighting for cores.
"""

from __future__ import annotations

import argparse
import datetime
import heapq
import io
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _data import emoji64_root, fashion_mnist, write_imagefolder  # noqa: E402

RESULTS = HERE / "results"
DATASETS = ("fashion-mnist", "emoji64")


# ================================================================================ configurations


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # original | dcq | quant | jpeg | subset
    what: str
    bits: int | None = None
    dcq: dict[str, Any] = field(default_factory=dict)  # convert() keyword arguments
    kmeans: bool = False  # quant: refine median cut by k-means
    ref: str | None = None  # jpeg/subset: the .dcq config whose bytes are matched


CONFIGS: tuple[Config, ...] = (
    Config("original", "original", "original images (bytes: optimised PNG)"),
    Config("dcq-q1", "dcq", ".dcq, C=20 palettes, each image uses the best-fitting one", 1, {}),
    Config("dcq-q2", "dcq", ".dcq, C=20 palettes, each image uses the best-fitting one", 2, {}),
    Config("dcq-q1-cluster", "dcq", ".dcq, C=20 palettes, each image uses its cluster's (paper)", 1,
           {"palette_choice": "cluster"}),
    Config("dcq-q2-cluster", "dcq", ".dcq, C=20 palettes, each image uses its cluster's (paper)", 2,
           {"palette_choice": "cluster"}),
    Config("dcq-q2-image", "dcq", "ablation: per-image palette (C=N), no refinement", 2,
           {"palette": "image", "refine": False}),
    Config("dcq-q2-global", "dcq", "ablation: one global palette (C=1)", 2, {"palette": "global"}),
    Config("dcq-q2-noattn", "dcq", "ablation: no attention (all pixels)", 2, {"attention": False}),
    Config("dcq-q2-norefine", "dcq", "ablation: no edge refinement", 2, {"refine": False}),
    Config("dcq-q2-paper", "dcq", "ablation: attention-only palettes, no reserved colour", 2,
           {"context_weight": 0.0, "reserve_share": None}),
    Config("mediancut-q1", "quant", "Pillow MEDIANCUT per image, PNG-8", 1),
    Config("mediancut-q2", "quant", "Pillow MEDIANCUT per image, PNG-8", 2),
    Config("kmeans-q1", "quant", "MEDIANCUT + k-means per image, PNG-8", 1, kmeans=True),
    Config("kmeans-q2", "quant", "MEDIANCUT + k-means per image, PNG-8", 2, kmeans=True),
    Config("jpeg@dcq-q1", "jpeg", "JPEG, quality matched to dcq-q1 bytes", ref="dcq-q1"),
    Config("jpeg@dcq-q2", "jpeg", "JPEG, quality matched to dcq-q2 bytes", ref="dcq-q2"),
    Config("subset@dcq-q1", "subset", "random stratified subset of originals (PNG), dcq-q1 bytes",
           ref="dcq-q1"),
    Config("subset@dcq-q2", "subset", "random stratified subset of originals (PNG), dcq-q2 bytes",
           ref="dcq-q2"),
)
BY_NAME = {c.name: c for c in CONFIGS}


@dataclass
class Settings:
    """Everything that defines one dataset's run (the same for every configuration)."""

    dataset: str
    train_images: int  # after any subsampling of the training split
    test_images: int
    resolution: int  # training / test resolution (images are area-downscaled to it)
    channels: int
    width: int  # CNN base width
    epochs: float  # passes over the full training set; steps = ceil(epochs * N / batch)
    batch: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    pad: int = 2
    proxy_epochs: int = 4

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.epochs * self.train_images / self.batch))


# ================================================================================ data


def _stratified_take(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random sample of ``n`` of ``labels``."""
    if n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels,
                              random_state=seed)
    return np.sort(idx)


def prepare_dataset(name: str, work: Path, *, fm_train: int, fm_test: int) -> dict[str, Any] | None:
    """Write the training ImageFolder (what ``convert`` reads) and ``train.npz`` / ``test.npz``
    (uint8 ``[N, H, W, C]`` as the model sees the originals, labels); None when absent."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    if name == "fashion-mnist":
        try:
            xtr, ytr = fashion_mnist("train")
            xte, yte = fashion_mnist("t10k")
        except FileNotFoundError as e:
            print(f"[skip] fashion-mnist: data not found ({e})", flush=True)
            return None
        tr = _stratified_take(ytr, fm_train, 0)
        te = _stratified_take(yte, fm_test, 0)
        xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
        folder = write_imagefolder(xtr, ytr, out / "train_folder")
        classes = [f"{c:02d}" for c in range(10)]
        # ImageFolder order: class-major, file names (= index) sorted -> same order as a stable sort.
        order = np.argsort(ytr, kind="stable")
        xtr, ytr = xtr[order][..., None], ytr[order]
        xte = xte[..., None]
        note = (f"Fashion-MNIST: {len(ytr):,} of the 60,000 training images (class-stratified, "
                f"seed 0), {len(yte):,} test images, 28x28 grey")
    elif name == "emoji64":
        root = emoji64_root()
        if not root.is_dir():
            print(f"[skip] emoji64: folder {root} not found", flush=True)
            return None
        from dcqformat.encode.images import load_image, to_channels
        from dcqformat.encode.scan import scan_image_folder

        listing = scan_image_folder(root)
        classes = list(listing.classes)
        labels = np.array([e.label for e in listing.entries], np.int64)
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                                  random_state=0)
        tr, te = np.sort(tr), np.sort(te)
        folder = out / "train_folder"
        for i in tr:  # the original RGBA files, byte for byte
            e = listing.entries[int(i)]
            dst = folder / classes[e.label] / Path(e.relpath).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(e.path, dst)
        # flatten alpha on white exactly as the encoder does
        imgs = np.stack([to_channels(load_image(e.path), 3) for e in listing.entries])
        xtr, ytr, xte, yte = imgs[tr], labels[tr], imgs[te], labels[te]
        note = (f"emoji64: stratified 80/20 split (seed 0): {len(ytr):,} train / {len(yte):,} "
                "test, 64x64 RGBA flattened on white")
    else:
        raise ValueError(name)
    np.savez(out / "train.npz", x=xtr, y=ytr.astype(np.int64))
    np.savez(out / "test.npz", x=xte, y=yte.astype(np.int64))
    return {"name": name, "dir": str(out), "folder": str(folder), "classes": classes,
            "n_train": len(ytr), "n_test": len(yte), "channels": int(xtr.shape[-1]),
            "native": int(xtr.shape[1]), "note": note}


# ================================================================================ encoders (baselines)


def png_bytes(img: np.ndarray) -> int:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, "PNG", optimize=True)
    return buf.tell()


def quantize_image(img: np.ndarray, bits: int, kmeans: bool) -> tuple[np.ndarray, int]:
    """Per-image Pillow quantization to 2**bits colours: (decoded uint8 like ``img``, PNG-8 bytes)."""
    rgb = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).convert("RGB")
    q = rgb.quantize(colors=1 << bits, method=Image.Quantize.MEDIANCUT, kmeans=1 if kmeans else 0)
    buf = io.BytesIO()
    q.save(buf, "PNG", optimize=True)
    dec = np.asarray(q.convert("RGB"))
    if img.shape[-1] == 1:
        dec = dec[..., :1]
    return np.ascontiguousarray(dec), buf.tell()


def jpeg_image(img: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
        buf, "JPEG", quality=int(quality), optimize=True)
    n = buf.tell()
    buf.seek(0)
    dec = np.asarray(Image.open(buf))
    return (dec[..., None] if dec.ndim == 2 else dec), n


def jpeg_search(x: np.ndarray, target: int, qualities: Sequence[int] = range(1, 96)) -> tuple[int, int, dict[int, int]]:
    """The JPEG quality whose total bytes over ``x`` are closest to ``target`` (bisection;
    total bytes grow with quality): (quality, bytes, {quality: bytes tried})."""
    tried: dict[int, int] = {}

    def total(q: int) -> int:
        if q not in tried:
            tried[q] = sum(jpeg_image(img, q)[1] for img in x)
        return tried[q]

    qs = list(qualities)
    lo, hi = 0, len(qs) - 1
    while lo < hi:  # smallest quality with bytes >= target
        mid = (lo + hi) // 2
        if total(qs[mid]) >= target:
            hi = mid
        else:
            lo = mid + 1
    cands = [qs[lo]] + ([qs[lo - 1]] if lo > 0 else [])
    best = min(cands, key=lambda q: (abs(total(q) - target), q))
    return best, total(best), tried


def stratified_subset(labels: np.ndarray, sizes: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """Indices of a random class-stratified subset (the same fraction of every class, each class
    in a seeded random order) whose ``sizes`` add up to at most ``budget`` bytes, as large as
    possible."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    perms = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}

    def pick(frac: float) -> np.ndarray:
        parts = [p[: int(round(frac * len(p)))] for p in perms.values()]
        return np.sort(np.concatenate(parts))

    lo, hi = 0.0, 1.0
    if sizes.sum() <= budget:
        return np.arange(len(labels))
    for _ in range(40):
        mid = (lo + hi) / 2
        if sizes[pick(mid)].sum() <= budget:
            lo = mid
        else:
            hi = mid
    return pick(lo)


# ================================================================================ the model


def build_cnn(in_ch: int, classes: int, width: int) -> Any:
    """A small CNN: stride-2 stem, 3x3 conv blocks (BN + ReLU), one max-pool, global average pool,
    linear. ~(12·w²) parameters."""
    from torch import nn

    def blk(a: int, b: int, s: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(a, b, 3, s, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

    w = width
    return nn.Sequential(*blk(in_ch, w, 2), *blk(w, 2 * w), nn.MaxPool2d(2), *blk(2 * w, 4 * w),
                         *blk(4 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4 * w, classes))


def _prep(x: Any, channels: int, res: int) -> Any:
    """uint8 ``[B, C, H, W]`` -> float in [0, 1] with ``channels`` channels at ``res`` (area)."""
    import torch
    import torch.nn.functional as F

    x = x.float().div_(255.0)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        else:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-1] != res or x.shape[-2] != res:
        x = F.interpolate(x, size=(res, res), mode="area")
    return x


def _augment(x: Any, pad: int, gen: Any) -> Any:
    """Random crop (replicate padding ``pad``) + horizontal flip, per sample."""
    import torch
    import torch.nn.functional as F

    b, _c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = oy[:, None] + torch.arange(h)
    cols = ox[:, None] + torch.arange(w)
    flip = torch.rand(b, generator=gen) < 0.5
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = xp[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)  # NCHW view with channels-last strides


MEAN, STD = 0.5, 0.25


def train_eval(source: dict[str, Any], test: dict[str, Any], st: Settings, seed: int,
               classes: int) -> dict[str, Any]:
    """Train the probe CNN on ``source`` for ``st.steps`` steps, test on ``test``.

    ``source``: ``{"kind": "dcq", "path": ...}`` (read through DCQDataset in a DataLoader) or
    ``{"kind": "npz", "path": ..., "indices": optional}`` (in-memory uint8 ``[N, H, W, C]``).
    ``test``: ``{"path": npz}``. Returns accuracy, per-class accuracy and seconds."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    reader = "memory"
    if source["kind"] == "dcq":
        try:
            from torch.utils.data import DataLoader

            from dcqformat import DCQDataset

            ds = DCQDataset(source["path"])
            n = len(ds)
            labels = torch.as_tensor(ds.targets)

            def batches(index_lists: list[list[int]]) -> Any:
                loader = DataLoader(ds, batch_sampler=index_lists, num_workers=0,
                                    collate_fn=DCQDataset.collate)
                yield from loader
            reader = "DCQDataset"
        except ImportError:
            from dcqformat import DCQFile

            f = DCQFile(source["path"])
            n = len(f)
            labels = torch.as_tensor(np.asarray(f.labels, np.int64))

            def batches(index_lists: list[list[int]]) -> Any:
                for idx in index_lists:
                    yield torch.from_numpy(np.asarray(f.decode_batch(idx, layout="chw"))), labels[idx]
            reader = "DCQFile.decode_batch"
    else:
        with np.load(source["path"]) as z:
            xs, ys = z["x"], z["y"]
        if source.get("indices") is not None:
            sel = np.asarray(source["indices"])
            xs, ys = xs[sel], ys[sel]
        x_all = torch.from_numpy(np.ascontiguousarray(xs)).permute(0, 3, 1, 2)
        labels = torch.from_numpy(ys.astype(np.int64))
        n = len(labels)

        def batches(index_lists: list[list[int]]) -> Any:
            for idx in index_lists:
                t = torch.as_tensor(idx)
                yield x_all[t], labels[t]

    # the index lists of every step: fresh permutations, concatenated
    need = st.steps * st.batch
    perms = []
    got = 0
    while got < need:
        perms.append(torch.randperm(n, generator=gen))
        got += n
    flat = torch.cat(perms)[:need] if perms else torch.zeros(0, dtype=torch.long)
    index_lists = [flat[i * st.batch:(i + 1) * st.batch].tolist() for i in range(st.steps)]

    model = build_cnn(st.channels, classes, st.width).to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": st.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=st.lr, momentum=0.9, nesterov=True)
    warm = max(1, st.steps // 20)

    def lr_at(s: int) -> float:  # linear warm-up, then cosine to zero
        if s < warm:
            return (s + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (s - warm) / max(1, st.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    seen = np.zeros(classes, np.int64)
    for xb, yb in batches(index_lists):
        x = _prep(xb, st.channels, st.resolution)
        x = (_augment(x, st.pad, gen) - MEAN) / STD
        loss = F.cross_entropy(model(x), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += np.bincount(yb.numpy(), minlength=classes)
    train_s = time.perf_counter() - t0

    with np.load(test["path"]) as z:
        xt, yt = torch.from_numpy(z["x"]).permute(0, 3, 1, 2), z["y"].astype(np.int64)
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(yt), 1000):
            x = (_prep(xt[i:i + 1000], st.channels, st.resolution) - MEAN) / STD
            preds.append(model(x.contiguous(memory_format=torch.channels_last)).argmax(1).numpy())
    pred = np.concatenate(preds)
    per_class = [float(np.mean(pred[yt == c] == c)) if np.any(yt == c) else float("nan")
                 for c in range(classes)]
    return {"seed": seed, "accuracy": float(np.mean(pred == yt)), "per_class": per_class,
            "train_seconds": train_s, "train_images": n, "steps": st.steps, "reader": reader,
            "final_loss": float(loss.detach()), "class_counts_seen": seen.tolist()}


# ================================================================================ pool tasks


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def task_proxy(ds: dict[str, Any], out: str, epochs: int) -> dict[str, Any]:
    """Train the library's proxy task model once per dataset, as ``convert(model="proxy")`` would
    (up to 20,000 seeded-random 32 px thumbnails, ``train_proxy`` defaults), and save it."""
    import torch

    from dcqformat.encode.images import load_image, to_channels
    from dcqformat.encode.model import deterministic, train_proxy
    from dcqformat.encode.model_files import save_proxy
    from dcqformat.encode.scan import scan_image_folder

    t0 = time.perf_counter()
    listing = scan_image_folder(ds["folder"])
    n = len(listing.entries)
    with deterministic(0):
        g = torch.Generator().manual_seed(0 * 1_000_003 + 1)
        sample = list(range(n)) if n <= 20_000 else sorted(torch.randperm(n, generator=g)[:20_000].tolist())
        thumbs = []
        for i in sample:
            a = to_channels(load_image(listing.entries[i].path), ds["channels"])
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
            t = torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False,
                                                antialias=True)
            thumbs.append(t[0].round().clamp(0, 255).to(torch.uint8))
        imgs = torch.stack(thumbs)
        labels = torch.tensor([listing.entries[i].label for i in sample])
        task = train_proxy(imgs, labels, len(listing.classes), epochs=epochs, seed=0, device="cpu")
    save_proxy(task, out)
    return {"seconds": time.perf_counter() - t0, "train_images": len(sample), "epochs": epochs}


def task_convert(ds: dict[str, Any], cfg: Config, proxy: str, dst: str, seed: int = 0) -> dict[str, Any]:
    import dcqformat

    t0 = time.perf_counter()
    kwargs = {"bits": cfg.bits, "clusters": 20, "palette": "cluster", "attention": True,
              "refine": True, **cfg.dcq}
    s = dcqformat.convert(ds["folder"], dst, model=proxy, device="cpu", seed=seed, progress=False,
                          payload_encoding="auto", overwrite=True, threads=1, workers=0, **kwargs)
    d = s.to_dict()
    d["seconds"] = time.perf_counter() - t0
    d["kwargs"] = kwargs
    d["seed"] = seed
    return d


def task_baseline(ds: dict[str, Any], cfg: Config, ref_bytes: int | None, out: str,
                  seed: int = 0) -> dict[str, Any]:
    """Encode the training set as ``cfg`` says; write the decoded images to ``out`` (npz).
    ``seed`` draws the random subset (the other baselines are deterministic)."""
    t0 = time.perf_counter()
    with np.load(Path(ds["dir"]) / "train.npz") as z:
        x, y = z["x"], z["y"]
    info: dict[str, Any] = {}
    if cfg.kind == "original":
        sizes = np.array([png_bytes(img) for img in x], np.int64)
        np.save(Path(ds["dir"]) / "png_sizes.npy", sizes)
        info.update(bytes=int(sizes.sum()), images=len(y), psnr=None)
        dec = None
    elif cfg.kind == "quant":
        assert cfg.bits is not None
        dec = np.empty_like(x)
        total = 0
        for i, img in enumerate(x):
            dec[i], nb = quantize_image(img, cfg.bits, cfg.kmeans)
            total += nb
        info.update(bytes=total, images=len(y))
    elif cfg.kind == "jpeg":
        assert ref_bytes is not None
        qual, total, tried = jpeg_search(x, ref_bytes)
        dec = np.empty_like(x)
        for i, img in enumerate(x):
            dec[i] = jpeg_image(img, qual)[0]
        info.update(bytes=total, images=len(y), quality=qual, tried={str(k): v for k, v in tried.items()},
                    target_bytes=ref_bytes)
    elif cfg.kind == "subset":
        assert ref_bytes is not None
        sizes = np.load(Path(ds["dir"]) / "png_sizes.npy")
        idx = stratified_subset(y, sizes, ref_bytes, seed=seed)
        np.save(out.replace(".npz", "_indices.npy"), idx)
        info.update(bytes=int(sizes[idx].sum()), images=len(idx), target_bytes=ref_bytes, psnr=None,
                    per_class=np.bincount(y[idx], minlength=int(y.max()) + 1).tolist())
        dec = None
    else:
        raise ValueError(cfg.kind)
    if dec is not None:
        np.savez(out, x=dec, y=y)
        mse = ((dec.astype(np.float64) - x) ** 2).reshape(len(x), -1).mean(1)
        info["psnr"] = float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10)).clip(max=99)))
    info["seconds"] = time.perf_counter() - t0
    return info


def task_train(source: dict[str, Any], test: dict[str, Any], st: Settings, seed: int,
               classes: int) -> dict[str, Any]:
    return train_eval(source, test, st, seed, classes)


# ================================================================================ scheduling


class Scheduler:
    """Runs tasks with dependencies in a process pool, highest priority (lowest number) first, at
    most ``jobs`` at a time; ``on_done`` callbacks run in the main process and may add tasks."""

    def __init__(self, jobs: int) -> None:
        import multiprocessing as mp

        self.jobs = jobs
        self.pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                                        initializer=_worker_init)
        self.ready: list[tuple[int, int, Callable[..., Any], tuple[Any, ...], Callable[[Any], None]]] = []
        self.running: dict[Future[Any], Callable[[Any], None]] = {}
        self.seq = itertools.count()

    def add(self, prio: int, fn: Callable[..., Any], args: tuple[Any, ...],
            on_done: Callable[[Any], None]) -> None:
        heapq.heappush(self.ready, (prio, next(self.seq), fn, args, on_done))

    def run(self) -> None:
        try:
            while self.ready or self.running:
                while self.ready and len(self.running) < self.jobs:
                    _p, _s, fn, args, cb = heapq.heappop(self.ready)
                    self.running[self.pool.submit(fn, *args)] = cb
                done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                for fut in done:
                    cb = self.running.pop(fut)
                    cb(fut.result())
        finally:
            self.pool.shutdown(cancel_futures=True)


# ================================================================================ orchestration


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def default_settings(ds: dict[str, Any], quick: bool, epochs: float | None) -> Settings:
    if ds["name"] == "fashion-mnist":
        st = Settings("fashion-mnist", ds["n_train"], ds["n_test"], resolution=28, channels=1,
                      width=16, epochs=2 if quick else 8, pad=2, proxy_epochs=1 if quick else 4)
    else:
        st = Settings("emoji64", ds["n_train"], ds["n_test"], resolution=32, channels=3, width=16,
                      epochs=5 if quick else 30, pad=3, proxy_epochs=1 if quick else 4)
    if epochs is not None:
        st.epochs = epochs
    return st


def _summarise(encodes: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One row's encode figures over its encodings (one per seed): means, and the byte range."""
    vals = list(encodes.values())
    psnrs = [v["psnr"] for v in vals if v.get("psnr") is not None]
    nbytes = [int(v["bytes"]) for v in vals]
    return {"bytes": int(round(float(np.mean(nbytes)))), "bytes_min": min(nbytes), "bytes_max": max(nbytes),
            "images": int(round(float(np.mean([v["images"] for v in vals])))),
            "psnr": float(np.mean(psnrs)) if psnrs else None,
            "seconds": float(np.mean([v["seconds"] for v in vals])), "encodings": len(vals)}


def plan_dataset(sched: Scheduler, ds: dict[str, Any], st: Settings, configs: list[Config],
                 seeds: list[int], state: dict[str, Any], per_seed: bool = True) -> None:
    """Queue every task of one dataset; results land in ``state``. ``per_seed``: training seed s
    runs on the .dcq encoded with seed s and on the subset drawn with seed s (the std then covers
    the encoder's randomness too); otherwise every seed trains on the seed-0 encoding."""
    work = Path(ds["dir"])
    test = {"path": str(work / "test.npz")}
    rows: dict[str, dict[str, Any]] = state["rows"]
    names = {c.name for c in configs}
    dcq_needed = [c for c in CONFIGS if c.kind == "dcq" and
                  (c.name in names or any(o.ref == c.name for o in configs))]
    for c in configs:
        rows[c.name] = {"config": c.name, "kind": c.kind, "what": c.what, "bits": c.bits, "runs": []}

    def queue_training(c: Config, source: dict[str, Any], which: list[int] | None = None) -> None:
        for s in (seeds if which is None else which):
            def done(r: dict[str, Any], c: Config = c) -> None:
                rows[c.name]["runs"].append(r)
                _log(f"{ds['name']} {c.name} seed {r['seed']}: acc {100 * r['accuracy']:.2f} % "
                     f"({r['train_seconds']:.0f} s, {r['train_images']} images, {r['reader']})")
            sched.add(3, task_train, (source, test, st, s, len(ds["classes"])), done)

    def after_original(c: Config, info: dict[str, Any]) -> None:
        state["original_png"] = info
        if c.name in rows:
            rows[c.name]["encode"] = info
        state["png_ready"] = True
        for fn in state.pop("waiting_png", []):
            fn()

    def queue_ref_baselines(dcq_name: str, file_bytes: int, es: int) -> None:
        for c in configs:
            if c.ref != dcq_name:
                continue
            if c.kind == "jpeg" and es != 0:  # deterministic: one quality, matched to encoding 0
                continue
            draw = es if c.kind == "subset" and per_seed else 0  # once: es is always 0
            out = str(work / (f"{c.name}_e{draw}.npz" if c.kind == "subset" else f"{c.name}.npz"))
            which = [draw] if c.kind == "subset" and per_seed else None

            def go(c: Config = c, out: str = out, draw: int = draw,
                   which: list[int] | None = which) -> None:
                def done(info: dict[str, Any], c: Config = c, out: str = out) -> None:
                    if c.kind == "subset":
                        rows[c.name].setdefault("encodes", {})[draw] = info
                        rows[c.name]["encode"] = {**_summarise(rows[c.name]["encodes"]),
                                                  "psnr": None}
                    else:
                        rows[c.name]["encode"] = info
                    _log(f"{ds['name']} {c.name} (draw {draw}): {info['bytes']:,} B for "
                         f"{info['images']} images (target {file_bytes:,} B) in {info['seconds']:.0f} s")
                    if c.kind == "jpeg":  # the same quality as another row: the same training data
                        seen = state.setdefault("jpeg_quality", {})
                        if info["quality"] in seen:
                            rows[c.name]["same_as"] = seen[info["quality"]]
                            return
                        seen[info["quality"]] = c.name
                    src: dict[str, Any] = {"kind": "npz", "path": out}
                    if c.kind == "subset":
                        src = {"kind": "npz", "path": str(work / "train.npz"),
                               "indices": np.load(out.replace(".npz", "_indices.npy")).tolist()}
                    queue_training(c, src, which)
                sched.add(2, task_baseline, (ds, c, file_bytes, out, draw), done)
            if c.kind == "subset" and not state.get("png_ready"):
                state.setdefault("waiting_png", []).append(go)
            else:
                go()

    # original PNG sizes (needed for the original row and the subsets)
    orig = BY_NAME["original"]
    sched.add(1, task_baseline, (ds, orig, None, str(work / "original.npz")),
              lambda info: after_original(orig, info))
    if "original" in names:
        queue_training(orig, {"kind": "npz", "path": str(work / "train.npz")})

    # per-image quantizers
    for c in configs:
        if c.kind == "quant":
            out = str(work / f"{c.name}.npz")

            def qdone(info: dict[str, Any], c: Config = c, out: str = out) -> None:
                rows[c.name]["encode"] = info
                _log(f"{ds['name']} {c.name}: {info['bytes']:,} B, PSNR {info['psnr']:.2f} dB")
                queue_training(c, {"kind": "npz", "path": out})
            sched.add(2, task_baseline, (ds, c, None, out), qdone)

    # the proxy, then the converts
    if dcq_needed:
        proxy = str(work / "proxy.pt")

        def proxy_done(info: dict[str, Any]) -> None:
            state["proxy"] = info
            _log(f"{ds['name']} proxy trained in {info['seconds']:.0f} s")
            for c in dcq_needed:
                for es in (seeds if per_seed else [0]):
                    dst = str(work / f"{c.name}_e{es}.dcq")

                    def cdone(s: dict[str, Any], c: Config = c, dst: str = dst, es: int = es) -> None:
                        s["seconds_with_proxy"] = s["seconds"] + info["seconds"]
                        state["dcq"].setdefault(c.name, {})[es] = s
                        if c.name in rows:
                            encodes = rows[c.name].setdefault("encodes", {})
                            encodes[es] = {"bytes": s["file_bytes"], "images": s["images"],
                                           "psnr": s["psnr_mean_db"], "seconds": s["seconds_with_proxy"]}
                            rows[c.name]["encode"] = _summarise(encodes)
                            queue_training(c, {"kind": "dcq", "path": dst}, [es] if per_seed else None)
                        _log(f"{ds['name']} {c.name} (seed {es}): {s['file_bytes']:,} B, PSNR "
                             f"{s['psnr_mean_db']:.2f} dB, convert {s['seconds']:.0f} s")
                        queue_ref_baselines(c.name, int(s["file_bytes"]), es)
                    sched.add(0, task_convert, (ds, c, proxy, dst, es), cdone)
        sched.add(0, task_proxy, (ds, proxy, st.proxy_epochs), proxy_done)


def _fmt_acc(runs: list[dict[str, Any]]) -> tuple[float, float, str]:
    accs = [100 * r["accuracy"] for r in runs]
    if not accs:
        return float("nan"), float("nan"), "–"
    m = float(np.mean(accs))
    s = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    return m, s, f"{m:.2f} ± {s:.2f}" if len(accs) > 1 else f"{m:.2f}"


def bar_verdict(rows: dict[str, dict[str, Any]], dataset: str) -> list[str]:
    """The issue's bar: on emoji64 dcq-qX must beat the best per-image quantizer at the same q and
    subset@dcq-qX by more than the sum of the two stds; on Fashion-MNIST be at least level (not
    below by more than that sum)."""
    lines = []
    strict = dataset == "emoji64"
    for q, variant in ((1, ""), (2, ""), (1, "-cluster"), (2, "-cluster")):
        ours = rows.get(f"dcq-q{q}{variant}")
        if not ours or not ours["runs"]:
            continue
        m0, s0, _ = _fmt_acc(ours["runs"])
        quants = [rows[n] for n in (f"mediancut-q{q}", f"kmeans-q{q}") if n in rows and rows[n]["runs"]]
        comps = []
        if quants:
            comps.append(max(quants, key=lambda r: _fmt_acc(r["runs"])[0]))
        if f"subset@dcq-q{q}" in rows and rows[f"subset@dcq-q{q}"]["runs"]:
            comps.append(rows[f"subset@dcq-q{q}"])
        for r in comps:
            m1, s1, _ = _fmt_acc(r["runs"])
            margin = m0 - m1
            need = s0 + s1
            ok = margin > need if strict else margin >= -need
            rule = f"> {need:.2f}" if strict else f">= -{need:.2f}"
            lines.append(f"- dcq-q{q}{variant} vs {r['config']}: {m0:.2f} vs {m1:.2f} -> margin {margin:+.2f} "
                         f"points (needs {rule}): **{'holds' if ok else 'FAILS'}**")
    return lines


def render(ds: dict[str, Any], st: Settings, state: dict[str, Any], seeds: list[int],
           command: str, started: str, wall: float) -> str:
    rows = state["rows"]
    orig_png = state.get("original_png", {})
    lines = [f"# Train probe: {ds['name']}", "",
             f"- command: `{command}`",
             f"- date: {started} (wall time of the whole run so far: {wall / 60:.1f} min); "
             f"machine: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
             f"python {platform.python_version()}, torch {state.get('torch', '?')}",
             f"- data: {ds['note']}",
             f"- protocol: train on the encoded TRAINING set, test on the ORIGINAL test set "
             f"({st.test_images:,} images); accuracy = mean ± sample std over {len(seeds)} "
             f"seed(s) {seeds}; " + (
                 "seed s encodes each .dcq (convert seed s), draws each random subset and trains, "
                 "so the std covers the encoder's randomness as well as training's (per-image "
                 "quantizers and JPEG are deterministic: one encoding, trained with each seed)"
                 if state.get("per_seed", True) else
                 "every encoding made once with seed 0; seeds vary only the training"),
             f"- model: small CNN (stride-2 stem, 4 conv3x3+BN+ReLU blocks, width {st.width}, one "
             f"max-pool, GAP, linear) at {st.resolution}x{st.resolution}x{st.channels} "
             f"(area downscale from {ds['native']}x{ds['native']} for every configuration and "
             f"the test set); SGD nesterov 0.9, lr {st.lr}, wd {st.weight_decay}, batch {st.batch}, "
             f"5 % warm-up + cosine; {st.steps:,} steps = {st.epochs:g} epochs of the full "
             f"training set for EVERY configuration (subsets get the same number of steps); "
             f"augmentation: random crop (replicate pad {st.pad}) + horizontal flip",
             f"- .dcq: `convert(bits=q, clusters=20, payload_encoding='auto', seed=s, device='cpu', "
             f"threads=1, model=<one proxy per dataset>)`; proxy: library `train_proxy`, "
             f"{state.get('proxy', {}).get('train_images', '?')} thumbnails at 32 px, "
             f"{st.proxy_epochs} epochs, {state.get('proxy', {}).get('seconds', float('nan')):.0f} s "
             f"(added to every .dcq row's encode time); .dcq rows read through "
             f"{_reader(rows)}",
             "- bytes: every byte of the .dcq file; sums of optimised PNG-8 / JPEG / PNG file sizes "
             "for the others (encoded here to count). bytes/img = bytes / images stored. "
             f"Originals as optimised PNG: {orig_png.get('bytes', 0):,} B "
             f"({orig_png.get('bytes', 0) / max(1, st.train_images):.0f} B/img). "
             "encode s = per encoding; wall = all encodings + the sum of the training runs (tasks "
             "ran 2 at a time)",
             "",
             "| config | what | bytes of training data | images | bytes/img | PSNR dB | accuracy % | encode s | train s/seed | wall s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in CONFIGS:
        r = rows.get(c.name)
        if r is None:
            continue
        enc = r.get("encode", {})
        _m, _s, acc = _fmt_acc(r["runs"])
        nbytes = enc.get("bytes")
        imgs = enc.get("images", st.train_images)
        psnr = enc.get("psnr")
        what = r["what"]
        if c.kind == "jpeg" and "quality" in enc:
            what += f" (quality {enc['quality']})"
        if "same_as" in r:
            what += f"; same data as {r['same_as']}, runs shared"
        if enc.get("encodings", 1) > 1:
            what += (f"; mean of {enc['encodings']} {'draws' if c.kind == 'subset' else 'encodings'}, "
                     f"bytes {enc['bytes_min']:,}–{enc['bytes_max']:,}")
        tsec = [x["train_seconds"] for x in r["runs"]]
        enc_s = enc.get("seconds", 0.0) if c.kind != "original" else 0.0
        enc_total = enc_s * enc.get("encodings", 1)
        lines.append(
            f"| {c.name} | {what} | {nbytes:,} | {imgs:,} | {nbytes / max(1, imgs):.1f} | "
            f"{'–' if psnr is None else f'{psnr:.2f}'} | {acc} | {enc_s:.0f} | "
            f"{np.mean(tsec) if tsec else float('nan'):.0f} | {enc_total + sum(tsec):.0f} |"
            if nbytes is not None else
            f"| {c.name} | {what} | – | – | – | – | {acc} | – | – | – |")
    verdict = bar_verdict(rows, ds["name"])
    if verdict:
        rule = ("beat the best per-image quantizer at the same q and the equal-bytes subset by more "
                "than the sum of the two stds" if ds["name"] == "emoji64" else
                "be at least level (not below by more than the sum of the two stds)")
        lines += ["", f"Bar (issue #7): dcq-qX must {rule}.", ""] + verdict
    pc = per_class_table(ds, rows)
    if pc:
        lines += ["", "Per-class accuracy % (mean over seeds):", ""] + pc
    return "\n".join(lines) + "\n"


def _reader(rows: dict[str, dict[str, Any]]) -> str:
    for r in rows.values():
        for x in r["runs"]:
            if x["reader"] != "memory":
                return f"`{x['reader']}`"
    return "DCQDataset"


def per_class_table(ds: dict[str, Any], rows: dict[str, dict[str, Any]]) -> list[str]:
    names = [n for n in ("original", "dcq-q1", "dcq-q2", "dcq-q1-cluster", "dcq-q2-cluster", "mediancut-q1", "mediancut-q2", "kmeans-q1",
                         "kmeans-q2", "subset@dcq-q1", "subset@dcq-q2") if n in rows and rows[n]["runs"]]
    if not names:
        return []
    out = ["| class | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for k, cls in enumerate(ds["classes"]):
        vals = [100 * float(np.mean([x["per_class"][k] for x in rows[n]["runs"]])) for n in names]
        out.append(f"| {cls} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny run: 2,000 Fashion-MNIST train / 2,000 test, 1 seed, few epochs")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {DATASETS}")
    p.add_argument("--configs", default="all", help="comma list of config names, or 'all': "
                   + ", ".join(c.name for c in CONFIGS))
    p.add_argument("--seeds", type=int, default=None, help="training seeds 0..n-1 (default 3; 1 with --quick)")
    p.add_argument("--epochs", type=float, default=None,
                   help="passes over the full training set (default: fashion-mnist 8, emoji64 30)")
    p.add_argument("--fm-train", type=int, default=None,
                   help="Fashion-MNIST training images (class-stratified, seed 0; default 10000)")
    p.add_argument("--fm-test", type=int, default=None, help="Fashion-MNIST test images (default 10000)")
    p.add_argument("--encodings", choices=("per-seed", "once"), default="per-seed",
                   help="per-seed (default): seed s encodes the .dcq files and draws the subsets that "
                        "training seed s uses; once: one encoding (seed 0) for every training seed")
    p.add_argument("--jobs", type=int, default=2, help="parallel task processes (1 torch thread each)")
    p.add_argument("--workdir", default=None, help="where encodings go (default: a temp dir, removed)")
    p.add_argument("--out", default=str(RESULTS), help="results folder")
    args = p.parse_args(argv)

    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *(argv if argv is not None else sys.argv[1:])])
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; choose from {DATASETS}")
    if args.configs == "all":
        configs = list(CONFIGS)
    else:
        configs = []
        for n in args.configs.split(","):
            if n.strip() not in BY_NAME:
                p.error(f"unknown config {n!r}; choose from {[c.name for c in CONFIGS]}")
            configs.append(BY_NAME[n.strip()])
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 3)))
    fm_train = args.fm_train or (2000 if args.quick else 10000)
    fm_test = args.fm_test or (2000 if args.quick else 10000)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="train_probe_"))
    work.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    import torch

    t_start = time.perf_counter()
    plans = []
    sched = Scheduler(args.jobs)
    try:
        for name in datasets:
            ds = prepare_dataset(name, work, fm_train=fm_train, fm_test=fm_test)
            if ds is None:
                continue
            st = default_settings(ds, args.quick, args.epochs)
            per_seed = args.encodings == "per-seed"
            state: dict[str, Any] = {"rows": {}, "dcq": {}, "torch": torch.__version__,
                                     "per_seed": per_seed}
            _log(f"{name}: {ds['note']}; {st.steps} steps per run, {len(configs)} configs x "
                 f"{len(seeds)} seeds")
            plan_dataset(sched, ds, st, configs, seeds, state, per_seed)
            plans.append((ds, st, state))
        sched.run()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - t_start
    for ds, st, state in plans:
        for r in state["rows"].values():
            if "same_as" in r:
                r["runs"] = list(state["rows"][r["same_as"]]["runs"])
            r["runs"].sort(key=lambda x: x["seed"])
        text = render(ds, st, state, seeds, command, started, wall)
        print(text, flush=True)
        stem = out_dir / f"train_probe_{ds['name']}{'_quick' if args.quick else ''}"
        stem.with_suffix(".md").write_text(text)
        raw = {"dataset": ds["name"], "command": command, "date": started, "wall_seconds": wall,
               "settings": st.__dict__, "steps": st.steps, "seeds": seeds, "data": ds,
               "proxy": state.get("proxy"), "dcq_summaries": state["dcq"], "rows": state["rows"],
               "original_png": state.get("original_png")}
        stem.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
        _log(f"wrote {stem}.md and .json")
    _log(f"total wall time {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
