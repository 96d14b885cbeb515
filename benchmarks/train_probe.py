"""Train probe (issue #7): does a model trained on a ``.dcq`` file learn as well as on the originals?

    python benchmarks/train_probe.py                       # the full table (< 60 min, 2 CPU cores)
    python benchmarks/train_probe.py --quick               # tiny, for iteration (a few minutes)
    python benchmarks/train_probe.py --datasets emoji64 --seeds 3 --configs original,dcq-q2
    python benchmarks/train_probe.py --datasets emoji64 --frontier --configs @benchmarks/configs/frontier_emoji64.txt

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
- generic rows (``_probe_configs.py`` states the syntax): ``dcq:KEY=VAL,...`` is ``convert``
  with any of its keywords (``dcq:bits=1,scale=0.5``, ``dcq:coreset=bgfdq:0.3``), ``load.KEY``
  keys change how the probe trains on that file (``load.combine=2,load.cellcrop=1``: canvases of
  2x2 images of one class + CellCrop, hard labels); ``jpeg@REF``, ``subset@REF``, ``webp@REF``
  (WebP lossy, method 6, highest quality at or under REF's bytes) and ``png8@REF`` (per-image
  k-means PNG-8, 2..256 colours, at or under REF's bytes; ``png8:scale=0.5@REF`` or
  ``png8:scale=auto@REF`` downscale first) for ANY dcq row REF. ``--configs @FILE`` reads one row
  per line. A row convert refuses (an unknown keyword) fails alone, with convert's message.
- ``--frontier``: every dcq row also gets ``webp@``, ``png8@`` and ``png8:scale=0.5@`` rows
  (``--frontier-baselines``), and the output gains a bytes-vs-accuracy table sorted by bytes
  per training image, frontier marked.

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
import itertools
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
from _probe_codecs import (  # noqa: E402,F401  (re-exported: tests and older scripts use them)
    downscale,
    jpeg_image,
    jpeg_search,
    png8_search,
    png_bytes,
    quantize_colours,
    quantize_image,
    stratified_subset,
    upscale_to,
    webp_image,
    webp_search,
)
from _probe_configs import (  # noqa: E402,F401
    BY_NAME,
    CONFIGS,
    Config,
    parse_config,
    resolve_configs,
    split_config_list,
)
from _probe_report import render  # noqa: E402
from _probe_tasks import (  # noqa: E402,F401
    prepare_dataset,
    task_baseline,
    task_convert,
    task_proxy,
    task_train,
    worker_init,
)
from _probe_train import Settings, build_cnn, train_eval  # noqa: E402,F401

RESULTS = HERE / "results"
DATASETS = ("fashion-mnist", "emoji64")


# ================================================================================ scheduling


class Scheduler:
    """Runs tasks with dependencies in a process pool, highest priority (lowest number) first, at
    most ``jobs`` at a time; ``on_done`` callbacks run in the main process and may add tasks. A
    task that raises calls its ``on_error`` with the exception (re-raised when it has none)."""

    def __init__(self, jobs: int) -> None:
        import multiprocessing as mp

        self.jobs = jobs
        self.pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"),
                                        initializer=worker_init)
        self.ready: list[tuple[int, int, Callable[..., Any], tuple[Any, ...], Callable[[Any], None],
                               Callable[[BaseException], None] | None]] = []
        self.running: dict[Future[Any], tuple[Callable[[Any], None],
                                              Callable[[BaseException], None] | None]] = {}
        self.seq = itertools.count()

    def add(self, prio: int, fn: Callable[..., Any], args: tuple[Any, ...],
            on_done: Callable[[Any], None], on_error: Callable[[BaseException], None] | None = None) -> None:
        heapq.heappush(self.ready, (prio, next(self.seq), fn, args, on_done, on_error))

    def run(self) -> None:
        try:
            while self.ready or self.running:
                while self.ready and len(self.running) < self.jobs:
                    _p, _s, fn, args, cb, eb = heapq.heappop(self.ready)
                    self.running[self.pool.submit(fn, *args)] = (cb, eb)
                done, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                for fut in done:
                    cb, eb = self.running.pop(fut)
                    exc = fut.exception()
                    if exc is None:
                        cb(fut.result())
                    elif eb is not None:
                        eb(exc)
                    else:
                        raise exc
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


def _safe(name: str) -> str:
    """A file-name-safe form of a row name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]


