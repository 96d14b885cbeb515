"""The ctx encoding on real data (emoji64 as ``convert`` writes it by default). Marked slow;
skipped when the shared data folder is absent (a fresh clone has none)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_encode_support import EMOJI, need

from dcqformat import DCQFile, DCQWriter

pytestmark = pytest.mark.slow


def _rewrite(f: DCQFile, path: Path, encoding: str) -> DCQFile:
    with DCQWriter(path, f.bits, f.channels, f.classes, payload_encoding=encoding) as w:
        w.set_palettes(np.asarray(f.palettes))
        paths, sizes = f.source_paths, f.source_sizes
        for i in range(len(f)):
            w.add_sample(f.index_map(i), int(f.clusters[i]), int(f.labels[i]),
                         source_path=None if paths is None else paths[i],
                         source_size=None if sizes is None else int(sizes[i]))
        w.set_provenance(f.provenance)
    return DCQFile(path)


def test_emoji64_default_file_is_ctx_and_small(tmp_path: Path) -> None:
    """Issue #12's size bar: the default emoji64 q = 2 file is at most 150 B per image, all
    metadata counted, and decodes to the zstd file's pixels."""
    need(EMOJI)
    from dcqformat.encode.pipeline import convert
    out = tmp_path / "e.dcq"
    convert(EMOJI, out, bits=2, progress=False)
    f = DCQFile(out)
    assert f.payload_encoding == "ctx" and f.version == (1, 2)
    assert out.stat().st_size / len(f) <= 150
    z = _rewrite(f, tmp_path / "z.dcq", "zstd")
    assert out.stat().st_size < 0.55 * (tmp_path / "z.dcq").stat().st_size
    for i in range(len(f)):
        np.testing.assert_array_equal(f[i][0], z[i][0])
    batch = f.decode_batch(np.arange(0, len(f), 5), "chw")
    for b, i in enumerate(range(0, len(f), 5)):
        np.testing.assert_array_equal(batch[b], z.decode(i, "chw"))
    f.verify()
    costs = f.info()["encoding_costs"]
    assert costs["ctx"] < costs["zstd"] < costs["raw"]
