"""Stages ``sample`` and ``train``: the task model a conversion uses.

``sample`` loads a bounded, seeded random sample of the images at ``proxy_resolution``
(at most ``max_train_images`` thumbnails: ``max_train_images · 3 · r²`` bytes, 61 MB at the
defaults 20,000 and 32 px); ``train`` trains the small proxy classifier on it
(:func:`~dcqformat.encode.model.train_proxy`). A user's model (a checkpoint path, an
``nn.Module`` or a :class:`~dcqformat.encode.model.TaskModel`) replaces both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from dcqformat.encode.images import is_grey
from dcqformat.encode.model import TaskModel, train_proxy
from dcqformat.encode.resize import resize_aa
from dcqformat.encode.stages.context import RunContext
from dcqformat.errors import InputImageError

__all__ = ["train_proxy_on_sample", "ready", "thumbnail", "NO_MODEL"]

#: The provenance's model record when no model was needed.
NO_MODEL: dict[str, Any] = {"kind": "none (not needed by these settings)"}


def thumbnail(arr: np.ndarray, res: int) -> torch.Tensor:
    """uint8 ``[H, W, C]`` -> uint8 ``[C, res, res]`` (bilinear, antialiased, aspect squashed)."""
    x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    x = resize_aa(x, (res, res), torch.Tensor.float) if x.shape[-2:] != (res, res) else x.float()
    return x[0].round().clamp(0, 255).to(torch.uint8)


def train_proxy_on_sample(ctx: RunContext,
                          on_epoch: Callable[[int, nn.Module], None] | None) -> TaskModel:
    """Stages ``sample`` + ``train``: the proxy trained on a seeded sample of the source."""
    o, source = ctx.opts, ctx.source
    n_all = len(source)
    with ctx.timer.stage("sample"):
        gen = ctx.generator("sample", torch.device("cpu"))
        if n_all <= o.max_train_images:
            sample = list(range(n_all))
        else:
            sample = sorted(torch.randperm(n_all, generator=gen)[:o.max_train_images].tolist())
        thumbs: list[torch.Tensor] = []
        greys: list[bool] = []
        labels: list[int] = []
        bar = ctx.bar(len(sample), "load sample")
        for pos, got in ctx.load_many(sample):
            bar.update(1)
            if not isinstance(got, np.ndarray):
                ctx.fail_or_skip(pos, got)
                continue
            grey = is_grey(got)
            thumbs.append(thumbnail(got[..., :1] if grey else got, o.proxy_resolution))
            greys.append(grey)
            labels.append(int(source.labels[pos]))
        bar.close()
        if not thumbs:
            raise InputImageError(f"no readable image among the {len(sample)} sampled from "
                                  f"{source.where}")
        in_ch = 1 if all(greys) else 3
        images = torch.stack([t if t.shape[0] == in_ch else t.expand(in_ch, -1, -1)
                              for t in thumbs])
        del thumbs
    with ctx.timer.stage("train"):
        return train_proxy(images, torch.tensor(labels), len(source.classes), epochs=o.epochs,
                           seed=o.seed, device=ctx.device, progress=o.progress,
                           on_epoch_model=on_epoch)


def ready(task: TaskModel, ctx: RunContext) -> dict[str, Any]:
    """Move ``task`` to the run's device in eval mode; return its identity record."""
    task.to(ctx.device)
    task.module.eval()
    return dict(task.identity)