def _data_key(c: Config, info: dict[str, Any]) -> str | None:
    """Deterministic baselines that chose the same setting train on the same data."""
    if c.kind not in ("jpeg", "webp", "png8"):
        return None
    return json.dumps([c.kind, info.get("quality"), info.get("colours"), info.get("scale", 1.0)])


def plan_dataset(sched: Scheduler, ds: dict[str, Any], st: Settings, configs: list[Config],
                 seeds: list[int], state: dict[str, Any], per_seed: bool = True) -> None:
    """Queue every task of one dataset; results land in ``state``. ``per_seed``: training seed s
    runs on the .dcq encoded with seed s and on the subset drawn with seed s (the std then covers
    the encoder's randomness too); otherwise every seed trains on the seed-0 encoding. Rows whose
    convert keywords agree share one file per seed; a failing task fails its rows, not the run."""
    DatasetPlan(sched, ds, st, configs, seeds, state, per_seed).queue_all()


class DatasetPlan:
    """The tasks of one dataset and the callbacks that chain them (see :func:`plan_dataset`)."""

    def __init__(self, sched: Scheduler, ds: dict[str, Any], st: Settings, configs: list[Config],
                 seeds: list[int], state: dict[str, Any], per_seed: bool) -> None:
        self.sched, self.ds, self.st, self.seeds, self.state = sched, ds, st, seeds, state
        self.per_seed = per_seed
        self.work = Path(ds["dir"])
        self.test = {"path": str(self.work / "test.npz")}
        self.rows: dict[str, dict[str, Any]] = state["rows"]
        state["configs"] = {c.name: c for c in configs}
        for c in configs:
            self.rows[c.name] = {"config": c.name, "kind": c.kind, "what": c.what, "bits": c.bits,
                                 "runs": []}
            if c.error:
                self.rows[c.name]["error"] = c.error
        self.live = [c for c in configs if c.error is None]
        self.refs = {c.name: parse_config(c.ref) for c in self.live if c.ref}
        self.files: dict[str, Config] = {}
        for c in [x for x in self.live if x.kind == "dcq"] + list(self.refs.values()):
            self.files.setdefault(c.file_key(), c)

    def queue_all(self) -> None:
        orig = BY_NAME["original"]  # original PNG sizes: the original row and the subsets need them
        self.sched.add(1, task_baseline, (self.ds, orig, None, str(self.work / "original.npz")),
                       lambda info: self.after_original(orig, info))
        if "original" in self.rows and "error" not in self.rows["original"]:
            self.queue_training(orig, {"kind": "npz", "path": str(self.work / "train.npz")})
        for c in self.live:  # per-image quantizers
            if c.kind == "quant":
                out = str(self.work / f"{c.name}.npz")

                def qdone(info: dict[str, Any], c: Config = c, out: str = out) -> None:
                    self.rows[c.name]["encode"] = info
                    _log(f"{self.ds['name']} {c.name}: {info['bytes']:,} B, PSNR {info['psnr']:.2f} dB")
                    self.queue_training(c, {"kind": "npz", "path": out})
                self.sched.add(2, task_baseline, (self.ds, c, None, out), qdone)
        if self.files:
            proxy = str(self.work / "proxy.pt")
            self.sched.add(0, task_proxy, (self.ds, proxy, self.st.proxy_epochs),
                           lambda info: self.proxy_done(proxy, info))

    def fail(self, names: list[str], message: str) -> None:
        for n in names:
            if n in self.rows and not self.rows[n].get("error"):
                self.rows[n]["error"] = message
                _log(f"{self.ds['name']} {n}: FAILED: {message}")

    def queue_training(self, c: Config, source: dict[str, Any], which: list[int] | None = None) -> None:
        for s in (self.seeds if which is None else which):
            def done(r: dict[str, Any], c: Config = c) -> None:
                self.rows[c.name]["runs"].append(r)
                _log(f"{self.ds['name']} {c.name} seed {r['seed']}: acc {100 * r['accuracy']:.2f} % "
                     f"({r['train_seconds']:.0f} s, {r['train_images']} items, {r['reader']})")
            self.sched.add(3, task_train, (source, self.test, self.st, s, len(self.ds["classes"])), done,
                           lambda e, c=c: self.fail([c.name], f"training failed: {type(e).__name__}: {e}"))

    def after_original(self, c: Config, info: dict[str, Any]) -> None:
        self.state["original_png"] = info
        if c.name in self.rows:
            self.rows[c.name]["encode"] = info
        self.state["png_ready"] = True
        for fn in self.state.pop("waiting_png", []):
            fn()

    def proxy_done(self, proxy: str, info: dict[str, Any]) -> None:
        """Convert every distinct file once per encoding seed; each finished file queues the
        training of its dcq rows and the baselines matched to its bytes."""
        self.state["proxy"] = info
        _log(f"{self.ds['name']} proxy trained in {info['seconds']:.0f} s")
        for key, c in self.files.items():
            users = [r for r in self.live if r.kind == "dcq" and r.file_key() == key]
            dependants = [r.name for r in users] + [n for n, ref in self.refs.items() if ref.file_key() == key]
            for es in (self.seeds if self.per_seed else [0]):
                dst = str(self.work / f"{_safe(c.name)}_e{es}.dcq")
                self.sched.add(0, task_convert, (self.ds, c, proxy, dst, es),
                               lambda s, c=c, dst=dst, es=es, users=users, key=key:
                               self.converted(s, info, c, dst, es, users, key),
                               lambda e, d=dependants: self.fail(d, f"convert failed: {type(e).__name__}: {e}"))

    def converted(self, s: dict[str, Any], proxy_info: dict[str, Any], c: Config, dst: str, es: int,
                  users: list[Config], key: str) -> None:
        s["seconds_with_proxy"] = s["seconds"] + proxy_info["seconds"]
        self.state["dcq"].setdefault(c.name, {})[es] = s
        for r in users:
            if self.rows[r.name].get("error"):
                continue
            encodes = self.rows[r.name].setdefault("encodes", {})
            encodes[es] = {"bytes": s["file_bytes"], "images": s["images"],
                           "psnr": s.get("psnr_mean_db"), "seconds": s["seconds_with_proxy"]}
            self.rows[r.name]["encode"] = _summarise(encodes)
            if s.get("plan"):
                encodes[es]["plan"] = s["plan"]
                self.rows[r.name]["encode"]["plans"] = [encodes[e].get("plan") for e in sorted(encodes)]
            self.queue_training(r, {"kind": "dcq", "path": dst, "load": dict(r.load)},
                                [es] if self.per_seed else None)
        _log(f"{self.ds['name']} {c.name} (seed {es}): {s['file_bytes']:,} B, PSNR "
             f"{s.get('psnr_mean_db') or float('nan'):.2f} dB, convert {s['seconds']:.0f} s")
        self.queue_ref_baselines(key, int(s["file_bytes"]), es)

    def queue_ref_baselines(self, key: str, file_bytes: int, es: int) -> None:
        for c in self.live:
            if not c.ref or self.refs[c.name].file_key() != key:
                continue
            if c.kind != "subset":  # deterministic: one encoding, matched to the seed-0 file
                if es != 0:
                    continue
                first = self.state.setdefault("baseline_tasks", {}).setdefault(
                    json.dumps([c.kind, c.scales, key]), c.name)
                if first != c.name:
                    self.rows[c.name]["same_as"] = first
                    continue
            draw = es if c.kind == "subset" and self.per_seed else 0  # once: es is always 0
            if c.kind == "subset" and not self.state.get("png_ready"):
                self.state.setdefault("waiting_png", []).append(
                    lambda c=c, draw=draw: self.queue_baseline(c, file_bytes, draw))
            else:
                self.queue_baseline(c, file_bytes, draw)

    def queue_baseline(self, c: Config, file_bytes: int, draw: int) -> None:
        subset = c.kind == "subset"
        out = str(self.work / (f"{_safe(c.name)}_e{draw}.npz" if subset else f"{_safe(c.name)}.npz"))
        which = [draw] if subset and self.per_seed else None

        def done(info: dict[str, Any]) -> None:
            row = self.rows[c.name]
            if subset:
                row.setdefault("encodes", {})[draw] = info
                row["encode"] = {**_summarise(row["encodes"]), "psnr": None}
            else:
                row["encode"] = info
            _log(f"{self.ds['name']} {c.name} (draw {draw}): {info['bytes']:,} B for "
                 f"{info['images']} images (target {file_bytes:,} B) in {info['seconds']:.0f} s")
            data_key = _data_key(c, info)
            if data_key is not None:  # the same setting as another row: the same data
                seen = self.state.setdefault("baseline_data", {})
                if data_key in seen:
                    row["same_as"] = seen[data_key]
                    return
                seen[data_key] = c.name
            src: dict[str, Any] = {"kind": "npz", "path": out}
            if subset:
                src = {"kind": "npz", "path": str(self.work / "train.npz"),
                       "indices": np.load(out.replace(".npz", "_indices.npy")).tolist()}
            self.queue_training(c, src, which)
        self.sched.add(2, task_baseline, (self.ds, c, file_bytes, out, draw), done,
                       lambda e: self.fail([c.name], f"encoding failed: {type(e).__name__}: {e}"))


