"""The encoder: turns images (an ImageFolder, an array, a dataset) into a colour-quantized
``.dcq`` file. ``docs/architecture.md`` shows how the pieces fit; ``docs/method.md`` what they do.

This subpackage needs torch (the ``torch`` extra). Its modules each do one job:

- :mod:`.options`   :class:`ConvertOptions`: every parameter, its default, check and CLI flag
- :mod:`.sources`   ImageFolder / uint8 array / map-style dataset -> positions, labels, images
- :mod:`.stages`    the stages (sample + train, analyse, cluster/palettes/refine, select, write)
- :mod:`.drivers`   single process, fit-state shards, torchrun: compositions of the stages
- :mod:`.summary`   :class:`ConvertSummary`, what a conversion reports
- :mod:`.state`     the fit-state file and scale-out shares

- :mod:`.scan`      ImageFolder listing in canonical order, with sizes and a listing hash
- :mod:`.images`    one image file -> uint8 HWC array (alpha flattening, modes, guards)
- :mod:`.model`     the task model: a small residual proxy CNN and its training
- :mod:`.model_files` saving and loading task models, `resolve_task_model`
- :mod:`.features`  pooled shallow-stage features for chromaticity-aware clustering
- :mod:`.kmeans`    batched, seeded, weighted k-means (k-means++ init) in torch
- :mod:`.gradcam`   Grad-CAM++ maps and top-fraction attention masks
- :mod:`.color`     sRGB <-> CIE LAB (D65) in torch
- :mod:`.palettes`  per-image and per-cluster LAB palettes
- :mod:`.refine`    Sobel edge-loss palette refinement (straight-through estimator)
- :mod:`.assign`    nearest-colour index maps
- :mod:`.pipeline`  :func:`convert`, which picks the driver
- :mod:`.selection_stage` dedup / coreset observers and the selection plan
- :mod:`.patchdrop` which patches of each image to store
- :mod:`.preview`   original-beside-decoded PNG grids
- :mod:`.demo`      the ``demo`` conversion of scikit-learn's real digits
- :mod:`.cli_commands` the ``convert``, ``demo`` and ``preview`` subcommands

Import :func:`convert` from :mod:`dcqformat.encode.pipeline` (kept lazy here so that importing
this package does not import torch).
"""

from __future__ import annotations

from typing import Any

__all__ = ["convert", "ConvertSummary"]


def __getattr__(name: str) -> Any:
    if name in ("convert", "ConvertSummary"):
        from dcqformat.encode import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'dcqformat.encode' has no attribute {name!r}")
