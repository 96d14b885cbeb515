"""The train probe's rows: the fixed, named configurations and the generic ones parsed from names.

Fixed names (``original``, ``dcq-q1``, ``jpeg@dcq-q2``, ...) are :data:`CONFIGS`; the committed
results tables name them, so they never change. Generic names:

- ``plan:NAME``: the row of a plan as ``convert --plan-only`` names it (``plan:q2 C20 s0.75
  f0.5``), i.e. ``dcq:`` with the planner's keywords for it (refine=false for per-image
  palettes, coreset=bgfdq:F for a share F).
- ``dcq:budget=SIZE[,KEY=VAL...]``: the file ``convert --budget SIZE`` writes (the planner,
  ``convert_within_budget``, with the probe's seed and proxy and only the row's other keywords;
  the plan it chose per seed is reported).
- ``dcq:KEY=VAL,KEY=VAL``: ``dcqformat.convert`` with these keywords on top of the probe's
  defaults (bits=2, clusters=20, palette="cluster", attention, refine; the probe sets seed,
  model, device, threads, workers, progress and overwrite itself). Any ``convert()`` keyword
  passes through (bits, clusters, palette, palette_choice, coreset, patch_drop, scale, ...);
  one ``convert`` refuses fails its row with convert's own message. Keys prefixed ``load.``
  change how the probe trains on the file, not the file: ``load.combine=N`` (canvases of NxN
  images of one class, ``DCQDataset(combine=N)``) and ``load.cellcrop=1`` (``CellCrop`` to the
  training resolution instead of the padded random crop; the flip stays). Values parse as
  int, float, true/false, none, else text. The name is canonicalised (keys sorted, loader keys
  last), and rows whose convert keywords agree share one encoded file.
- ``BASE@REF`` with REF any dcq row (fixed or generic) matches REF's bytes (REF's seed-0 file;
  per seed for subsets): ``jpeg@REF`` (quality closest to the bytes), ``subset@REF`` (random
  stratified originals at most the bytes), ``webp@REF`` (WebP lossy, method 6, the highest
  quality at or under the bytes) and ``png8@REF`` (per-image MEDIANCUT + k-means PNG-8, the
  number of colours 2..256 whose total is closest at or under the bytes). ``webp`` and
  ``png8`` take ``:scale=S`` (downscale by S first, area filter; ``png8:scale=auto`` also
  searches S in 1, 3/4, 1/2, 3/8, 1/4).

In a comma-separated ``--configs`` list a ``KEY=VAL`` item continues the dcq row before it, so
``dcq:bits=1,scale=0.5,webp@dcq:bits=1,scale=0.5`` is two rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Keywords of the probe's convert() call that a ``dcq:`` row may not set.
PROBE_OWNS = ("model", "device", "seed", "progress", "overwrite", "threads", "workers", "log")
#: The probe's convert() defaults beneath a row's keywords.
DCQ_DEFAULTS: dict[str, Any] = {"bits": 2, "clusters": 20, "palette": "cluster", "attention": True,
                                "refine": True}
LOAD_KEYS = {"combine": int, "cellcrop": int}
BASE_KINDS = ("jpeg", "subset", "webp", "png8")
AUTO_SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)


@dataclass(frozen=True)
class Config:
    name: str
    kind: str  # original | dcq | quant | jpeg | subset | webp | png8
    what: str
    bits: int | None = None
    dcq: dict[str, Any] = field(default_factory=dict)  # convert() keyword arguments
    kmeans: bool = False  # quant: refine median cut by k-means
    ref: str | None = None  # jpeg/subset/webp/png8: the dcq config whose bytes are matched
    load: dict[str, int] = field(default_factory=dict)  # dcq: how the probe trains on the file
    scales: tuple[float, ...] = (1.0,)  # webp/png8: downscale factors searched
    error: str | None = None  # the row cannot run (bad name or keywords): why

    def convert_kwargs(self) -> dict[str, Any]:
        """The keywords this dcq row passes to convert (defaults, then the row's); a row with
        ``budget`` passes only its own (the planner chooses the rest)."""
        if "budget" in self.dcq:
            return dict(self.dcq)
        return {**DCQ_DEFAULTS, "bits": self.bits, **self.dcq}

    def file_key(self) -> str:
        """Rows with the same key train on the same encoded file."""
        return "dcq:" + ",".join(f"{k}={format_value(v)}" for k, v in sorted(self.convert_kwargs().items()))


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


# ------------------------------------------------------------------------------ values and names


def parse_value(text: str) -> Any:
    """``"2"`` -> 2, ``"0.5"`` -> 0.5, ``"true"``/``"false"`` -> bool, ``"none"`` -> None, else text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def format_value(value: Any) -> str:
    """The inverse of :func:`parse_value` for the values it produces."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return repr(value) if isinstance(value, float) else str(value)


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not KEY=VALUE")
        out.append((key.strip(), value))
    return out


def _failed(name: str, kind: str, message: str) -> Config:
    return Config(name, kind, f"cannot run: {message}", error=message)


def _check_convert_keywords(kwargs: dict[str, Any]) -> str | None:
    """convert()'s own message for keywords it would refuse (and the planner's for a bad
    ``budget``), else None."""
    try:
        from dcqformat.encode.options import ConvertOptions
    except ImportError:  # no torch extra: the convert task reports it
        return None
    kwargs = dict(kwargs)
    try:
        if "budget" in kwargs:
            from dcqformat.encode.planner.budget import parse_budget

            parse_budget(kwargs.pop("budget"))
        ConvertOptions.from_kwargs(kwargs)
    except Exception as e:  # noqa: BLE001 - any refusal is the row's failure message
        return f"{type(e).__name__}: {e}"
    return None


def parse_dcq(name: str) -> Config:
    """A ``dcq:KEY=VAL,...`` row (canonical name), or a failed Config saying why."""
    try:
        pairs = _pairs(name[len("dcq:"):])
    except ValueError as e:
        return _failed(name, "dcq", str(e))
    convert: dict[str, Any] = {}
    load: dict[str, int] = {}
    for key, raw in pairs:
        value = parse_value(raw)
        if key.startswith("load."):
            sub = key[len("load."):]
            if sub not in LOAD_KEYS or not isinstance(value, int) or isinstance(value, bool) or value < 0:
                return _failed(name, "dcq", f"{key}={raw}: loader keys are load.combine=N (N >= 1) "
                               "and load.cellcrop=0|1")
            load[sub] = value
        elif key in PROBE_OWNS:
            return _failed(name, "dcq", f"{key} is set by the probe (seed = run seed), not by a row")
        else:
            convert[key] = value
    if load.get("combine", 1) < 1:
        return _failed(name, "dcq", "load.combine must be >= 1")
    lead = "budget" if "budget" in convert else "bits"
    if lead == "bits":
        convert.setdefault("bits", DCQ_DEFAULTS["bits"])
    bits = convert.get("bits")
    ordered = [(lead, convert[lead])] + sorted((k, v) for k, v in convert.items() if k != lead)
    canon = "dcq:" + ",".join([f"{k}={format_value(v)}" for k, v in ordered]
                              + [f"load.{k}={v}" for k, v in sorted(load.items())])
    what = ".dcq, convert(" + ", ".join(f"{k}={v!r}" for k, v in ordered) + ")"
    if lead == "budget":
        what = (f".dcq, the plan convert --budget {convert['budget']} chose"
                + "".join(f", {k}={v!r}" for k, v in ordered[1:]))
    if load:
        what += "; trained with " + ", ".join(f"{k}={v}" for k, v in sorted(load.items()))
    cfg = Config(canon, "dcq", what, bits if isinstance(bits, int) and not isinstance(bits, bool) else None,
                 convert, load=load)
    message = _check_convert_keywords(cfg.convert_kwargs())
    if message is not None:
        return Config(canon, "dcq", f"{what}; cannot run: {message}", cfg.bits, convert, load=load,
                      error=message)
    return cfg


def _parse_base(name: str, head: str, ref: Config) -> Config:
    base, _, opts = head.partition(":")
    if base not in BASE_KINDS:
        return _failed(name, base, f"unknown baseline {base!r}; choose from {BASE_KINDS}")
    scales: tuple[float, ...] = (1.0,)
    try:
        pairs = _pairs(opts)
    except ValueError as e:
        return _failed(name, base, str(e))
    for key, raw in pairs:
        if key != "scale" or base not in ("webp", "png8"):
            return _failed(name, base, f"{base} takes no option {key!r} (webp and png8 take scale=S)")
        if raw.strip() == "auto" and base == "png8":
            scales = AUTO_SCALES
        else:
            value = parse_value(raw)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
                return _failed(name, base, f"scale must be in (0, 1] (png8 also: auto), got {raw!r}")
            scales = (float(value),)
    canon_head = base if scales == (1.0,) else (
        f"{base}:scale=auto" if scales == AUTO_SCALES else f"{base}:scale={format_value(scales[0])}")
    canon = f"{canon_head}@{ref.name}"
    if canon in BY_NAME:
        return BY_NAME[canon]
    what = {"jpeg": f"JPEG, quality matched to {ref.name} bytes",
            "subset": f"random stratified subset of originals (PNG), {ref.name} bytes",
            "webp": f"WebP lossy (method 6), highest quality at or under {ref.name} bytes",
            "png8": f"MEDIANCUT + k-means per image, PNG-8, colours matched at or under {ref.name} bytes"}[base]
    if scales != (1.0,):
        what += f"; downscaled by {'1, 3/4, 1/2, 3/8 or 1/4 (searched)' if len(scales) > 1 else scales[0]}"
    error = None if ref.error is None else f"its reference {ref.name} cannot run"
    return Config(canon, base, what if error is None else f"{what}; cannot run: {error}",
                  ref=ref.name, scales=scales, error=error)


def plan_row(text: str) -> str:
    """The ``dcq:`` row of a planner plan named as ``--plan-only`` prints it (``q2 C20 s0.75
    f0.5``, ``q3 image``, ``q2 C20 drop spd``), with the planner's own convert keywords."""
    from dcqformat.encode.planner.plans import Plan

    fields: dict[str, Any] = {}
    tokens = text.split()
    i = 0
    try:
        while i < len(tokens):
            t = tokens[i]
            if t == "image":
                fields["palette"] = "image"
            elif t == "drop" and i + 1 < len(tokens):
                fields["patch_drop"] = tokens[i + 1]
                i += 1
            elif t[0] in "qCsf" and t[1:]:
                key = {"q": "bits", "C": "clusters", "s": "scale", "f": "fraction"}[t[0]]
                fields[key] = int(t[1:]) if t[0] in "qC" else float(t[1:])
            else:
                raise ValueError(t)
            i += 1
    except ValueError:
        raise ValueError(f"plan:{text!r}: not a plan name like 'q2 C20 s0.75 f0.5'") from None
    kwargs = Plan(**fields).convert_kwargs()
    kept = {k: v for k, v in kwargs.items() if v is not None and not (k == "scale" and v == 1.0)}
    return "dcq:" + ",".join(f"{k}={format_value(v)}" for k, v in kept.items())


