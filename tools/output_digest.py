"""The digest of what a ``.dcq`` file decodes to: the regression anchor for encoder refactors.

``python tools/output_digest.py FILE.dcq [...]`` prints one JSON line per file with SHA-256
digests of

``pixels``    every sample's decoded uint8 HWC pixels, in file order (shape included)
``clusters``  the per-sample palette ids (int64)
``palettes``  the stored palettes (uint8 [C, K, channels])
``order``     the per-sample labels, class names and source paths, in file order
``all``       the four above together

Provenance (timings, versions, paths of temporary folders) is deliberately left out: two files
with equal digests decode to the same images, in the same order, with the same labels, clusters
and palettes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

import numpy as np

from dcqformat.format.reader import DCQFile


def output_digest(path: str) -> dict[str, Any]:
    """Digests (hex SHA-256) of the decoded pixels, clusters, palettes and sample order."""
    with DCQFile(path) as f:
        pix = hashlib.sha256()
        for i in range(len(f)):
            img = f.decode(i)
            pix.update(repr(img.shape).encode())
            pix.update(np.ascontiguousarray(img).tobytes())
        clusters = hashlib.sha256(np.asarray(f.clusters, np.int64).tobytes()).hexdigest()
        palettes = hashlib.sha256(np.ascontiguousarray(f.palettes).tobytes()).hexdigest()
        order = hashlib.sha256(json.dumps({
            "labels": np.asarray(f.labels).tolist(), "classes": list(f.classes),
            "source_paths": f.source_paths,
        }).encode()).hexdigest()
        out = {"file": path, "samples": len(f), "bits": f.bits, "channels": f.channels,
               "pixels": pix.hexdigest(), "clusters": clusters, "palettes": palettes,
               "order": order}
    out["all"] = hashlib.sha256("|".join(
        out[k] for k in ("pixels", "clusters", "palettes", "order")).encode()).hexdigest()
    return out


def main(argv: list[str] | None = None) -> int:
    """Print one JSON line of digests per file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", metavar="FILE")
    args = ap.parse_args(argv)
    for p in args.files:
        print(json.dumps(output_digest(p), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
