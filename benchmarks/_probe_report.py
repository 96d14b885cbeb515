"""The train probe's outputs: the markdown table per dataset (every row, in a stable order), the
issue #7 bar lines, the per-class table and the bytes-vs-accuracy frontier table."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
from _probe_configs import CONFIGS, parse_config
from _probe_train import Settings


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


def _header(ds: dict[str, Any], st: Settings, state: dict[str, Any], seeds: list[int],
            command: str, started: str, wall: float) -> list[str]:
    rows = state["rows"]
    orig_png = state.get("original_png", {})
    return [f"# Train probe: {ds['name']}", "",
            f"- command: `{command}`",
            f"- date: {started} (wall time of the whole run so far: {wall / 60:.1f} min); "
            f"machine: {os.cpu_count()} CPU(s), {platform.processor() or platform.machine()}, "
            f"python {platform.python_version()}, torch {state.get('torch', '?')}; load average "
            f"at the end {state.get('loadavg', '?')}",
            f"- data: {ds['note']}",
            f"- protocol: train on the encoded TRAINING set, test on the ORIGINAL test set "
            f"({st.test_images:,} images); accuracy = mean ± sample std over {len(seeds)} "
            f"seed(s) {seeds}; " + (
                "seed s encodes each .dcq (convert seed s), draws each random subset and trains, "
                "so the std covers the encoder's randomness as well as training's (per-image "
                "quantizers, JPEG, WebP and PNG-8 are deterministic: one encoding, matched to the "
                "seed-0 .dcq, trained with each seed)"
                if state.get("per_seed", True) else
                "every encoding made once with seed 0; seeds vary only the training"),
            f"- model: small CNN (stride-2 stem, 4 conv3x3+BN+ReLU blocks, width {st.width}, one "
            f"max-pool, GAP, linear) at {st.resolution}x{st.resolution}x{st.channels} "
            f"(area downscale from {ds['native']}x{ds['native']} for every configuration and "
            f"the test set; images stored smaller are enlarged bilinearly); SGD nesterov 0.9, "
            f"lr {st.lr}, wd {st.weight_decay}, batch {st.batch}, "
            f"5 % warm-up + cosine; {st.steps:,} steps = {st.epochs:g} epochs of the full "
            f"training set for EVERY configuration (subsets get the same number of steps); "
            f"augmentation: random crop (replicate pad {st.pad}) + horizontal flip (rows with "
            f"load.cellcrop=1: CellCrop to {st.resolution}x{st.resolution} inside one cell of "
            "the load.combine canvas + flip, hard labels)",
            f"- .dcq: `convert(bits=q, clusters=20, payload_encoding='auto', seed=s, device='cpu', "
            f"threads=1, model=<one proxy per dataset>, <the row's keywords>)`; proxy: library "
            f"`train_proxy`, {state.get('proxy', {}).get('train_images', '?')} thumbnails at 32 px, "
            f"{st.proxy_epochs} epochs, {state.get('proxy', {}).get('seconds', float('nan')):.0f} s "
            f"(added to every .dcq row's encode time); .dcq rows read through "
            f"{_reader(rows)}",
            "- bytes: every byte of the .dcq file; sums of optimised PNG-8 / JPEG / WebP / PNG file "
            "sizes for the others (encoded here to count). bytes/img = bytes / images stored. "
            f"Originals as optimised PNG: {orig_png.get('bytes', 0):,} B "
            f"({orig_png.get('bytes', 0) / max(1, st.train_images):.0f} B/img). "
            "encode s = per encoding; wall = all encodings + the sum of the training runs",
            ""]


def _what(c: Any, r: dict[str, Any], enc: dict[str, Any]) -> str:
    what = r["what"]
    if r.get("error"):
        return f"{what.split('; cannot run:')[0]}; **FAILED**: {r['error']}"
    if c is not None and c.kind == "jpeg" and "quality" in enc:
        what += f" (quality {enc['quality']})"
    if c is not None and c.kind in ("webp", "png8") and "target_bytes" in enc:
        side = "at or under" if enc.get("under") else "ABOVE (nothing smaller)"
        chosen = (f"quality {enc['quality']}" if c.kind == "webp"
                  else f"{enc['colours']} colours")
        what += (f" ({chosen}, scale {enc['scale']:g}: {enc['bytes']:,} B, {side} the target "
                 f"{enc['target_bytes']:,} B)")
    if enc.get("plans"):
        what += "; plan chosen (per seed): " + ", ".join(str(x) for x in enc["plans"])
    if "same_as" in r:
        what += f"; same data as {r['same_as']}, runs shared"
    if enc.get("encodings", 1) > 1:
        kind = c.kind if c is not None else ""
        what += (f"; mean of {enc['encodings']} {'draws' if kind == 'subset' else 'encodings'}, "
                 f"bytes {enc['bytes_min']:,}–{enc['bytes_max']:,}")
    return what


def render(ds: dict[str, Any], st: Settings, state: dict[str, Any], seeds: list[int],
           command: str, started: str, wall: float, frontier: bool = False) -> str:
    rows = state["rows"]
    by_name = state.get("configs", {})
    lines = _header(ds, st, state, seeds, command, started, wall)
    lines += ["| config | what | bytes of training data | images | bytes/img | PSNR dB | accuracy % | encode s | train s/seed | wall s |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in state.get("order", [c.name for c in CONFIGS]):
        r = rows.get(name)
        if r is None:
            continue
        c = by_name.get(name)
        enc = r.get("encode", {})
        _m, _s, acc = _fmt_acc(r["runs"])
        nbytes = enc.get("bytes")
        imgs = enc.get("images", st.train_images)
        psnr = enc.get("psnr")
        tsec = [x["train_seconds"] for x in r["runs"]]
        enc_s = enc.get("seconds", 0.0) if r["kind"] != "original" else 0.0
        enc_total = enc_s * enc.get("encodings", 1)
        what = _what(c, r, enc)
        lines.append(
            f"| {name} | {what} | {nbytes:,} | {imgs:,} | {nbytes / max(1, imgs):.1f} | "
            f"{'–' if psnr is None else f'{psnr:.2f}'} | {acc} | {enc_s:.0f} | "
            f"{np.mean(tsec) if tsec else float('nan'):.0f} | {enc_total + sum(tsec):.0f} |"
            if nbytes is not None and not r.get("error") else
            f"| {name} | {what} | – | – | – | – | {acc} | – | – | – |")
    verdict = bar_verdict(rows, ds["name"])
    if verdict:
        rule = ("beat the best per-image quantizer at the same q and the equal-bytes subset by more "
                "than the sum of the two stds" if ds["name"] == "emoji64" else
                "be at least level (not below by more than the sum of the two stds)")
        lines += ["", f"Bar (issue #7): dcq-qX must {rule}.", ""] + verdict
    if frontier:
        lines += ["", *frontier_table(state, st)]
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


# ------------------------------------------------------------------------------ the frontier


def _points(state: dict[str, Any], n_train: int) -> dict[str, tuple[float, float, float, int]]:
    """name -> (bytes per training image, mean %, std %, seeds) for rows with bytes and runs."""
    out = {}
    for name, r in state["rows"].items():
        enc = r.get("encode", {})
        if r.get("error") or enc.get("bytes") is None or not r["runs"]:
            continue
        m, s, _ = _fmt_acc(r["runs"])
        out[name] = (enc["bytes"] / max(1, n_train), m, s, len(r["runs"]))
    return out


def _beside(state: dict[str, Any], points: dict[str, Any], kind: str, row: Any,
            front: set[str]) -> tuple[str, str, float]:
    """(bytes cell, accuracy cell, mean; nan when above the bytes) of the ``kind`` row matched
    to the bytes of ``row``'s file: the most accurate of those at or under them, else the first."""
    matched = [name for name, c in state.get("configs", {}).items()
               if c.kind == kind and c.ref and name in points
               and parse_config(c.ref).file_key() == row.file_key()]
    if not matched:
        return "–", "–", float("nan")
    under = [n for n in matched if state["rows"][n].get("encode", {}).get("under", True)]
    name = max(under, key=lambda n: points[n][1]) if under else matched[0]
    enc = state["rows"][name].get("encode", {})
    how = (f"q {enc.get('quality')}" if kind == "webp" else f"{enc.get('colours')} col")
    if enc.get("scale", 1.0) != 1.0:
        how += f", ×{enc['scale']:g}"
    if not enc.get("under", True):
        how += ", ABOVE"
    b, m, s, k = points[name]
    return (f"{b:.0f} ({how}){' ★' if name in front else ''}", (f"{m:.2f} ± {s:.2f}" if k > 1 else f"{m:.2f}"),
            m if enc.get("under", True) else float("nan"))


