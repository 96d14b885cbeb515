"""De-duplication on real images with planted duplicates: precision and recall (issue #5).

    python benchmarks/selection_dedup.py [--planted 150] [--fm 2000] [--convert]

For each dataset (emoji64: all 1,906 64x64 RGBA emoji in 9 classes; Fashion-MNIST: a
class-stratified ``--fm`` of the training images, written as PNG) an ImageFolder is written
with, in addition to every original, ``--planted`` copies of randomly chosen originals (seed 0),
a quarter of each kind, in the same class as their source:

- ``exact``: the same file bytes;
- ``resized``: resized to 75 % of the side (bicubic) -- a different image size;
- ``jpeg``: re-encoded as JPEG quality 70 (alpha flattened on white, as the encoder does);
- ``flipped``: mirrored left-right.

Hashes are computed by the encoder's own code: every file loaded with ``load_image`` (alpha
flattened on white) and hashed by :meth:`SelectionStage.observe_images`; the groups come from
:meth:`SelectionStage.select` (``dedup_groups``: connected components within the threshold).
A predicted pair is any two members of one group. Truth = the (source, copy) pairs.
precision = correct / predicted, over three units: the pairs within the threshold themselves,
the images that land in a group, and all pairs of group members (pairs between two originals
count as false positives, though some are real duplicates in the source data: the table lists
them separately); recall = planted pairs inside one group / planted pairs, also per
kind. With ``--convert`` the emoji64 folder also goes through ``convert(dedup="phash:8:flip",
keep_all=True)`` and the groups stored in the file are checked against the direct run.
"""

from __future__ import annotations

import argparse
import datetime
import io
import itertools
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

KINDS = ("exact", "resized", "jpeg", "flipped")
CONFIGS = ("phash:0:flip", "phash:4:flip", "phash:8:flip", "phash:12:flip", "phash:8",
           "ahash:4:flip", "dhash:8:flip", "whash:4:flip")


def _flat(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, im).convert("RGB")
    return im


