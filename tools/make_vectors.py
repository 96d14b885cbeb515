#!/usr/bin/env python3
"""Write the golden test vectors of ``spec/vectors/`` (spec/dcq-v1.md §12).

Run once; the outputs are committed and never regenerated::

    python tools/make_vectors.py                 # writes spec/vectors/ (refuses if it exists)
    python tools/make_vectors.py --append        # adds vectors whose names are not there yet

There is deliberately no ``--force``: the vectors are append-only. To add a vector, add a
new entry to ``VALID`` (``tools/vectors_valid.py``) or to an invalid list
(``tools/vectors_invalid.py``, ``tools/vectors_invalid_ctx.py``) under a *new* name and
run with ``--append``; files that already exist are never touched, only new names are
written (and their checksums appended to ``SHA256SUMS``, their rows to ``README.md``).
``tools/vectors_spec.py`` holds the spec-level helpers, ``tools/vectors_bases.py`` the
valid bases the invalid vectors are edited from.

Valid vectors (``valid/<name>.dcq``) are written by the reference writer
(:class:`dcqformat.DCQWriter`) from index maps generated here with a fixed seed. Beside
each one, ``<name>.expected.npz`` holds ``pixels_<i>`` (uint8 H×W×ch) and ``labels``,
computed *independently* of dcqformat's decoder: ``palettes[cluster][indices]`` in NumPy
from the generated indices. The tool also checks the writer's stored bytes against a
NumPy ``packbits`` of the same indices before it keeps a vector.

Invalid vectors (``invalid/<name>.dcq.gz``) are hostile files, each with exactly one
defect, derived from small valid files by editing them with h5py or at the byte level.
They are gzip-compressed (mtime 0) because an HDF5 .dcq file is at least ~8 KiB, mostly
zero padding (the global heap alone is 4 KiB), and dozens of them would not fit the
folder's 200 KB budget; ``gunzip`` gives the file. ``<name>.expected.json`` records
``error`` (the DcqError subclass name), ``stage`` (``open``: ``DCQFile(path)`` raises;
``read``: opening succeeds and reading ``sample`` raises; ``verify``: every sample reads,
``verify()`` raises) and ``reason``.
"""


from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the vectors_* modules beside this file (tools/ is no package)
    sys.path.insert(0, str(HERE))

from vectors_bases import (  # noqa: E402
    InvalidSpec,
    write_base,
    write_base_chunked,
    write_base_masked,
)
from vectors_invalid import INVALID_STRUCTURE  # noqa: E402
from vectors_invalid_ctx import INVALID_CTX_AND_SIZES  # noqa: E402
from vectors_valid import VALID, write_valid  # noqa: E402

ROOT = HERE.parent
DEFAULT_OUT = ROOT / "spec" / "vectors"
INVALID: list[InvalidSpec] = [*INVALID_STRUCTURE, *INVALID_CTX_AND_SIZES]


# ---------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data`` (as ``sha256sum`` prints it)."""
    return hashlib.sha256(data).hexdigest()


def _check_invalid_stage(path: Path, spec: InvalidSpec) -> None:
    """The vector must fail exactly as recorded with the reference reader (sanity check)."""
    import dcqformat.errors as E
    from dcqformat import DCQFile

    want = getattr(E, spec.error)
    try:
        f = DCQFile(path, check_crc=True)
    except E.DcqError as exc:
        stage, got = "open", exc
    else:
        stage, got = "", None
        try:
            for i in range(len(f)):
                try:
                    f[i]
                except E.DcqError as exc:
                    stage, got = "read", exc
                    if spec.sample is not None and i != spec.sample:
                        raise SystemExit(f"{spec.name}: failed at sample {i}, expected {spec.sample}") from None
                    break
            try:
                f.verify()
            except E.DcqError as exc:
                if got is None:
                    stage, got = "verify", exc
                elif type(exc) is not type(got):
                    raise SystemExit(f"{spec.name}: read raised {type(got).__name__}, verify "
                                     f"{type(exc).__name__}") from None
            else:
                if got is not None:
                    raise SystemExit(f"{spec.name}: read failed but verify passed")
        finally:
            f.close()
    if stage != spec.stage or type(got) is not want:
        raise SystemExit(f"{spec.name}: expected {spec.error} at {spec.stage}, got "
                         f"{type(got).__name__} at {stage or 'nowhere'}: {got}")