def _parse_configs(p: argparse.ArgumentParser, text: str, frontier: bool,
                   baselines: str) -> list[Config]:
    bases = tuple(b.strip() for b in baselines.split(",") if b.strip())
    try:
        names = [c.name for c in CONFIGS] if text == "all" else split_config_list(text)
        return resolve_configs(names, frontier, bases)
    except (ValueError, OSError) as e:
        p.error(str(e))
    raise AssertionError("unreachable")


def _arguments(argv: Sequence[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="tiny run: 2,000 Fashion-MNIST train / 2,000 test, 1 seed, few epochs")
    p.add_argument("--datasets", default=",".join(DATASETS), help=f"comma list of {DATASETS}")
    p.add_argument("--configs", default="all",
                   help="comma list of rows, @FILE (one row per line) or 'all' (the fixed rows: "
                   + ", ".join(c.name for c in CONFIGS) + "); generic rows: dcq:KEY=VAL,... "
                   "(convert keywords, load.combine=N, load.cellcrop=1) and "
                   "jpeg|subset|webp|png8[:scale=S]@<dcq row>")
    p.add_argument("--frontier", action="store_true",
                   help="add the --frontier-baselines rows for every dcq row and a bytes-vs-accuracy "
                   "table")
    p.add_argument("--frontier-baselines", default="webp,png8,png8:scale=0.5",
                   help="baselines matched to every dcq row's bytes with --frontier (default "
                   "webp,png8,png8:scale=0.5)")
    p.add_argument("--tag", default=None,
                   help="output name: results/train_probe_<tag>_<dataset>.md (default "
                   "'frontier' with --frontier, none otherwise)")
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
    return p, p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    p, args = _arguments(argv)
    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *(argv if argv is not None else sys.argv[1:])])
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in datasets:
        if d not in DATASETS:
            p.error(f"unknown dataset {d!r}; choose from {DATASETS}")
    configs = _parse_configs(p, args.configs, args.frontier, args.frontier_baselines)
    fixed = {c.name for c in CONFIGS}
    order = [c.name for c in CONFIGS if c.name in {x.name for x in configs}] + \
        [c.name for c in configs if c.name not in fixed]
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 3)))
    fm_train = args.fm_train or (2000 if args.quick else 10000)
    fm_test = args.fm_test or (2000 if args.quick else 10000)
    tag = args.tag if args.tag is not None else ("frontier" if args.frontier else "")
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
                                     "per_seed": per_seed, "order": order}
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
        write_outputs(ds, st, state, seeds, command, started, wall, args, out_dir, tag)
    _log(f"total wall time {wall / 60:.1f} min")
    return 0


