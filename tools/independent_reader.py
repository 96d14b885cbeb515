#!/usr/bin/env python3
"""An independent .dcq v1 reader written from ``spec/dcq-v1.md`` alone.

It uses only h5py, NumPy and zstandard (it never imports dcqformat), so that agreeing with
the golden vectors and with dcqformat's reader shows the spec is sufficient to decode a
file. It is deliberately plain: clarity over speed.

Errors are :class:`SpecError` with a ``family`` (the error family names of
``spec/vectors/README.md``: NotADcqFileError, TruncatedFileError, UnsupportedVersionError,
StructureError, ChecksumMismatchError, PayloadError) and a ``stage`` ("open", "read" or
"verify"), so its verdict on the invalid vectors can be compared with what they record.

Usage::

    python tools/independent_reader.py FILE.dcq [...]     # verify and summarise each file
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zstandard

# Parts of this reader beside it in tools/ (no package), importing no dcqformat either:
# independent_hdf5.py (the HDF5 superblock, §10.14's endless walks, Zstandard frame headers),
# independent_masks.py (§13 patch masks) and independent_ctx.py (§14 ctx payload).
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from independent_ctx import CtxRuleError, decode_stream, read_ctx_model  # noqa: E402
from independent_hdf5 import (  # noqa: E402
    HDF5_SIGNATURE,
    endless_hdf5_walk,
    hdf5_eof_address,
    zstd_declared_size,
)
from independent_masks import MaskRuleError, patches, read_masks  # noqa: E402

KNOWN_MAJOR = 1
KNOWN_FEATURES: frozenset[str] = frozenset({"patch-mask", "ctx-payload"})  # §9; §13 (1.1); §14 (1.2)
SAMPLE_DTYPES = {  # §4
    "height": "<u4", "width": "<u4", "label": "<u4", "cluster": "<u4",
    "offset": "<u8", "length": "<u8", "crc32": "<u4",
}
MAX_SIDE = 65536
MAX_PIXELS = 1 << 28


class SpecError(Exception):
    """A file breaks a rule of the spec. ``family`` names the rule's error family."""

    def __init__(self, family: str, stage: str, message: str) -> None:
        super().__init__(message)
        self.family = family
        self.stage = stage


def crc32(data: bytes | np.ndarray) -> int:
    """§2: the CRC-32 of zlib/PNG, as an unsigned 32-bit value."""
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return zlib.crc32(data) & 0xFFFFFFFF




def unpack(packed: bytes, n_pixels: int, bits: int) -> np.ndarray:
    """§5: little-endian bit stream, pixel p at stream bits [p*q, p*q+q), LSB first."""
    stream = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), bitorder="little")
    weights = (1 << np.arange(bits)).astype(np.int64)
    return stream[:n_pixels * bits].reshape(n_pixels, bits).astype(np.int64) @ weights


