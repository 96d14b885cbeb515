"""The encoder's output is pinned: the digests of what commit 6f8411e wrote (issue #11).

``tests/data/output_digests.json`` holds :mod:`tools.output_digest` digests (decoded pixels,
clusters, palettes, sample order) of the digits demo and of emoji64 at q = 1 and 2. A refactor
must reproduce them exactly; a deliberate change of the encoder's output updates them in the
same commit as its measured train-probe table.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = json.loads((ROOT / "tests" / "data" / "output_digests.json").read_text())
EMOJI = ROOT.parent / "shared" / "data" / "emoji64"


def _digest(path: Path) -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("output_digest", ROOT / "tools" / "output_digest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("output_digest", mod)
    spec.loader.exec_module(mod)
    got = mod.output_digest(str(path))
    got.pop("file")
    return got


def _expected(name: str) -> dict[str, object]:
    """The pinned digests for this machine's torch CPU capability: the proxy model's float
    reductions, and so the encoder's output, differ between vector widths (AVX2 and AVX512 give
    different files from the same command), so each capability has its own record of the same
    commit's output; on one with none the test cannot say and skips."""
    cap = torch.backends.cpu.get_cpu_capability()
    if cap == DIGESTS["torch_cpu_capability"]:
        return DIGESTS[name]  # type: ignore[no-any-return]
    other = DIGESTS.get("by_torch_cpu_capability", {}).get(cap)
    if other is None:
        pytest.skip(f"no digests recorded for torch CPU capability {cap} "
                    f"(recorded: {', '.join(_recorded())})")
    return other[name]  # type: ignore[no-any-return]


def _recorded() -> list[str]:
    return [DIGESTS["torch_cpu_capability"], *DIGESTS.get("by_torch_cpu_capability", {})]


def _check(name: str, path: Path) -> None:
    got = _digest(path)
    want = _expected(name)
    cap = torch.backends.cpu.get_cpu_capability()
    assert got == want, f"{name}: the encoder's output changed (torch CPU capability {cap})"


def test_digits_demo_output_is_unchanged(tmp_path: Path) -> None:
    from dcqformat.encode.demo import run_demo

    res = run_demo(tmp_path / "demo", progress=False, print_fn=lambda *_a: None)
    _check("digits_demo_q2", Path(res["dcq"]))


@pytest.mark.slow
@pytest.mark.skipif(not EMOJI.is_dir(), reason="needs ../shared/data/emoji64")
@pytest.mark.parametrize("bits", [1, 2])
def test_emoji64_output_is_unchanged(tmp_path: Path, bits: int) -> None:
    from dcqformat.encode.pipeline import convert

    dst = tmp_path / f"e64q{bits}.dcq"
    convert(EMOJI, dst, bits=bits, progress=False)
    _check(f"emoji64_q{bits}", dst)
