"""``convert()``: a source (ImageFolder, uint8 array or map-style dataset) -> ``.dcq`` with
Dataset Color Quantization (``docs/method.md``; ``docs/architecture.md`` for the code).

The stages (:mod:`dcqformat.encode.stages`, each timed, each with a progress bar when
``progress=True``), in order:

``scan``      open the source: an ImageFolder is listed in canonical (torchvision) order
``sample``    a bounded, seeded random sample of thumbnails for the proxy model
``train``     train the proxy classifier on it (or use the user's model)
``analyse``   pass 1: shallow features, Grad-CAM++ mask, per-image LAB palette + counts
``cluster``   k-means (C clusters) of the standardised features
``palettes``  count-weighted k-means of the member palettes -> one palette per cluster
``select``    de-duplication and coreset selection (optional)
``refine``    Sobel edge-loss refinement of each cluster palette on seeded crops
``write``     pass 2: nearest-colour indices, streamed into :class:`~dcqformat.DCQWriter`

Determinism: all randomness derives from ``seed``; torch runs with deterministic algorithms;
the same input, parameters, seed, device type and software versions give a byte-identical file
on the CPU. Safety: the output appears only when complete (the writer renames a temporary file
into place), an error or Ctrl-C leaves no file under ``dst``, and nothing is ever written
inside ``src`` (a ``dst`` inside the source folder is refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from dcqformat.encode.drivers.common import STAGES, prepare
from dcqformat.encode.drivers.single import run_single
from dcqformat.encode.options import ConvertOptions
from dcqformat.encode.summary import ConvertSummary

__all__ = ["convert", "ConvertSummary", "ConvertOptions", "STAGES"]


def convert(
    src: str | os.PathLike[str] | Any,
    dst: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    *,
    labels: Any = None,
    classes: Sequence[str] | None = None,
    shard: Any = None,
    state: Any = None,
    fit_only: bool = False,
    **kwargs: Any,
) -> ConvertSummary:
    """Convert ``src`` into the ``.dcq`` file ``dst``.

    ``src`` is an ImageFolder path, a uint8 array ``[N, H, W]`` / ``[N, H, W, C]`` (with
    ``labels`` and optionally ``classes``) or a map-style dataset whose items are
    ``(image, label)`` (a torch ``Dataset``, a Hugging Face ``datasets.Dataset``); see
    :mod:`dcqformat.encode.sources`. The parameters are a
    :class:`~dcqformat.encode.options.ConvertOptions` (``options``) or its fields as keywords
    (``bits=2, clusters=20, ...``; ``docs/method.md`` explains each one and its default).

    Scale-out (README "Scale-out"): ``fit_only=True`` stops after refinement and writes the fit
    state (an ``.npz``) to ``dst``; ``state`` (a :class:`~dcqformat.encode.state.FitState`)
    with ``shard="i/N"`` encodes share ``i`` of ``N`` against it. Under torchrun use
    :func:`dcqformat.encode.drivers.torchrun.convert_distributed` (``dcqformat convert`` does).

    Returns a :class:`ConvertSummary`. Raises :class:`~dcqformat.errors.InputImageError` for an
    unreadable image (``on_error="fail"``) and :class:`~dcqformat.errors.InvalidArgumentError`
    for bad arguments.
    """
    if options is not None and kwargs:
        raise_both = sorted(kwargs)
        from dcqformat.errors import InvalidArgumentError

        raise InvalidArgumentError(f"pass either options= or keywords, not both (got {raise_both})")
    opts = options if options is not None else ConvertOptions.from_kwargs(kwargs)
    if shard is not None or state is not None or fit_only:
        from dcqformat.encode.drivers.sharded import run_sharded

        return run_sharded(src, dst, opts, shard=shard, state=state, fit_only=fit_only,
                           labels=labels, classes=classes)
    return run_single(src, prepare(src, dst, opts), labels, classes)