def parse_config(name: str) -> Config:
    """The Config a row name stands for (fixed names first); a failed Config when the name
    parses but cannot run; ValueError for an unknown name."""
    name = name.strip()
    if name in BY_NAME:
        return BY_NAME[name]
    if name.startswith("dcq:"):
        return parse_dcq(name)
    if name.startswith("plan:"):
        return parse_dcq(plan_row(name[len("plan:"):]))
    head, at, tail = name.partition("@")
    if at and tail:
        ref = parse_config(tail)
        if ref.kind != "dcq":
            raise ValueError(f"{name!r}: the reference {tail!r} is not a dcq row")
        return _parse_base(name, head, ref)
    raise ValueError(f"unknown config {name!r}; fixed names: {[c.name for c in CONFIGS]}, or "
                     "dcq:KEY=VAL,..., or jpeg|subset|webp|png8[:scale=S]@<dcq row>")


_CONTINUATION = re.compile(r"^\s*(load\.)?[A-Za-z_][A-Za-z0-9_]*\s*=")


def split_config_list(text: str) -> list[str]:
    """Row names from a comma-separated list in which ``KEY=VAL`` items continue the previous
    (dcq) row; ``@FILE`` items stand for the rows of FILE (one per line, ``#`` comments)."""
    rows: list[str] = []
    for item in text.split(","):
        if not item.strip():
            continue
        if item.strip().startswith("@"):
            rows += read_config_file(Path(item.strip()[1:]))
        elif rows and _CONTINUATION.match(item) and "dcq:" in rows[-1]:
            rows[-1] += "," + item.strip()
        else:
            rows.append(item.strip())
    return rows


def read_config_file(path: Path) -> list[str]:
    """The rows of a config list file: one row name per line; blank lines and ``#`` comments
    are skipped."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line)
    return rows


FRONTIER_BASELINES = ("webp", "png8", "png8:scale=0.5")


def resolve_configs(names: list[str], frontier: bool = False,
                    baselines: tuple[str, ...] = FRONTIER_BASELINES) -> list[Config]:
    """Configs for ``names`` (duplicates dropped, order kept); with ``frontier`` every dcq row
    also gets ``B@ROW`` for each of ``baselines`` (ROW without its ``load.`` keys: the same
    file)."""
    out: list[Config] = []
    seen: set[str] = set()

    def add(c: Config) -> None:
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)

    for n in names:
        c = parse_config(n)
        add(c)
        if frontier and c.kind == "dcq":
            file_row = c.name.split(",load.")[0]  # loader keys change no byte: match the file
            for base in baselines:
                add(parse_config(f"{base}@{file_row}"))
    return out
