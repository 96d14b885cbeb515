"""The train probe's model and training loop: one small CNN, one schedule, one augmentation for
every row; training data from a ``.dcq`` file (through ``DCQDataset``, optionally as combined
canvases with ``CellCrop``) or from in-memory arrays; test on the original test set."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

MEAN, STD = 0.5, 0.25


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


def prep(x: Any, channels: int, res: int) -> Any:
    """uint8 ``[B, C, H, W]`` -> float in [0, 1] with ``channels`` channels at ``res`` (area when
    shrinking; bilinear when an image stored at a lower resolution is enlarged)."""
    import torch
    import torch.nn.functional as F

    x = x.float().div_(255.0)
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        else:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    if x.shape[-1] != res or x.shape[-2] != res:
        if x.shape[-1] >= res and x.shape[-2] >= res:
            x = F.interpolate(x, size=(res, res), mode="area")
        else:
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False)
    return x


def augment(x: Any, pad: int, gen: Any) -> Any:
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


def flip_only(x: Any, gen: Any) -> Any:
    """Horizontal flip of a random half of the batch (the augmentation after a CellCrop)."""
    import torch

    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


Batches = Callable[[list[list[int]]], Iterator[tuple[Any, Any]]]


def _dcq_source(source: dict[str, Any], seed: int) -> tuple[int, Batches, str]:
    """(items, batch iterator, reader) for a .dcq file; with ``load.combine`` the items are
    canvases and the epoch of each index follows from its place in the step order."""
    load = source.get("load") or {}
    combine = int(load.get("combine", 1))
    try:
        from torch.utils.data import DataLoader

        from dcqformat import DCQDataset
    except ImportError:
        if combine > 1:
            raise
        from dcqformat import DCQFile

        f = DCQFile(source["path"])
        import torch

        labels = torch.as_tensor(np.asarray(f.labels, np.int64))

        def from_file(index_lists: list[list[int]]) -> Iterator[tuple[Any, Any]]:
            for idx in index_lists:
                yield torch.from_numpy(np.asarray(f.decode_batch(idx, layout="chw"))), labels[idx]
        return len(f), from_file, "DCQFile.decode_batch"
    if combine <= 1:
        ds = DCQDataset(source["path"])

        def from_loader(index_lists: list[list[int]]) -> Iterator[tuple[Any, Any]]:
            yield from DataLoader(ds, batch_sampler=index_lists, num_workers=0,
                                  collate_fn=DCQDataset.collate)
        return len(ds), from_loader, "DCQDataset"
    import torch

    canvases = DCQDataset(source["path"], combine=combine, seed=seed)
    n = len(canvases)

    def from_canvases(index_lists: list[list[int]]) -> Iterator[tuple[Any, Any]]:
        start = 0
        for idx in index_lists:
            # position p of the step order is canvas idx[p - start] of epoch p // n
            parts, epochs = [], np.arange(start, start + len(idx)) // max(1, n)
            for e in np.unique(epochs).tolist():
                canvases.set_epoch(e)
                parts.append(DCQDataset.collate(canvases.__getitems__(
                    [i for i, pe in zip(idx, epochs.tolist(), strict=True) if pe == e])))
            start += len(idx)
            yield torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    return n, from_canvases, f"DCQDataset(combine={combine})"


def _memory_source(source: dict[str, Any]) -> tuple[int, Batches]:
    import torch

    with np.load(source["path"]) as z:
        xs, ys = z["x"], z["y"]
    if source.get("indices") is not None:
        sel = np.asarray(source["indices"])
        xs, ys = xs[sel], ys[sel]
    x_all = torch.from_numpy(np.ascontiguousarray(xs)).permute(0, 3, 1, 2)
    labels = torch.from_numpy(ys.astype(np.int64))

    def batches(index_lists: list[list[int]]) -> Iterator[tuple[Any, Any]]:
        for idx in index_lists:
            t = torch.as_tensor(idx)
            yield x_all[t], labels[t]
    return len(labels), batches


def _evaluate(model: Any, test: dict[str, Any], st: Settings, classes: int) -> tuple[float, list[float]]:
    import torch

    with np.load(test["path"]) as z:
        xt, yt = torch.from_numpy(z["x"]).permute(0, 3, 1, 2), z["y"].astype(np.int64)
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(yt), 1000):
            x = (prep(xt[i:i + 1000], st.channels, st.resolution) - MEAN) / STD
            preds.append(model(x.contiguous(memory_format=torch.channels_last)).argmax(1).numpy())
    pred = np.concatenate(preds)
    per_class = [float(np.mean(pred[yt == c] == c)) if np.any(yt == c) else float("nan")
                 for c in range(classes)]
    return float(np.mean(pred == yt)), per_class


def train_eval(source: dict[str, Any], test: dict[str, Any], st: Settings, seed: int,
               classes: int) -> dict[str, Any]:
    """Train the probe CNN on ``source`` for ``st.steps`` steps, test on ``test``.

    ``source``: ``{"kind": "dcq", "path": ..., "load": optional {"combine": n, "cellcrop": 0|1}}``
    (read through DCQDataset) or ``{"kind": "npz", "path": ..., "indices": optional}``
    (in-memory uint8 ``[N, H, W, C]``). ``test``: ``{"path": npz}``. With ``cellcrop`` the
    augmentation is ``CellCrop(resolution, cells=combine)`` + flip instead of the padded
    random crop + flip. Returns accuracy, per-class accuracy and seconds."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    load = source.get("load") or {}
    if source["kind"] == "dcq":
        n, batches, reader = _dcq_source(source, seed)
    else:
        (n, batches), reader = _memory_source(source), "memory"
    crop: Any = None
    if int(load.get("cellcrop", 0)):
        from dcqformat.torch import CellCrop

        crop = CellCrop(st.resolution, cells=int(load.get("combine", 1)), generator=gen)

    need = st.steps * st.batch  # the index lists of every step: fresh permutations, concatenated
    perms, got = [], 0
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
        if crop is not None:
            x = (flip_only(prep(crop(xb), st.channels, st.resolution), gen) - MEAN) / STD
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = (augment(prep(xb, st.channels, st.resolution), st.pad, gen) - MEAN) / STD
        loss = F.cross_entropy(model(x), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        seen += np.bincount(yb.numpy(), minlength=classes)
    train_s = time.perf_counter() - t0
    accuracy, per_class = _evaluate(model, test, st, classes)
    return {"seed": seed, "accuracy": accuracy, "per_class": per_class,
            "train_seconds": train_s, "train_images": n, "steps": st.steps, "reader": reader,
            "final_loss": float(loss.detach()), "class_counts_seen": seen.tolist(),
            "load": dict(load)}