def write_outputs(ds: dict[str, Any], st: Settings, state: dict[str, Any], seeds: list[int],
                  command: str, started: str, wall: float, args: argparse.Namespace,
                  out_dir: Path, tag: str) -> None:
    """Share the runs of rows on the same data, then write the markdown and the json."""
    for r in state["rows"].values():
        if "same_as" in r:
            first = state["rows"][r["same_as"]]
            r["runs"] = list(first["runs"])
            r.setdefault("encode", first.get("encode", {}))
            if first.get("error") and not r.get("error"):
                r["error"] = first["error"]
        r["runs"].sort(key=lambda x: x["seed"])
    state["loadavg"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    text = render(ds, st, state, seeds, command, started, wall, frontier=args.frontier)
    print(text, flush=True)
    stem = out_dir / f"train_probe_{tag + '_' if tag else ''}{ds['name']}{'_quick' if args.quick else ''}"
    stem.with_suffix(".md").write_text(text)
    raw = {"dataset": ds["name"], "command": command, "date": started, "wall_seconds": wall,
           "settings": st.__dict__, "steps": st.steps, "seeds": seeds, "data": ds,
           "proxy": state.get("proxy"), "dcq_summaries": state["dcq"], "rows": state["rows"],
           "original_png": state.get("original_png"), "loadavg": state["loadavg"]}
    stem.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
    _log(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    raise SystemExit(main())