def plant(src: Path, out: Path, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Copy the ImageFolder ``src`` to ``out`` and add ``n`` planted copies; return
    ``(source relpath, copy relpath, kind)``."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=n, replace=False)
    truth = []
    for j, i in enumerate(chosen.tolist()):
        rel = files[i]
        kind = KINDS[j % len(KINDS)]
        cls, name = rel.split("/")
        stem = name.rsplit(".", 1)[0]
        im = Image.open(out / rel)
        im.load()
        if kind == "exact":
            dst = f"{cls}/zz_{stem}_exact.png"
            shutil.copyfile(out / rel, out / dst)
        elif kind == "resized":
            dst = f"{cls}/zz_{stem}_resized.png"
            w, h = im.size
            im.resize((max(8, round(0.75 * w)), max(8, round(0.75 * h))),
                      Image.Resampling.BICUBIC).save(out / dst)
        elif kind == "jpeg":
            dst = f"{cls}/zz_{stem}_jpeg.jpg"
            buf = io.BytesIO()
            _flat(im).save(buf, "JPEG", quality=70)
            (out / dst).write_bytes(buf.getvalue())
        else:
            dst = f"{cls}/zz_{stem}_flipped.png"
            ImageOps.mirror(im).save(out / dst)
        truth.append((rel, dst, kind))
    return truth


def load_all(root: Path) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    from dcqformat.encode.images import LoadOptions, load_image
    from dcqformat.encode.scan import scan_image_folder

    listing = scan_image_folder(root)
    arrs = [load_image(e.path, LoadOptions()) for e in listing.entries]
    return arrs, np.array([e.label for e in listing.entries]), [e.relpath for e in listing.entries]


def run_config(spec: str, arrs: list[np.ndarray], labels: np.ndarray, rel: list[str]) -> dict[str, Any]:
    import torch

    from dcqformat.encode.selection_stage import SelectionStage

    t0 = time.perf_counter()
    st = SelectionStage.from_args(None, spec, True, 0)
    for s in range(0, len(arrs), 64):
        st.observe_images(arrs[s:s + 64])
    t_hash = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = st.select(labels, rel, {}, torch.device("cpu"))
    t_group = time.perf_counter() - t0
    groups = [g["members"] for g in plan.attrs["dedup"]["groups"]]
    return {"groups": groups, "conflicts": len(plan.attrs["dedup"]["conflicts"]),
            "t_hash": t_hash, "t_group": t_group, "edges": _edges(st, rel)}


def _edges(st: Any, rel: list[str]) -> set[frozenset[str]]:
    """The pairs within the threshold themselves (either orientation with ':flip'), before the
    connected components join chains of them."""
    from dcqformat.select import hamming_pairs

    h = np.concatenate(st._hashes)
    n = h.shape[0]
    allh = np.concatenate([h, np.concatenate(st._mirror)]) if st.dedup.mirror else h
    a, b = hamming_pairs(allh, st.dedup.threshold)
    a, b = a % n, b % n
    return {frozenset((rel[i], rel[j])) for i, j in zip(a.tolist(), b.tolist(), strict=True)
            if i != j}


def score(groups: list[list[str]], edges: set[frozenset[str]],
          truth: list[tuple[str, str, str]]) -> dict[str, Any]:
    pred = {frozenset(p) for g in groups for p in itertools.combinations(g, 2)}
    true = {frozenset((a, b)): k for a, b, k in truth}
    planted = {b for _, b, _ in truth}
    members = {m for g in groups for m in g}
    in_truth = {m for a, b, _ in truth for m in (a, b)}
    tp = sum(1 for p in pred if p in true)
    among_orig = sum(1 for p in pred if not (p & planted))
    out = {"pred": len(pred), "tp": tp, "precision": tp / len(pred) if pred else 1.0,
           "recall": tp / len(true), "orig_pairs": among_orig,
           "orig_examples": sorted(sorted(p) for p in pred if not (p & planted))[:3],
           "edges": len(edges), "edge_precision": (len(edges & true.keys()) / len(edges)
                                                   if edges else 1.0),
           "images": len(members),
           "image_precision": len(members & in_truth) / len(members) if members else 1.0}
    for kind in KINDS:
        want = [p for p, k in true.items() if k == kind]
        out[f"recall_{kind}"] = sum(1 for p in want if p in pred) / max(1, len(want))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planted", type=int, default=200)
    ap.add_argument("--fm", type=int, default=2000)
    ap.add_argument("--workdir", default="/tmp/selection_dedup")
    ap.add_argument("--convert", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "selection_dedup.md"))
    args = ap.parse_args(argv)
    from _data import emoji64_root, fashion_mnist, write_imagefolder  # type: ignore[import-not-found]

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    fm_src = work / "fm_src"
    if not fm_src.exists():
        x, y = fashion_mnist("train")
        from train_probe import _stratified_take  # type: ignore[import-not-found]

        idx = np.asarray(_stratified_take(y, args.fm, 0))
        write_imagefolder(x[idx], y[idx], fm_src)
    lines = [
        "# De-duplication with planted duplicates: precision and recall",
        "",
        f"- command: `{shlex.join(['python', *sys.argv])}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{os.cpu_count()} CPU(s), {platform.machine()}, `nice -n 5`, 1-min load average at start "
        f"{os.getloadavg()[0]:.1f} (shared machine)",
        f"- planted: {args.planted} copies per dataset of random originals (seed 0), "
        f"{args.planted // 4} of each kind: exact, resized to 75 % (bicubic), JPEG q70, flipped "
        "left-right; same class as the source",
        "- hashing and grouping by the encoder's code (`load_image`, "
        "`SelectionStage.observe_images` / `select`); a predicted pair = two members of one group",
        "- precision three ways: over the pairs within T themselves (what the hash separates); "
        "over the images that land in a group (right if the image belongs to a planted pair); over "
        "all pairs of members of a group (components chain near pairs into large groups, counted "
        "quadratically here). Recall = planted pairs that end in one group.",
        "- 'group pairs among originals' = predicted pairs between two ORIGINAL images (not planted): "
        "counted as false positives, though some are true duplicates in the source data",
        "",
    ]
    conv_groups: dict[str, Any] = {}
    for name, src in (("emoji64", emoji64_root()), ("fashion-mnist", fm_src)):
        folder = work / f"{name}_planted"
        truth = plant(src, folder, args.planted)
        arrs, labels, rel = load_all(folder)
        lines += [f"## {name}: {len(arrs):,} images ({len(arrs) - len(truth):,} originals + "
                  f"{len(truth)} planted)", "",
                  "| --dedup | pairs within T | precision (pairs within T) | images in groups "
                  "| precision (images) | pairs in groups | precision (group pairs) | recall "
                  "| recall exact | recall resized | recall jpeg | recall flipped "
                  "| group pairs among originals | cross-class conflicts | hash s | group s |",
                  "|---|" + "---:|" * 15]
        examples = []
        for spec in CONFIGS:
            r = run_config(spec, arrs, labels, rel)
            s = score(r["groups"], r["edges"], truth)
            if name == "emoji64" and spec == "phash:8:flip":
                conv_groups = {"folder": folder, "groups": r["groups"]}
            lines.append(
                f"| {spec} | {s['edges']} | {s['edge_precision']:.3f} | {s['images']} "
                f"| {s['image_precision']:.3f} | {s['pred']} | {s['precision']:.3f} | {s['recall']:.3f} "
                f"| {s['recall_exact']:.2f} | {s['recall_resized']:.2f} | {s['recall_jpeg']:.2f} "
                f"| {s['recall_flipped']:.2f} | {s['orig_pairs']} | {r['conflicts']} "
                f"| {r['t_hash']:.1f} | {r['t_group']:.2f} |")
            if s["orig_examples"] and spec == "phash:8:flip":
                examples = s["orig_examples"]
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append("")
        if examples:
            lines.append("Examples of pairs among originals at phash:8:flip: "
                         + "; ".join(" = ".join(p) for p in examples))
            lines.append("")
    if args.convert and conv_groups:
        from dcqformat.encode.pipeline import convert
        from dcqformat.format.reader import DCQFile

        dst = work / "emoji64_planted.dcq"
        t0 = time.perf_counter()
        summ = convert(conv_groups["folder"], dst, dedup="phash:8:flip", keep_all=True,
                       overwrite=True, progress=False, device="cpu")
        stored = [g["members"] for g in DCQFile(dst).selections["dedup"]["attrs"]["groups"]]
        same = sorted(map(sorted, stored)) == sorted(map(sorted, conv_groups["groups"]))
        lines += ["## End to end: `convert(emoji64 planted, dedup='phash:8:flip', keep_all=True)`",
                  "", f"{time.perf_counter() - t0:.0f} s; {summ.images} images stored; "
                  f"{len(stored)} groups stored in the file's `dedup` selection; identical to the "
                  f"direct run above: {same}", "", "```", summ.format(), "```", ""]
    lines.append(f"Wall time of the whole run: {(time.perf_counter() - t_start) / 60:.1f} min.")
    from _common import emit_report  # type: ignore[import-not-found]

    emit_report(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