def generate(out: Path, *, append: bool) -> list[str]:
    """Write every vector not yet in ``out``; returns the relative paths written."""
    written: list[str] = []
    readme_rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        stage_dir = tmp / "stage"
        (stage_dir / "valid").mkdir(parents=True)
        (stage_dir / "invalid").mkdir(parents=True)
        for spec in VALID:
            if append and (out / "valid" / f"{spec.name}.dcq").exists():
                continue
            row = write_valid(spec, stage_dir / "valid")
            readme_rows.append(f"| `valid/{spec.name}.dcq` | decodes to `{spec.name}.expected.npz`; "
                               f"passes verify | {row['what']} |")
        bases = {"raw": tmp / "base_raw.dcq", "zstd": tmp / "base_zstd.dcq",
                 "full": tmp / "base_full.dcq", "chunked": tmp / "base_chunked.dcq"}
        write_base(bases["raw"], "raw")
        write_base(bases["zstd"], "zstd")
        write_base(bases["full"], "raw", extras=True)
        write_base_chunked(bases["chunked"])
        bases["masked_raw"], bases["masked_zstd"] = tmp / "base_masked_raw.dcq", tmp / "base_masked_zstd.dcq"
        write_base_masked(bases["masked_raw"], "raw")
        write_base_masked(bases["masked_zstd"], "zstd")
        bases["ctx"] = tmp / "base_ctx.dcq"
        write_base(bases["ctx"], "ctx")
        for spec in INVALID:
            if append and (out / "invalid" / f"{spec.name}.dcq.gz").exists():
                continue
            target = tmp / f"{spec.name}.dcq"
            spec.build(target, bases)
            _check_invalid_stage(target, spec)
            data = target.read_bytes()
            (stage_dir / "invalid" / f"{spec.name}.dcq.gz").write_bytes(
                gzip.compress(data, compresslevel=9, mtime=0))
            record: dict[str, Any] = {"error": spec.error, "stage": spec.stage, "reason": spec.reason}
            if spec.sample is not None:
                record["sample"] = spec.sample
            record.update(spec.extra)
            (stage_dir / "invalid" / f"{spec.name}.expected.json").write_text(
                json.dumps(record, indent=2, sort_keys=True) + "\n")
            where = {"open": "`DCQFile(path)`", "read": f"reading sample {spec.sample}",
                     "verify": "`verify()`"}[spec.stage]
            readme_rows.append(f"| `invalid/{spec.name}.dcq.gz` | **{spec.error}** at {where} | "
                               f"{spec.reason} |")
        for sub in ("valid", "invalid"):
            (out / sub).mkdir(parents=True, exist_ok=True)
            for p in sorted((stage_dir / sub).iterdir()):
                dest = out / sub / p.name
                if dest.exists():  # never overwrite a vector
                    raise SystemExit(f"{dest} exists; vectors are append-only")
                shutil.copyfile(p, dest)
                written.append(f"{sub}/{p.name}")
    with open(out / "SHA256SUMS", "a") as fh:
        for rel in written:
            fh.write(f"{sha256((out / rel).read_bytes())}  {rel}\n")
    readme = out / "README.md"
    if not readme.exists():
        readme.write_text(README_HEAD)
    if readme_rows:  # an --append with nothing new leaves the README as it is
        with open(readme, "a") as fh:
            if append:
                fh.write("\n")
            fh.write("\n".join(readme_rows) + "\n")
    return written


README_HEAD = """\
# Golden vectors of the .dcq format, version 1.0

Written once by `tools/make_vectors.py` (fixed seed) and **never regenerated**: any change
that alters these bytes or their decoding is a format change (spec/dcq-v1.md §12). New
vectors are added under new names only (`tools/make_vectors.py --append`). `SHA256SUMS`
lists every file except this README (`cd spec/vectors && sha256sum -c SHA256SUMS`).

## Valid files: `valid/<name>.dcq`

Written by the reference writer (`dcqformat.DCQWriter`; the `version_1_7` one then copied
into a new HDF5 file with h5py and edited as its row says). Each decodes to the arrays in
`<name>.expected.npz`: `pixels_<i>` (uint8 H×W×ch, sample i) and `labels` (int64 [N]).
These expected pixels were computed from the generated index maps by a palette lookup in
NumPy (`palettes[cluster][indices]`), not by any .dcq decoder. Every valid file also passes
a verifier (all checksums, zero padding, every sample decoded).

## Invalid files: `invalid/<name>.dcq.gz`

Hostile files, each with exactly one defect. They are gzip-compressed (`gunzip -k` gives the
`.dcq` file) only to keep this folder small: the reference writer's smallest file is ~12 KiB,
mostly zero padding. `<name>.expected.json` holds:

- `error`: the error family a reader must raise, named as in `dcqformat.errors`:
  `NotADcqFileError` (not a .dcq file at all), `TruncatedFileError`,
  `UnsupportedVersionError` (major version or must-understand feature), `StructureError`
  (a missing/ill-typed/out-of-range field, or HDF5 data that cannot be read),
  `ChecksumMismatchError`, `PayloadError` (a sample's stored bytes cannot be decoded);
- `stage`: `open` (opening the file, which validates all metadata, must fail), `read`
  (opening succeeds; reading sample `sample` must fail, and so must a verifier), or
  `verify` (every sample reads; only a verifier must fail). For `ChecksumMismatchError` at
  `read` the reader must check each sample's CRC-32 as it reads it (§10.5;
  `DCQFile(path, check_crc=True)`); a reader that skips that check finds it at `verify`;
- `reason`: the defect, in words; the error message must name the file.

Unless stated, the invalid files derive from one valid base: q=3 RGB, K=5, two palettes, two
classes, three samples of 2×3, 1×1 and 4×5 pixels (raw or zstd; sources and a selection
`sel` where a vector needs them); the `flip_*` files derive from a 64-sample q=2 grey base
whose per-sample arrays are chunked with shuffle+deflate.

| file | must | what |
|---|---|---|
"""


def main(argv: list[str] | None = None) -> int:
    """The command line: write the vectors to ``--out`` (refused if it exists) or, with
    ``--append``, only the vectors not there yet; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="vectors folder")
    parser.add_argument("--append", action="store_true",
                        help="add only vectors whose files do not exist yet; never touch others")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists() and not args.append:
        print(f"{out} exists: golden vectors are written once and never regenerated. "
              "Add new vectors under new names with --append.", file=sys.stderr)
        return 1
    written = generate(out, append=args.append)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(written)} files to {out} (folder now {total} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
