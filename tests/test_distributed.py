"""torchrun mode on one machine: 2 gloo processes (torch.multiprocessing.spawn) give the
single-process file; a failing rank fails the whole job and leaves nothing behind (issue #8)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch.multiprocessing as mp
from test_encode_support import QUICK, make_folder
from test_merge import provenance_differs_only_as_documented, same_content

from dcqformat.encode.pipeline import convert
from dcqformat.format.reader import DCQFile

KW = {**QUICK, "threads": 1, "batch_size": 4}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(rank: int, world: int, port: int, src: str, dst: str, fail: str | None,
          extra: dict[str, Any]) -> None:
    """One torchrun-like rank (the environment torchrun would set)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from dcqformat.encode.drivers import torchrun
    from dcqformat.encode.stages import analyse
    from dcqformat.format.reader import DCQFile as File

    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(f"injected failure on rank {rank}")

    if fail == "analyse" and rank == 1:
        analyse.image_palettes = boom  # type: ignore[attr-defined]
    if fail == "merge" and rank == 0:
        File.index_map = boom  # type: ignore[method-assign]  # the merge reads shards through it
    torchrun.convert_distributed(src, dst, timeout_s=120, **KW, **extra)


def _job(src: Path, dst: Path, fail: str | None = None, **extra: Any) -> None:
    mp.spawn(_rank, args=(2, _free_port(), str(src), str(dst), fail, extra), nprocs=2, join=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = make_folder(tmp_path_factory.mktemp("dist") / "src", per_class=6)
    return src


def test_two_gloo_ranks_equal_the_single_process_run(folder: Path, tmp_path: Path) -> None:
    convert(folder, tmp_path / "single.dcq", **KW)
    _job(folder, tmp_path / "dist.dcq")
    single, dist = DCQFile(tmp_path / "single.dcq"), DCQFile(tmp_path / "dist.dcq")
    same_content(single, dist)
    provenance_differs_only_as_documented(single.provenance, dist.provenance)
    scale = dist.provenance["scale_out"]
    assert scale["mode"] == "torchrun" and scale["world_size"] == 2 and scale["backend"] == "gloo"
    sent = scale["collective_bytes_sent"]
    assert sent[0]["train"] > 100_000  # rank 0 broadcasts the proxy's ~0.1 M float32 weights
    assert "train" not in sent[1] and sent[1]["analyse"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist.dcq", "single.dcq"]  # shards gone


@pytest.mark.parametrize("phase", ["analyse", pytest.param("merge", marks=pytest.mark.slow)])
def test_a_failing_rank_fails_the_job_without_output(folder: Path, tmp_path: Path, phase: str) -> None:
    with pytest.raises(mp.ProcessRaisedException) as info:
        _job(folder, tmp_path / "dist.dcq", fail=phase)
    msg = str(info.value)
    assert "injected failure" in msg or "RankFailedError" in msg
    assert list(tmp_path.iterdir()) == []  # no DST, no shard, no temporary file


@pytest.mark.slow
def test_torchrun_fit_only_then_shards(folder: Path, tmp_path: Path) -> None:
    """--fit-only under torchrun writes the same state as one process; shards of it merge to
    the single-process file."""
    from dcqformat.encode.state import FitState
    from dcqformat.format.merge import merge_shards

    _job(folder, tmp_path / "state.npz", fit_only=True)
    convert(folder, tmp_path / "one.npz", fit_only=True, **KW)
    st, one = FitState.load(tmp_path / "state.npz"), FitState.load(tmp_path / "one.npz")
    assert st.digest() == one.digest()
    for i in range(2):
        convert(folder, tmp_path / f"s{i}.dcq", state=st, shard=f"{i}/2", **{**KW, **st.convert_kwargs()})
    merge_shards([tmp_path / "s0.dcq", tmp_path / "s1.dcq"], tmp_path / "m.dcq")
    convert(folder, tmp_path / "single.dcq", **KW)
    same_content(DCQFile(tmp_path / "single.dcq"), DCQFile(tmp_path / "m.dcq"))
