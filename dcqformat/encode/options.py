"""Every parameter of :func:`~dcqformat.encode.pipeline.convert` in one frozen dataclass.

:class:`ConvertOptions` is the single place where a parameter is declared: its default, its
check (raising :class:`~dcqformat.errors.InvalidArgumentError` naming the field, the value and
the allowed range), whether shards of one scale-out job must agree on it (``shard``), whether
the file's provenance records it (``record``) and its command-line flag. The provenance
parameters (:meth:`ConvertOptions.recorded`), the parameters a fit state fixes
(:data:`SHARD_PARAMETERS`) and the ``dcqformat convert`` flags
(:func:`dcqformat.encode.cli_commands.register`) are all derived from the field metadata, so a
new parameter is one new field here. ``docs/method.md`` explains what each one does.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcqformat.checks import check_choice, check_float, check_int
from dcqformat.encode.images import DEFAULT_MAX_PIXELS, parse_background
from dcqformat.errors import InvalidArgumentError
from dcqformat.format.layout import PAYLOAD_ENCODINGS

__all__ = ["ConvertOptions", "OptionSpec", "SHARD_PARAMETERS", "PALETTE_MODES",
           "PALETTE_CHOICES", "PAYLOAD_ENCODINGS", "option_specs"]

PALETTE_MODES = ("cluster", "image", "global")
PALETTE_CHOICES = ("cluster", "best")
ON_ERROR = ("fail", "skip")
#: Most torch CPU threads ``threads`` may ask for: torch.set_num_threads takes any C int, and
#: libgomp then aborts the process allocating per-thread state (2**31 - 1: 464 GB).
MAX_TORCH_THREADS = 1024

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class OptionSpec:
    """What :class:`ConvertOptions` knows about one field besides its default.

    ``check(name, value)`` returns the canonical value or raises; ``shard``: shards of one job
    must agree on it (it changes pixels, clusters or the file); ``record``: the provenance
    lists it; ``flag``: its ``dcqformat convert`` flag (None: Python API only) with ``cli``
    the ``argparse`` keyword arguments; ``invert``: a ``store_true`` flag that sets the field
    to False (``--no-refine``); ``help``: the one-line description the CLI shows."""

    check: Check | None = None
    shard: bool = False
    record: bool = True
    flag: str | None = None
    cli: Mapping[str, Any] = field(default_factory=dict)
    invert: bool = False
    help: str = ""


def _opt(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"dcq": OptionSpec(**spec)})


def _int(lo: int | None = None, hi: int | None = None) -> Check:
    return lambda name, v: check_int(v, name, minimum=lo, maximum=hi)


def _opt_int(lo: int, hi: int | None = None) -> Check:
    return lambda name, v: None if v is None else check_int(v, name, minimum=lo, maximum=hi)


def _float(lo: float, hi: float, lo_open: bool = False) -> Check:
    return lambda name, v: check_float(v, name, minimum=lo, maximum=hi, min_open=lo_open)


def _choice(allowed: Sequence[Any]) -> Check:
    return lambda name, v: check_choice(v, name, allowed)


def _bool(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {name}={v!r}")
    return v


def _reserve_share(name: str, v: Any) -> float | None:
    return None if v is None else check_float(v, name, minimum=0.0, min_open=True, maximum=1.0)


def _max_pixels(name: str, v: Any) -> int:
    return DEFAULT_MAX_PIXELS if v is None else check_int(v, name, minimum=1)


def _background(_name: str, v: Any) -> tuple[int, int, int]:
    return parse_background(v)


def _optional_text(name: str, v: Any) -> str | None:
    if v is not None and not isinstance(v, str):
        raise InvalidArgumentError(f"{name} must be a string or None, got {name}={v!r}")
    return v


def _callable_or_none(name: str, v: Any) -> Any:
    if v is not None and not callable(v):
        raise InvalidArgumentError(f"{name} must be callable or None, got {type(v).__name__}")
    return v


@dataclass(frozen=True)
class ConvertOptions:
    """The parameters of one conversion (see ``docs/method.md`` for what each one does).

    Construct it with keywords (``ConvertOptions(bits=1)``) or :meth:`from_kwargs`; every value
    is checked and normalised at construction, so an instance is always valid.
    """

    # -- the method (DCQ) -------------------------------------------------------------------
    bits: int = _opt(2, check=_int(1, 8), shard=True, flag="--bits", cli={"type": int},
                     help="bits per pixel index q; K = 2**q colours per palette (default 2)")
    clusters: int = _opt(20, check=_int(1), shard=True, flag="--clusters", cli={"type": int},
                         help="image clusters C, one shared palette each (default 20)")
    palette: str = _opt("cluster", check=_choice(PALETTE_MODES), shard=True, flag="--palette",
                        cli={"choices": PALETTE_MODES},
                        help="one palette per cluster (default), per image, or one for all")
    palette_choice: str = _opt(
        "best", check=_choice(PALETTE_CHOICES), shard=True, flag="--palette-choice",
        cli={"choices": ("best", "cluster")},
        help="best (default): each image uses whichever of the C palettes fits it best; "
        "cluster: its cluster's palette, as the DCQ paper does (docs/method.md)")
    attention: bool = _opt(True, check=_bool, shard=True, flag="--no-attention", invert=True,
                           help="build palettes from all pixels instead of the top 50%% "
                           "Grad-CAM++ pixels")
    attention_fraction: float = _opt(0.5, check=_float(0.0, 1.0, lo_open=True), shard=True,
                                     help="share of pixels by attention that inform palettes")
    context_weight: float = _opt(0.1, check=_float(0.0, 1.0), shard=True,
                                 help="weight of non-attended pixels in per-image palettes")
    reserve_share: float | None = _opt(0.2, check=_reserve_share, shard=True,
                                       help="pixel share from which a flat colour is reserved")
    refine: bool = _opt(True, check=_bool, shard=True, flag="--no-refine", invert=True,
                        help="skip the Sobel edge-loss palette refinement")
    refine_steps: int = _opt(20, check=_int(0), shard=True, help="refinement steps per palette")
    refine_images: int = _opt(8, check=_int(1), shard=True, help="crops per palette refinement")
    refine_crop: int = _opt(64, check=_int(3), shard=True, help="refinement crop side (px)")
    max_points_per_image: int = _opt(4096, check=_int(1), shard=True,
                                     help="pixels sampled per per-image palette k-means")
    seed: int = _opt(0, check=_int(0, 2**64 - 1), shard=True, flag="--seed", cli={"type": int},
                     help="seed for every random choice (default 0)")
    # -- the task model ---------------------------------------------------------------------
    model: Any = _opt("proxy", record=False,
                      help="'proxy', a checkpoint path, an nn.Module or a TaskModel")
    epochs: int = _opt(4, check=_int(0), shard=True, flag="--epochs", cli={"type": int},
                       help="proxy model training epochs (default 4)")
    proxy_resolution: int = _opt(32, check=_int(8), shard=True,
                                 help="side of the proxy's training thumbnails")
    max_train_images: int = _opt(20_000, check=_int(1), shard=True,
                                 help="images in the proxy's training sample")
    # -- reading the source -----------------------------------------------------------------
    max_side: int | None = _opt(None, check=_opt_int(1), shard=True, flag="--max-side",
                                cli={"type": int},
                                help="downscale images whose longer side exceeds this")
    background: tuple[int, int, int] = _opt(
        (255, 255, 255), check=_background, shard=True, flag="--background",
        cli={"default": "white"},
        help="colour transparent pixels are flattened onto: white (default), black, #rrggbb, r,g,b")
    scale: float = _opt(1.0, check=_float(0.0, 1.0, lo_open=True), shard=True, flag="--scale",
                        cli={"type": float},
                        help="store every image at this fraction of its side (0 < S <= 1; "
                        "Lanczos); each sample keeps its original size (default 1)")
    max_pixels: int = _opt(DEFAULT_MAX_PIXELS, check=_max_pixels, shard=True,
                           help="decompression-bomb guard: the most pixels a source image may have")
    on_error: str = _opt("fail", check=_choice(ON_ERROR), shard=True, flag="--on-error",
                         cli={"choices": ON_ERROR},
                         help="unreadable images: stop (default) or skip and list them")
    # -- the file ---------------------------------------------------------------------------
    payload_encoding: str = _opt(
        "auto", check=_choice(PAYLOAD_ENCODINGS), shard=True, flag="--encoding",
        cli={"choices": PAYLOAD_ENCODINGS},
        help="payload encoding: raw bit-packed, zstd, ctx (context-model rANS), or auto "
        "(the smallest of the three, default)")
    zstd_level: int = _opt(3, check=_int(1, 22), help="zstd level of entropy-coded payloads")
    overwrite: bool = _opt(False, check=_bool, record=False, flag="--force",
                           cli={"action": "store_true"}, help="replace DST if it exists")
    # -- dataset-level compression ----------------------------------------------------------
    coreset: str | None = _opt(None, check=_optional_text, flag="--coreset",
                               cli={"metavar": "METHOD:RATIO"},
                               help="keep RATIO of every class: bgfdq, semred, el2n or random "
                               "(e.g. bgfdq:0.3); stored as a named selection")
    dedup: str | None = _opt(None, check=_optional_text, flag="--dedup",
                             cli={"metavar": "HASH:T[:flip]"},
                             help="drop near-duplicates first: phash, ahash, dhash or whash within "
                             "Hamming distance T (e.g. phash:8; ':flip' matches mirrored copies)")
    keep_all: bool = _opt(False, check=_bool, flag="--keep-all", cli={"action": "store_true"},
                          help="store every image; --coreset/--dedup then only add selections")
    patch_drop: str | None = _opt(None, check=_optional_text, flag="--patch-drop",
                                  cli={"metavar": "fixed:THETA|spd"},
                                  help="store only the informative patches: fixed:0.25 drops the "
                                  "25%% least attended patches, spd per image the largest share "
                                  "whose feature shift stays below its class's threshold")
    patch_size: int | None = _opt(None, check=_opt_int(1), flag="--patch-size",
                                  cli={"type": int, "metavar": "P"},
                                  help="patch side for --patch-drop (default max(4, smallest "
                                  "image side // 8))")
    # -- how it runs (no effect on the file) ------------------------------------------------
    device: Any = _opt("auto", record=False, flag="--device",
                       help="auto (CUDA when present), cpu, cuda, cuda:N")
    batch_size: int = _opt(64, check=_int(1), shard=True, flag="--batch-size", cli={"type": int},
                           help="images per analyse batch; also the block size of --shard "
                           "shares (default 64)")
    workers: int | None = _opt(None, check=_opt_int(0), record=False, flag="--workers",
                               cli={"type": int},
                               help="image-decoding threads (default min(4, CPUs))")
    threads: int | None = _opt(None, check=_opt_int(1, MAX_TORCH_THREADS), record=False, flag="--threads",
                               cli={"type": int},
                               help="torch CPU threads (default 1 on the CPU: small tensors, "
                               "output independent of the core count)")
    progress: bool = _opt(True, check=_bool, record=False, flag="--quiet", invert=True,
                          help="no progress bars")
    log: Callable[[str], None] | None = _opt(None, check=_callable_or_none, record=False,
                                             help="called with one line per stage")
    budget_plan: dict[str, Any] | None = _opt(None, record=False,
                                              help="set by --budget: the plan record stored "
                                              "in the provenance")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec: OptionSpec = f.metadata["dcq"]
            if spec.check is not None:
                object.__setattr__(self, f.name, spec.check(f.name, getattr(self, f.name)))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> ConvertOptions:
        """Options from ``convert()``-style keywords; an unknown keyword is an
        :class:`InvalidArgumentError` that lists the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown convert option(s) {unknown}; the options are "
                                       f"{sorted(known)}")
        return cls(**kwargs)

    def as_kwargs(self) -> dict[str, Any]:
        """Every field as ``convert()`` keywords (values as they are, not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> ConvertOptions:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    @property
    def palette_size(self) -> int:
        """K = 2**bits."""
        return 1 << self.bits

    def resolved_workers(self) -> int:
        """Image-decoding threads: ``workers``, else min(4, CPUs)."""
        return min(4, os.cpu_count() or 1) if self.workers is None else self.workers

    def recorded(self) -> dict[str, Any]:
        """The fields the provenance records, as JSON-ready values."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.metadata["dcq"].record}

    def shard_parameters(self) -> dict[str, Any]:
        """The fields shards of one job must agree on (:data:`SHARD_PARAMETERS`)."""
        return {name: _plain(getattr(self, name)) for name in SHARD_PARAMETERS}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def option_specs() -> list[tuple[str, Any, OptionSpec]]:
    """``(name, default, spec)`` of every field, in declaration order."""
    return [(f.name, f.default, f.metadata["dcq"]) for f in dataclasses.fields(ConvertOptions)]


#: The parameters a fit state fixes and every shard must share (they change pixels, clusters
#: or the file), derived from the ``shard`` flags above.
SHARD_PARAMETERS: tuple[str, ...] = tuple(name for name, _d, s in option_specs() if s.shard)