class IndependentReader:
    """Open and validate ``path`` (stage "open"); decode with :meth:`sample` (stage "read");
    check everything with :meth:`verify` (stage "verify")."""

    def __init__(self, path: str | os.PathLike[str], *, check_crc: bool = True) -> None:
        self.path = str(path)
        self.check_crc = check_crc
        try:
            self._open()
        except SpecError:
            raise
        except Exception as exc:  # anything HDF5/h5py refuses to read: structure is corrupt
            raise self._err("StructureError", "open", f"unreadable HDF5 data ({type(exc).__name__}: {exc})") from None

    # -- helpers ---------------------------------------------------------------------
    def _err(self, family: str, stage: str, message: str) -> SpecError:
        return SpecError(family, stage, f"{self.path}: {message}")

    def _int_attr(self, h5: h5py.File, name: str, lo: int, hi: int) -> int:
        if name not in h5.attrs:
            raise self._err("StructureError", "open", f"root attribute {name} missing")
        value = np.asarray(h5.attrs[name])
        if value.shape != () or value.dtype.kind not in "iu":
            raise self._err("StructureError", "open", f"root attribute {name} is not an integer scalar")
        v = int(value)
        if not lo <= v <= hi:
            raise self._err("StructureError", "open", f"root attribute {name} = {v} outside {lo}..{hi}")
        return v

    def _str_attr(self, h5: h5py.File, name: str) -> str:
        if name not in h5.attrs:
            raise self._err("StructureError", "open", f"root attribute {name} missing")
        value = h5.attrs[name]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            raise self._err("StructureError", "open", f"root attribute {name} is not a string")
        return value

    def _dataset(self, h5: h5py.File, path: str, dtype: str | None, shape: tuple[int, ...] | None
                 ) -> h5py.Dataset:
        obj = h5.get(path)
        if not isinstance(obj, h5py.Dataset):
            raise self._err("StructureError", "open", f"dataset /{path} missing")
        if dtype is not None and obj.dtype != np.dtype(dtype):
            raise self._err("StructureError", "open", f"/{path} has dtype {obj.dtype}, not {dtype}")
        if shape is not None and obj.shape != shape:
            raise self._err("StructureError", "open", f"/{path} has shape {obj.shape}, not {shape}")
        if dtype is not None and shape is None and obj.ndim != 1:
            raise self._err("StructureError", "open", f"/{path} is not 1-D")
        if "crc32" not in obj.attrs:
            raise self._err("StructureError", "open", f"/{path} has no crc32 attribute")
        return obj

    def _checked(self, h5: h5py.File, path: str, dtype: str, shape: tuple[int, ...] | None) -> np.ndarray:
        ds = self._dataset(h5, path, dtype, shape)
        values = np.asarray(ds[()])
        if crc32(values) != int(ds.attrs["crc32"]):
            raise self._err("ChecksumMismatchError", "open", f"/{path}: CRC-32 differs from its crc32 attribute")
        return values

    def _json(self, h5: h5py.File, path: str) -> Any:
        blob = self._checked(h5, path, "u1", None)
        try:
            return json.loads(blob.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._err("StructureError", "open", f"/{path} is not UTF-8 JSON") from None

    # -- §10: open ---------------------------------------------------------------------
    def _open(self) -> None:
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as fh:
                head = fh.read(4096)
        except OSError as exc:
            raise self._err("NotADcqFileError", "open", f"cannot read ({exc})") from None
        if size == 0 or not head.startswith(HDF5_SIGNATURE):  # §10.1
            raise self._err("NotADcqFileError", "open", "empty or no HDF5 signature")
        eof = hdf5_eof_address(head)
        if eof is None:
            raise self._err("NotADcqFileError", "open", "no readable HDF5 superblock")
        if size < eof:  # §10.2
            raise self._err("TruncatedFileError", "open", f"{size} bytes, the superblock says {eof}")
        with open(self.path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            endless = endless_hdf5_walk(data)
        if endless is not None:  # §10.14, before HDF5 walks anything
            raise self._err("StructureError", "open", f"{endless}; HDF5 would never finish walking it")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise self._err("NotADcqFileError", "open", f"HDF5 cannot open it ({exc})") from None
        with h5:
            self._read_metadata(h5, size)

    def _check_links(self, h5: h5py.File) -> None:
        """§4, §10.11: every link is a hard link; checked before any object is opened by name
        (h5py's link visit does not follow soft or external links)."""
        found: list[tuple[str, int]] = []

        def visit(name: bytes, info: Any) -> int | None:
            if info.type != h5py.h5l.TYPE_HARD:
                found.append((name.decode("utf-8", "replace"), int(info.type)))
                return 1
            return None

        h5.id.links.visit(visit, info=True)
        if found:
            raise self._err("StructureError", "open", f"/{found[0][0]} is a link of type {found[0][1]}, not a hard link")

    def _contiguous(self, ds: h5py.Dataset, path: str) -> None:
        dcpl = ds.id.get_create_plist()
        if (dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters()
                or dcpl.get_external_count()):
            raise self._err("StructureError", "open", f"/{path} is not contiguous without filters")

    def _classes(self, h5: h5py.File, num_classes: int) -> list[str]:
        """§4, §10.13: /classes, variable-length UTF-8 strings, contiguous, names non-empty,
        without newline or NUL, unique."""
        ds = self._dataset(h5, "classes", None, (num_classes,))
        info = h5py.check_string_dtype(ds.dtype)
        if info is None or info.length is not None:
            raise self._err("StructureError", "open", "/classes is not a variable-length string dataset")
        self._contiguous(ds, "classes")
        raw = [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in ds[()]]
        if crc32(b"\n".join(raw)) != int(ds.attrs["crc32"]):
            raise self._err("ChecksumMismatchError", "open", "/classes: CRC-32 differs")
        try:
            names = [v.decode("utf-8") for v in raw]
        except UnicodeDecodeError:
            raise self._err("StructureError", "open", "a class name is not UTF-8") from None
        if any(not n or "\n" in n or "\0" in n for n in names) or len(set(names)) != len(names):
            raise self._err("StructureError", "open", f"class names {names!r} break the rules of §4")
        return names

    def _read_metadata(self, h5: h5py.File, file_size: int) -> None:
        self._check_links(h5)
        if "dcq_format" not in h5.attrs or self._str_attr(h5, "dcq_format") != "dcq":  # §10.1
            raise self._err("NotADcqFileError", "open", "dcq_format is not 'dcq'")
        if "dcq_version" not in h5.attrs:
            raise self._err("StructureError", "open", "dcq_version missing")
        version = np.asarray(h5.attrs["dcq_version"])
        if version.shape != (2,) or version.dtype.kind not in "iu":
            raise self._err("StructureError", "open", "dcq_version is not two integers")
        if int(version[0]) != KNOWN_MAJOR:  # §10.3
            raise self._err("UnsupportedVersionError", "open",
                            f"version {int(version[0])}.{int(version[1])}, this reader reads {KNOWN_MAJOR}.x")
        if "must_understand" not in h5.attrs:
            raise self._err("StructureError", "open", "must_understand missing")
        features = [f.decode() if isinstance(f, bytes) else str(f)
                    for f in np.asarray(h5.attrs["must_understand"]).ravel()]
        unknown = sorted(set(features) - KNOWN_FEATURES)
        if unknown:
            raise self._err("UnsupportedVersionError", "open", f"unknown must-understand features {unknown}")
        # §3, §10.4
        self.bits = q = self._int_attr(h5, "bits", 1, 8)
        self.channels = ch = self._int_attr(h5, "channels", 1, 3)
        if ch == 2:
            raise self._err("StructureError", "open", "channels = 2")
        self.palette_size = k = self._int_attr(h5, "palette_size", 1, 1 << q)
        n = self._int_attr(h5, "num_samples", 0, 2**63)
        c = self._int_attr(h5, "num_clusters", 1, 2**32)
        num_classes = self._int_attr(h5, "num_classes", 1, 2**32)
        self.encoding = self._str_attr(h5, "payload_encoding")
        if self.encoding not in ("raw", "zstd", "ctx"):
            raise self._err("StructureError", "open", f"payload_encoding {self.encoding!r}")
        if n > file_size:  # guard allocations: a sample needs at least one stored byte
            raise self._err("StructureError", "open", f"num_samples {n} > file size")
        # §4 datasets
        self.classes = self._classes(h5, num_classes)
        self._contiguous(self._dataset(h5, "palettes", "u1", (c, k, ch)), "palettes")
        self.palettes = self._checked(h5, "palettes", "u1", (c, k, ch))
        # Kept as Python ints: no fixed-width overflow in H*W or offset + length.
        self.samples = {name: [int(v) for v in self._checked(h5, f"samples/{name}", dt, (n,))]
                        for name, dt in SAMPLE_DTYPES.items()}
        payload = self._dataset(h5, "payload", "u1", None)
        dcpl = payload.id.get_create_plist()
        if (dcpl.get_layout() != h5py.h5d.CONTIGUOUS or dcpl.get_nfilters()
                or dcpl.get_external_count()):
            raise self._err("StructureError", "open", "/payload is not contiguous without filters")
        self.payload_size = int(payload.shape[0])
        self.payload_crc = int(payload.attrs["crc32"])
        offset = payload.id.get_offset()
        if self.payload_size and (offset is None or int(offset) + self.payload_size > file_size):
            raise self._err("TruncatedFileError", "open", "the payload extends past the end of the file")
        self.payload = payload[()].tobytes() if self.payload_size else b""
        self.provenance = self._json(h5, "provenance")
        if not isinstance(self.provenance, dict):
            raise self._err("StructureError", "open", "/provenance is not a JSON object")
        self.source_paths: list[str] | None = None
        if "sources" in h5:
            blob = self._checked(h5, "sources/path", "u1", None)
            try:
                text = blob.tobytes().decode("utf-8")
            except UnicodeDecodeError:
                raise self._err("StructureError", "open", "/sources/path is not UTF-8") from None
            self.source_paths = text.split("\n") if n else []
            if len(self.source_paths) != n:
                raise self._err("StructureError", "open", "/sources/path does not hold N paths")
            self.source_sizes = self._checked(h5, "sources/size", "<i8", (n,))
        self.selections: dict[str, dict[str, Any]] = {}
        for name in h5.get("selections", {}):
            entry: dict[str, Any] = {}
            for part in ("ranking", "selected"):
                arr = self._checked(h5, f"selections/{name}/{part}", "<i8", None)
                if arr.size and (arr.min() < 0 or arr.max() >= n):  # §10.8
                    raise self._err("StructureError", "open", f"selection {name} {part} outside 0..N-1")
                entry[part] = arr
            entry["attrs"] = self._json(h5, f"selections/{name}/attrs")
            self.selections[name] = entry
        self.n = n
        self.original_sizes = self._original_sizes(h5, n)
        self.masks: dict[str, Any] | None = None
        if "patch-mask" in features:  # §13 (otherwise /masks, if any, is ignored: §9)
            self._read_masks(h5)
        self._check_samples(num_classes, c)
        self.ctx: dict[str, Any] | None = None
        if ("ctx-payload" in features) != (self.encoding == "ctx"):  # §14
            raise self._err("StructureError", "open", "payload_encoding ctx and feature ctx-payload disagree")
        if self.encoding == "ctx":
            self._read_ctx(h5, c)

    # -- §15: original sizes ------------------------------------------------------------
    def _original_sizes(self, h5: h5py.File, n: int) -> list[tuple[int, int]] | None:
        """(H0, W0) per sample from /samples/original_height and _width, or None if absent."""
        names = ("original_height", "original_width")
        present = [f"samples/{name}" in h5 for name in names]
        if not any(present):
            return None
        if not all(present):
            raise self._err("StructureError", "open", "only one of the original-size datasets")
        cols = [self._checked(h5, f"samples/{name}", "<u4", (n,)) for name in names]
        for name, col in zip(names, cols, strict=True):
            if col.size and (int(col.min()) < 1 or int(col.max()) > 1 << 24):
                raise self._err("StructureError", "open", f"/samples/{name} outside 1..2**24")
        return [(int(h), int(w)) for h, w in zip(cols[0], cols[1], strict=True)]

    # -- §14: ctx payload ----------------------------------------------------------------
    def _read_ctx(self, h5: h5py.File, num_clusters: int) -> None:
        """§14.1: the model of /ctx (``independent_ctx``); a broken rule is a StructureError."""
        try:
            self.ctx = read_ctx_model(h5, num_clusters, self.palette_size, self.samples["length"],
                                      self._dataset, self._checked)
        except CtxRuleError as exc:
            raise self._err("StructureError", "open", str(exc)) from None

    def _rects(self, i: int) -> list[tuple[int, int]]:
        """§14.1: the whole image, or the kept patches of §13 in increasing g."""
        if self.masks is None:
            return [(self.samples["height"][i], self.samples["width"][i])]
        return [(r.stop - r.start, c.stop - c.start) for kept, r, c in self._patches(i) if kept]

    def _ctx_indices(self, i: int, stored: bytes, stage: str) -> np.ndarray:
        """§14.2-§14.4: decode sample i's stream, pixel by pixel (``independent_ctx``)."""
        assert self.ctx is not None
        model = self.samples["cluster"][i] if self.ctx["per_cluster"] else 0
        try:
            return decode_stream(stored, self._rects(i), self.ctx["row"], model, self.palette_size)
        except CtxRuleError as exc:
            raise self._err("PayloadError", stage, f"sample {i}: ctx stream: {exc}") from None

    # -- §13: patch masks ----------------------------------------------------------------
    def _read_masks(self, h5: h5py.File) -> None:
        """§13: /masks (``independent_masks``); a broken rule is a StructureError."""
        try:
            self.masks = read_masks(h5, self.samples["height"], self.samples["width"],
                                    self.palette_size, self._checked)
        except MaskRuleError as exc:
            raise self._err("StructureError", "open", str(exc)) from None

    def _patches(self, i: int) -> list[tuple[bool, slice, slice]]:
        """Sample i's patches in increasing g: (kept, rows, columns), clipped at the border."""
        assert self.masks is not None
        return patches(self.masks["patch_size"], self.masks["keep"][i],
                       self.samples["height"][i], self.samples["width"][i])
    def stored_pixels(self, i: int) -> int:
        """§5 H*W, or §13 S_i (the kept pixels) in a masked file."""
        if self.masks is None:
            return int(self.samples["height"][i]) * int(self.samples["width"][i])
        return int(self.masks["kept_pixels"][i])

    def _check_samples(self, num_classes: int, c: int) -> None:  # §10.6
        s = self.samples
        h, w = s["height"], s["width"]
        for i in range(self.n):
            if not (1 <= h[i] <= MAX_SIDE and 1 <= w[i] <= MAX_SIDE) or h[i] * w[i] > MAX_PIXELS:
                raise self._err("StructureError", "open", f"sample {i}: size {h[i]}x{w[i]}")
            if s["label"][i] >= num_classes:
                raise self._err("StructureError", "open", f"sample {i}: label {s['label'][i]}")
            if s["cluster"][i] >= c:
                raise self._err("StructureError", "open", f"sample {i}: cluster {s['cluster'][i]}")
            off, length = s["offset"][i], s["length"][i]
            if off + length > self.payload_size:
                raise self._err("StructureError", "open", f"sample {i}: bytes {off}+{length} past the payload")
            need = (self.stored_pixels(i) * self.bits + 7) // 8
            if self.encoding == "raw" and length != need:
                raise self._err("StructureError", "open", f"sample {i}: raw length {length} != {need}")

    # -- §7: decoding ------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    def packed(self, i: int, *, stage: str = "read", check_crc: bool | None = None) -> bytes:
        """The packed index map of sample ``i`` (§6), after its checks."""
        s = self.samples
        off, length = int(s["offset"][i]), int(s["length"][i])
        stored = self.payload[off:off + length]
        if (self.check_crc if check_crc is None else check_crc) and crc32(stored) != int(s["crc32"][i]):
            raise self._err("ChecksumMismatchError", stage, f"sample {i}: CRC-32 differs")
        need = (self.stored_pixels(i) * self.bits + 7) // 8
        if self.encoding == "raw":
            return stored
        if self.encoding == "ctx":  # §14: re-pack the decoded indices as §5 describes
            idx = self._ctx_indices(i, stored, stage)
            bits = ((idx[:, None] >> np.arange(self.bits)) & 1).astype(np.uint8).reshape(-1)
            return np.packbits(bits, bitorder="little").tobytes()
        try:
            declared = zstd_declared_size(stored)
        except ValueError as exc:
            raise self._err("PayloadError", stage, f"sample {i}: {exc}") from None
        if declared != need:  # checked before anything is allocated
            raise self._err("PayloadError", stage, f"sample {i}: frame declares {declared}, needs {need}")
        dobj = zstandard.ZstdDecompressor().decompressobj()
        try:
            raw = dobj.decompress(stored)
        except zstandard.ZstdError as exc:
            raise self._err("PayloadError", stage, f"sample {i}: corrupt frame ({exc})") from None
        if len(raw) != need or not dobj.eof or dobj.unused_data:
            raise self._err("PayloadError", stage, f"sample {i}: not exactly one frame of {need} bytes")
        return raw

    def sample(self, i: int, *, stage: str = "read", check_crc: bool | None = None
               ) -> tuple[np.ndarray, int]:
        """(pixels uint8 H×W×ch, label) of sample ``i``."""
        if not 0 <= i < self.n:
            raise IndexError(i)
        s = self.samples
        h, w = int(s["height"][i]), int(s["width"][i])
        n_stored = self.stored_pixels(i)
        idx = unpack(self.packed(i, stage=stage, check_crc=check_crc), n_stored, self.bits)
        if idx.size and int(idx.max()) >= self.palette_size:  # §5, §10.7
            raise self._err("PayloadError", stage, f"sample {i}: index {int(idx.max())} >= K")
        palette = self.palettes[int(s["cluster"][i])]
        if self.masks is None:
            pixels = palette[idx].reshape(h, w, self.channels)
            return pixels.astype(np.uint8), int(s["label"][i])
        pixels = np.zeros((h, w, self.channels), dtype=np.uint8)  # §13: walk the patches
        pos, fills = 0, iter(self.masks["fill"][i])
        for kept, rows, cols in self._patches(i):
            if kept:
                n = (rows.stop - rows.start) * (cols.stop - cols.start)
                pixels[rows, cols] = palette[idx[pos:pos + n]].reshape(rows.stop - rows.start, -1, self.channels)
                pos += n
            else:
                pixels[rows, cols] = palette[next(fills)]
        return pixels, int(s["label"][i])

    # -- §8: verification ----------------------------------------------------------------
    def verify(self) -> None:
        """§8: the /payload CRC, then every sample read with its CRC checked and its padding
        bits zero."""
        if crc32(self.payload) != self.payload_crc:
            raise self._err("ChecksumMismatchError", "verify", "/payload: CRC-32 differs")
        for i in range(self.n):
            n_bits = self.stored_pixels(i) * self.bits
            packed = self.packed(i, stage="verify", check_crc=True)
            if n_bits % 8 and packed[-1] >> (n_bits % 8):
                raise self._err("StructureError", "verify", f"sample {i}: non-zero padding bits")
            self.sample(i, stage="verify", check_crc=True)


def check(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """Open, read every sample and verify; return (family, stage) of the first failure."""
    try:
        r = IndependentReader(path)
        for i in range(len(r)):
            r.sample(i)
        r.verify()
    except SpecError as exc:
        return exc.family, exc.stage
    return None


def main(argv: list[str] | None = None) -> int:
    """Verify and summarise each file given; 2 if one breaks the spec, 1 with no file."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__)
        return 1
    status = 0
    for p in paths:
        try:
            r = IndependentReader(p)
            for i in range(len(r)):
                r.sample(i)
            r.verify()
        except SpecError as exc:
            print(f"{p}: {exc.family} at {exc.stage}: {exc}")
            status = 2
            continue
        print(f"{Path(p).name}: OK, {len(r)} samples, q={r.bits}, ch={r.channels}, K={r.palette_size}, "
              f"{r.palettes.shape[0]} palettes, {r.encoding}, classes {r.classes}")
    return status


if __name__ == "__main__":
    sys.exit(main())
