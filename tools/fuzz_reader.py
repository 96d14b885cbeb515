#!/usr/bin/env python3
"""Seeded, time-bounded corruption fuzzing of the reader, in child processes.

Bases: the golden valid files (``spec/vectors/valid``) and copies of them rewritten with HDF5's
oldest object headers (``libver="earliest"``: no metadata checksums, so damage reaches the
parsers instead of stopping at a checksum). Each case damages a base -- bit flips, bytes set to
0x00/0xFF/0x7F/0x80/0x01, 32- and 64-bit fields set to 0, 1, -1, 2**31, 2**32 + 1 or the file
size, random runs, insertions, deletions, truncation -- at positions weighted to the non-zero
bytes, the global heap collections and the ``/classes`` descriptors, then opens it, reads every
sample (one by one and batched, on one thread and split over threads, with and without
per-read CRC checks), builds the storage report
and verifies it. Only a ``DcqError`` may come out.

Cases run in batches in child processes so that a crash (a signal) or a hang (a per-case
watchdog, ``faulthandler.dump_traceback_later(exit=True)``, which also fires inside C code) is
counted and the run goes on with the next case. Reported: files, outcomes by exception type,
crashes, hangs, the children's peak RSS, and every non-DcqError case with its seed and case
number (``--replay SEED:CASE`` rebuilds and reruns one).

    nice -n 10 python tools/fuzz_reader.py --seconds 1500 --seed 1 --report benchmarks/results/fuzz.md
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

ROOT = Path(__file__).resolve().parent.parent
VALID = sorted((ROOT / "spec" / "vectors" / "valid").glob("*.dcq"))
SPECIAL32 = [0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0x00010000]
SPECIAL64 = [0, 1, 2**64 - 1, 2**63, 2**32 + 1, 2**40]


def earliest_copy(src: Path, dst: Path) -> None:
    """``src`` rewritten with HDF5's oldest object headers (no metadata checksums)."""
    with h5py.File(src, "r") as s, h5py.File(dst, "w", libver="earliest") as d:
        for k in s.attrs:
            d.attrs.create(k, s.attrs[k], dtype=s.attrs.get_id(k).dtype)

        def copy(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                nd = d.create_dataset(name, data=obj[()], dtype=obj.dtype, chunks=obj.chunks,
                                      compression=obj.compression, shuffle=obj.shuffle)
                for k in obj.attrs:
                    nd.attrs[k] = obj.attrs[k]
            else:
                g = d.require_group(name)
                for k in obj.attrs:  # type: ignore[attr-defined]
                    g.attrs[k] = obj.attrs[k]  # type: ignore[attr-defined]
        s.visititems(copy)


def make_bases(folder: Path) -> list[Path]:
    """The valid vectors and their checksum-free copies, in ``folder``."""
    bases = []
    for p in VALID:
        bases.append(p)
        early = folder / f"early_{p.name}"
        earliest_copy(p, early)
        bases.append(early)
    return bases


def _hot(data: bytes) -> dict[str, list[int]]:
    """Positions worth damaging: non-zero bytes, global heap collections, /classes data."""
    nonzero = [i for i, b in enumerate(data) if b]
    heaps: list[int] = []
    i = data.find(b"GCOL\x01")
    while i >= 0:
        size = int.from_bytes(data[i + 8:i + 16], "little")
        heaps.extend(range(i, min(len(data), i + min(size, 512))))
        i = data.find(b"GCOL\x01", i + 1)
    return {"nonzero": nonzero or [0], "heap": heaps or nonzero or [0]}


def mutate(data: bytes, hot: dict[str, list[int]], rng: random.Random) -> bytes:
    """One to four random damages of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        where = rng.choice(["nonzero", "nonzero", "heap", "any"])
        pos = rng.randrange(len(out)) if where == "any" else rng.choice(hot[where])
        pos = min(pos, len(out) - 1)
        kind = rng.choice(["flip", "flip", "set", "u32", "u32", "u64", "run", "insert", "delete", "cut"])
        if kind == "flip":
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == "set":
            out[pos] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01])
        elif kind in ("u32", "u64") and pos + (4 if kind == "u32" else 8) <= len(out):
            pos -= pos % 4
            value = rng.choice(SPECIAL32 + [len(data)]) if kind == "u32" else rng.choice(SPECIAL64 + [len(data)])
            struct.pack_into("<I" if kind == "u32" else "<Q", out, pos, value & (2**(32 if kind == "u32" else 64) - 1))
        elif kind == "run":
            out[pos:pos + 8] = rng.randbytes(8)
        elif kind == "insert":
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif kind == "delete":
            del out[pos:pos + rng.randint(1, 8)]
        elif kind == "cut":
            del out[pos:]
    return bytes(out)


def case_bytes(bases: list[Path], seed: int, case: int, cache: dict[Path, tuple[bytes, dict[str, list[int]]]]) -> tuple[str, bytes]:
    """The damaged file of case ``case`` of run ``seed`` (deterministic)."""
    rng = random.Random(f"{seed}:{case}")
    base = bases[rng.randrange(len(bases))]
    if base not in cache:
        data = base.read_bytes()
        cache[base] = (data, _hot(data))
    data, hot = cache[base]
    return base.name, mutate(data, hot, rng)


def exercise(path: Path, check_crc: bool) -> None:
    """Everything a user may do with a file."""
    from dcqformat import DCQFile

    with DCQFile(path, check_crc=check_crc) as f:
        for i in range(len(f)):
            f[i]
        if "out" in inspect.signature(f.decode_batch).parameters:  # (older checkouts)
            exercise_more(f)
        if len(f):
            f.decode_batch(range(len(f)))
            if "threads" in inspect.signature(f.decode_batch).parameters:  # (older checkouts)
                f.decode_batch(list(range(len(f)))[::-1], layout="hwc", threads=2)  # split
                f.packed_batch(range(len(f)), threads=3)
            else:
                f.decode_batch(list(range(len(f)))[::-1], layout="hwc")
        f.info()
        f.verify()


def exercise_more(f: Any) -> None:
    """The paths added with format 1.2 / 1.3 and the decoded-map cache: index maps, packed
    maps, a caller's palette of K - 1 and K + 1 colours, decode_batch(out=) of the samples of
    the first one's shape, and the same batches again through a filled cache."""
    import numpy as np

    from dcqformat.errors import DcqError

    for i in range(len(f)):
        f.index_map(i), f.packed(i), f.original_shape(i)
        h, w, c = f.shape(i)
        for k in (max(1, f.palette_size - 1), f.palette_size + 1):
            try:
                f.decode_into(i, np.empty((c, h, w), np.uint8), layout="chw",
                              palette=np.full((k, c), 7, np.uint8))
            except DcqError:
                pass
    if len(f):
        same = [i for i in range(len(f)) if f.shape(i) == f.shape(0)][::-1]
        h, w, c = f.shape(0)
        for _ in range(2):
            f.decode_batch(same, "hwc", threads=2, out=np.empty((len(same), h, w, c), np.uint8))
            f.decode_batch(same, "chw", threads=1, out=np.empty((len(same), c, h, w), np.uint8))
            f.fill_cache(batch=3)


def peak_rss_kib() -> int:
    """The peak resident set of this process's own address space, KiB (Linux ``VmHWM``; else
    ``ru_maxrss``). Not ``ru_maxrss`` on Linux: after fork + exec it starts at the parent's
    peak, so a child of a large process (a pytest run past 1 GiB) would report that."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(bases: list[Path], seed: int, first: int, count: int, folder: Path, watchdog: float) -> None:
    """Run cases ``first .. first+count-1``, one JSON line each (stdout)."""
    import faulthandler

    from dcqformat.errors import DcqError

    cache: dict[Path, tuple[bytes, dict[str, list[int]]]] = {}
    path = folder / "case.dcq"
    for case in range(first, first + count):
        name, data = case_bytes(bases, seed, case, cache)
        path.write_bytes(data)
        print(json.dumps({"case": case, "start": True}), flush=True)
        faulthandler.dump_traceback_later(watchdog, exit=True)
        try:
            exercise(path, check_crc=bool(case % 2))
            outcome = "accepted"
        except DcqError as exc:
            outcome = f"DcqError:{type(exc).__name__}"
        except BaseException as exc:  # noqa: BLE001 - what is hunted
            outcome = f"OTHER:{type(exc).__name__}: {str(exc)[:200]}"
        faulthandler.cancel_dump_traceback_later()
        rss = peak_rss_kib()
        print(json.dumps({"case": case, "base": name, "outcome": outcome, "rss_kib": rss}), flush=True)


@dataclass
class Tally:
    """What a run found."""

    files: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0
    seconds: float = 0.0


def run(seconds: float, seed: int, *, batch: int = 250, watchdog: float = 20.0,
        max_files: int | None = None, package: Path = ROOT) -> Tally:
    """Fuzz for ``seconds`` (or ``max_files`` cases) from ``seed``; returns the tally.
    ``package``: the checkout whose dcqformat the children import (default: this one)."""
    t0 = time.monotonic()
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_bases(folder)
        case = 0
        env = {**os.environ, "PYTHONFAULTHANDLER": "1",
               "PYTHONPATH": os.pathsep.join([str(package), *filter(None, [os.environ.get("PYTHONPATH")])])}
        while time.monotonic() - t0 < seconds and (max_files is None or case < max_files):
            n = batch if max_files is None else min(batch, max_files - case)
            proc = subprocess.run([sys.executable, __file__, "--child", str(seed), str(case), str(n), tmp,
                                   str(watchdog)], capture_output=True, text=True, env=env,
                                  timeout=watchdog * n + 120, cwd=tmp)
            last_started = case
            done = set()
            for line in proc.stdout.splitlines():
                rec = json.loads(line)
                if rec.get("start"):
                    last_started = rec["case"]
                    continue
                done.add(rec["case"])
                tally.files += 1
                kind = rec["outcome"] if not rec["outcome"].startswith("OTHER:") else "OTHER"
                tally.outcomes[kind] += 1
                if kind == "OTHER":
                    tally.others.append(f"{seed}:{rec['case']} ({rec['base']}): {rec['outcome']}")
                tally.peak_rss_kib = max(tally.peak_rss_kib, int(rec["rss_kib"]))
            if proc.returncode != 0:  # the case that started last crashed or hung
                tally.files += 1
                what = f"{seed}:{last_started} exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] }"
                (tally.hangs if "Timeout" in proc.stderr else tally.crashes).append(what)
                case = last_started + 1
            else:
                case += n
    tally.seconds = time.monotonic() - t0
    return tally


def report(t: Tally, seed: int) -> str:
    """The markdown table of a tally."""
    rows = [f"| {k} | {v} |" for k, v in sorted(t.outcomes.items(), key=lambda kv: -kv[1])]
    load = os.getloadavg()
    lines = [
        f"Seed {seed}, {t.seconds / 60:.1f} min, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "", "| outcome | files |", "|---|---|", *rows,
        f"| crashes (child killed by a signal) | {len(t.crashes)} |",
        f"| hangs (watchdog) | {len(t.hangs)} |",
        f"| **total files** | **{t.files}** |", "",
        f"Peak RSS of a fuzzing child: {t.peak_rss_kib / 1024:.0f} MiB. "
        f"Exceptions other than DcqError: {len(t.others)}.",
    ]
    for what in t.others[:20] + t.crashes[:20] + t.hangs[:20]:
        lines.append(f"- {what}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        seed, first, count, folder, watchdog = int(args[1]), int(args[2]), int(args[3]), Path(args[4]), float(args[5])
        bases = [b for p in VALID for b in (p, folder / f"early_{p.name}")]  # make_bases' order
        child(bases, seed, first, count, folder, watchdog)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, help="append the markdown report to this file")
    parser.add_argument("--replay", help="SEED:CASE: rebuild one case and run it here")
    parser.add_argument("--package", type=Path, default=ROOT,
                        help="checkout whose dcqformat is fuzzed (default: this one)")
    ns = parser.parse_args(args)
    if ns.replay:
        seed, case = (int(x) for x in ns.replay.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            bases = make_bases(Path(tmp))
            name, data = case_bytes(bases, seed, case, {})
            path = Path(tmp) / "case.dcq"
            path.write_bytes(data)
            print(f"case {seed}:{case} from {name}")
            exercise(path, check_crc=bool(case % 2))
        return 0
    t = run(ns.seconds, ns.seed, package=ns.package)
    text = f"dcqformat from {ns.package}\n" + report(t, ns.seed)
    print(text)
    if ns.report:
        with open(ns.report, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0 if not (t.others or t.crashes or t.hangs) else 1


if __name__ == "__main__":
    sys.exit(main())
