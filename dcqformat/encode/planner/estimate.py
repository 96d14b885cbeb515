"""The planner's training-value estimate: how well does a model trained on a plan's decoded
images classify held-out ORIGINAL images? (``resolution`` defaults to the data's own size,
at most 32 px: upsampling the originals for the test would blur away what a lower stored
resolution loses; two training seeds by default.)

A small residual CNN (the encoder's own proxy, :func:`~dcqformat.encode.model.train_proxy`:
AdamW, cosine schedule, flips and shifts, deterministic on the CPU) is trained on thumbnails
(``resolution`` px) of the decoded sample -- a class-stratified share ``fraction`` of it for a
coreset plan, for ``epochs / fraction`` epochs so that every plan gets the same number of
steps -- and tested on thumbnails of held-out original images. The score is the accuracy,
averaged over ``seeds`` training seeds. It was chosen by measurement: see
``benchmarks/results/planner_estimate.md`` for its agreement with ``benchmarks/train_probe.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dcqformat.encode.images import LoadOptions, to_channels
from dcqformat.encode.model import TaskModel, train_proxy
from dcqformat.encode.sources import ImageSource
from dcqformat.encode.stages.proxy import thumbnail
from dcqformat.format.reader import DCQFile

__all__ = ["decoded_thumbnails", "original_thumbnails", "estimate_accuracy", "accuracy"]


def decoded_thumbnails(path: Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Thumbnails ``[n, C, r, r]`` (uint8) and labels of every sample of a ``.dcq`` file."""
    with DCQFile(path) as f:
        thumbs = [thumbnail(f.decode(i), resolution) for i in range(len(f))]
        labels = torch.from_numpy(np.asarray(f.labels, dtype=np.int64))
    return torch.stack(thumbs), labels


def original_thumbnails(source: ImageSource, positions: Sequence[int] | np.ndarray,
                        resolution: int,
                        channels: int, opts: LoadOptions) -> tuple[torch.Tensor, torch.Tensor]:
    """Thumbnails and labels of the source's images at ``positions`` (as loaded for encoding,
    ``channels`` 1 or 3)."""
    thumbs = [thumbnail(to_channels(source.load(int(p), opts), channels), resolution)
              for p in positions]
    labels = torch.from_numpy(source.labels[np.asarray(positions, dtype=np.int64)])
    return torch.stack(thumbs), labels


def accuracy(task: TaskModel, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of ``task`` on uint8 thumbnails."""
    task.module.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 256):
            logits, _s, _l = task.forward_maps(task.prepare(images[i:i + 256]))
            correct += int((logits.argmax(1).cpu() == labels[i:i + 256]).sum())
    return correct / max(1, len(images))


def _stratified_share(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    if fraction >= 1.0:
        return np.arange(labels.shape[0])
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:max(1, round(fraction * int(
        (labels == c).sum())))] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def estimate_accuracy(train: tuple[torch.Tensor, torch.Tensor],
                      test: tuple[torch.Tensor, torch.Tensor], n_classes: int, *,
                      fraction: float = 1.0, epochs: int = 12, seeds: Sequence[int] = (0,),
                      device: torch.device | str = "cpu") -> float:
    """Mean test accuracy over ``seeds`` of the CNN trained on ``fraction`` of ``train``."""
    images, labels = train
    accs = []
    for s in seeds:
        keep = torch.from_numpy(_stratified_share(labels.numpy(), fraction, s))
        task = train_proxy(images[keep], labels[keep], n_classes,
                           epochs=max(1, round(epochs / fraction)), seed=s, device=device)
        accs.append(accuracy(task, *test))
    return float(np.mean(accs))