def frontier_table(state: dict[str, Any], st: Settings) -> list[str]:
    """Every trained row sorted by bytes, with the Pareto frontier marked (no other row of the
    run is as small and more accurate) and, beside each dcq row, its webp@/png8@ rows."""
    points = _points(state, st.train_images)
    configs = state.get("configs", {})
    listed = [n for n in points if configs.get(n) is None or configs[n].kind not in ("webp", "png8")]
    listed.sort(key=lambda n: (points[n][0], n))
    lines = ["## Bytes vs accuracy",
             "",
             f"B/img = total bytes of the training data / {st.train_images:,} (the full training "
             "set, for every row: a budget per image). ★ = on the frontier of this run: no row "
             "(WebP and PNG-8 included) has at most these bytes and a higher mean accuracy (a WebP or "
             "PNG-8 cell with ★ is on it). "
             "Beside each dcq row: WebP (method 6, highest quality at or under its bytes) and "
             "per-image k-means PNG-8 (colours matched at or under its bytes; ×s = downscaled; "
             "of several such rows, the most accurate); "
             "ABOVE = even the smallest setting exceeds the bytes (left out of 'best').",
             "",
             "| B/img | row | accuracy % | ★ | WebP B/img | WebP acc % | PNG-8 B/img | PNG-8 acc % | best at these bytes |",
             "|---:|---|---:|:-:|---:|---:|---:|---:|---|"]
    front = {n for n, (b, m, _, _) in points.items()
             if not any(pb <= b and pm > m for o, (pb, pm, _, _) in points.items() if o != n)}
    for name in listed:
        b, m, s, k = points[name]
        star = "★" if name in front else ""
        acc = f"{m:.2f} ± {s:.2f}" if k > 1 else f"{m:.2f}"
        c = configs.get(name)
        cells = ["–", "–", "–", "–"]
        best = ""
        if c is not None and c.kind == "dcq":
            wb, wa, wm = _beside(state, points, "webp", c, front)
            pb_, pa, pm_ = _beside(state, points, "png8", c, front)
            cells = [wb, wa, pb_, pa]
            cands = [(m, "dcq"), (wm, "webp"), (pm_, "png8")]
            cands = [(v, n) for v, n in cands if not np.isnan(v)]
            if len(cands) > 1:
                cands.sort(reverse=True)
                best = f"{cands[0][1]} (+{cands[0][0] - cands[1][0]:.2f} over {cands[1][1]})"
            elif "ABOVE" in wb + pb_:
                best = "dcq (WebP / PNG-8 cannot get down to these bytes)"
        lines.append(f"| {b:.0f} | {name} | {acc} | {star} | " + " | ".join(cells) + f" | {best} |")
    return lines
