"""convert() end to end on tiny ImageFolders cut from real photographs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_encode_support import QUICK, make_folder, psnr, tree_digest

from dcqformat.encode import pipeline
from dcqformat.encode.images import LoadOptions, load_image, to_channels
from dcqformat.encode.pipeline import ConvertSummary, convert
from dcqformat.encode.scan import scan_image_folder
from dcqformat.encode.stages import write as write_stage
from dcqformat.errors import InputImageError, InvalidArgumentError, WriteError
from dcqformat.format.reader import DCQFile

FAST = {**QUICK, "threads": 1}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("pipe")
    src = make_folder(base / "src", per_class=6, rgba=True)
    before = tree_digest(src)
    out = base / "out" / "a.dcq"
    out.parent.mkdir()
    summary = convert(src, out, **FAST)
    return {"src": src, "out": out, "summary": summary, "before": before, "base": base}


def _originals(src: Path, channels: int) -> list[np.ndarray]:
    return [to_channels(load_image(e.path, LoadOptions()), channels)
            for e in scan_image_folder(src).entries]


def test_file_decodes_with_the_right_structure(converted: dict[str, Any]) -> None:
    f = DCQFile(converted["out"])
    listing = scan_image_folder(converted["src"])
    assert len(f) == 18 and f.bits == 2 and f.channels == 3
    assert list(f.classes) == list(listing.classes)
    assert f.palettes.shape == (3, 4, 3) and f.palettes.dtype == np.uint8
    assert list(f.labels) == [e.label for e in listing.entries]
    assert set(np.unique(f.clusters)) <= {0, 1, 2}
    assert f.source_paths == [e.relpath for e in listing.entries]
    assert {f[i][0].shape for i in range(len(f))} == {(32, 32, 3), (32, 40, 3)}
    f.verify()


def test_quality_beats_a_one_colour_baseline(converted: dict[str, Any]) -> None:
    f = DCQFile(converted["out"])
    ours, base = [], []
    for i, orig in enumerate(_originals(converted["src"], 3)):
        dec, _ = f[i]
        ours.append(psnr(dec, orig))
        flat = np.broadcast_to(np.rint(orig.reshape(-1, 3).mean(0)), orig.shape)
        base.append(psnr(flat, orig))
    s: ConvertSummary = converted["summary"]
    assert np.mean(ours) == pytest.approx(s.psnr_mean_db, abs=1e-6)
    assert np.mean(ours) > np.mean(base) + 3.0
    # palettes are looked up exactly: decode == palette[cluster][nearest index]
    assert s.images == 18 and s.file_bytes == converted["out"].stat().st_size
    assert s.ratio_vs_raw == pytest.approx(s.raw_pixel_bytes / s.file_bytes)
    assert set(s.stage_seconds) == set(pipeline.STAGES)
    assert "smaller than raw pixels" in s.format()


def test_source_tree_untouched(converted: dict[str, Any]) -> None:
    assert tree_digest(converted["src"]) == converted["before"]
    assert sorted(p.name for p in converted["out"].parent.iterdir()) == ["a.dcq"]  # no temp files


def test_provenance(converted: dict[str, Any]) -> None:
    prov = DCQFile(converted["out"]).provenance
    listing = scan_image_folder(converted["src"])
    assert prov["source"]["listing_sha256"] == listing.listing_hash
    assert prov["parameters"]["bits"] == 2 and prov["parameters"]["seed"] == 0
    assert prov["parameters"]["clusters_used"] == 3
    assert prov["model"]["kind"] == "proxy" and len(prov["model"]["sha256"]) == 64
    assert prov["model"]["gradcam_target"] == "label"
    assert prov["skipped"] == []
    import torch

    assert prov["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    from dcqformat.format.info import format_report, storage_report

    text = format_report(storage_report(DCQFile(converted["out"])))
    assert f"CPU capability {prov['torch_cpu_capability']}" in text


def test_same_seed_gives_a_byte_identical_file(converted: dict[str, Any]) -> None:
    again = converted["base"] / "again.dcq"
    convert(converted["src"], again, **FAST)
    assert again.read_bytes() == converted["out"].read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "n_palettes"),
    [({"palette": "image"}, 18), ({"palette": "global"}, 1), ({"attention": False}, 3),
     ({"refine": False}, 3), ({"palette": "global", "attention": False, "bits": 1}, 1)],
)
def test_ablations(converted: dict[str, Any], tmp_path: Path, kwargs: dict[str, Any],
                   n_palettes: int) -> None:
    out = tmp_path / "x.dcq"
    s = convert(converted["src"], out, **{**FAST, **kwargs})
    f = DCQFile(out)
    k = 1 << kwargs.get("bits", 2)
    assert f.palettes.shape == (n_palettes, k, 3) and s.palettes == n_palettes
    assert s.psnr_mean_db > 12.0
    prov = f.provenance
    assert prov["parameters"]["palette"] == kwargs.get("palette", "cluster")
    if kwargs.get("palette") == "global" and kwargs.get("attention") is False:
        assert prov["model"]["kind"].startswith("none")  # no model needed, none trained
    if kwargs.get("palette") == "image":
        assert list(f.clusters) == list(range(18))


def test_grey_dataset_is_stored_with_one_channel(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "g", per_class=3, grey=True)
    s = convert(src, tmp_path / "g.dcq", **FAST)
    f = DCQFile(tmp_path / "g.dcq")
    assert s.channels == 1 and f.channels == 1 and f.palettes.shape[2] == 1
    origs = _originals(src, 1)
    assert np.mean([psnr(f[i][0], o) for i, o in enumerate(origs)]) > 15


def _add_bad_files(src: Path) -> list[str]:
    good = next((src / "coffee").glob("*.png"))
    (src / "coffee" / "zz_empty.png").write_bytes(b"")
    (src / "chelsea" / "zz_junk.jpg").write_bytes(b"definitely not a jpeg")
    (src / "astronaut" / "zz_trunc.png").write_bytes(good.read_bytes()[:300])
    return ["astronaut/zz_trunc.png", "chelsea/zz_junk.jpg", "coffee/zz_empty.png"]


def test_on_error_skip_lists_the_skipped_files(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "s", per_class=3)
    bad = _add_bad_files(src)
    s = convert(src, tmp_path / "s.dcq", on_error="skip", **FAST)
    assert sorted(x["path"] for x in s.skipped) == bad
    assert all(x["error"] for x in s.skipped)
    f = DCQFile(tmp_path / "s.dcq")
    assert len(f) == 9
    assert sorted(x["path"] for x in f.provenance["skipped"]) == bad
    assert not any(p.endswith("zz_empty.png") for p in f.source_paths or [])
    assert "skipped 3 unreadable file(s)" in s.format()


def test_on_error_fail_names_the_file_and_writes_nothing(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "s", per_class=3)
    _add_bad_files(src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputImageError, match=r"zz_"):
        convert(src, out_dir / "s.dcq", **FAST)
    assert list(out_dir.iterdir()) == []


def test_interrupt_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_folder(tmp_path / "s", per_class=3)
    calls = {"n": 0}
    real = write_stage.assign_batch

    def flaky(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:  # mid-write: some samples are already in the writer's spool
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(write_stage, "assign_batch", flaky)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(KeyboardInterrupt):
        convert(src, out_dir / "s.dcq", **FAST)
    assert list(out_dir.iterdir()) == []


def test_argument_checks(converted: dict[str, Any], tmp_path: Path) -> None:
    src = converted["src"]
    with pytest.raises(InvalidArgumentError, match="inside the source folder"):
        convert(src, src / "astronaut" / "x.dcq", **FAST)
    with pytest.raises(InvalidArgumentError, match="exists"):
        convert(src, converted["out"], **FAST)
    for kwargs, msg in [({"bits": 9}, "bits"), ({"palette": "kmeans"}, "palette"),
                        ({"on_error": "ignore"}, "on_error"), ({"clusters": 0}, "clusters"),
                        ({"background": "puce"}, "background"),
                        ({"payload_encoding": "lz4"}, "payload_encoding"),
                        # torch.set_num_threads takes any C int and libgomp aborts on 2**31 - 1;
                        # 10**30 was an OverflowError's ValueError from torch
                        ({"threads": 10**30}, r"threads must be in \[1, 1024\]"),
                        ({"threads": 2**31 - 1}, "threads"), ({"threads": 1025}, "threads"),
                        # torch.manual_seed takes at most 2**64 - 1 (ValueError beyond)
                        ({"seed": 2**64}, r"seed must be in \[0, 18446744073709551615\]")]:
        with pytest.raises(InvalidArgumentError, match=msg):
            convert(src, tmp_path / "y.dcq", **{**FAST, **kwargs})
    for a, b, name in (("", tmp_path / "y.dcq", "src"), (src, "", "dst")):  # was "output '.' exists"
        with pytest.raises(InvalidArgumentError, match=f"{name} must be a non-empty text path"):
            convert(a, b, **FAST)
    fifo = tmp_path / "fifo.dcq"  # --force replaces a file, not a FIFO or /dev/null: up front
    os.mkfifo(fifo)
    with pytest.raises(WriteError, match="is a FIFO"):
        convert(src, fifo, **{**FAST, "overwrite": True})
    loop = tmp_path / "loop.dcq"  # was a RuntimeError from Path.resolve (the inside-SRC check)
    os.symlink(loop, loop)
    with pytest.raises(InvalidArgumentError, match="loop.dcq' exists"):
        convert(src, loop, **FAST)
    convert(src, loop, **{**FAST, "overwrite": True})  # replaces the link itself, like mv
    assert not os.path.islink(loop) and len(DCQFile(loop)) == len(DCQFile(converted["out"]))
    assert tree_digest(src) == converted["before"]


def test_user_module_as_task_model(converted: dict[str, Any], tmp_path: Path) -> None:
    import torch
    from torch import nn

    from dcqformat.encode.model import TaskModel

    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("stem", nn.Conv2d(3, 8, 3, padding=1))
    net.add_module("block", nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()))
    net.add_module("pool", nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc", nn.Linear(8, 5))  # 5 outputs != 3 classes: Grad-CAM uses top-1
    task = TaskModel(net.eval(), "stem", "block", (24, 24))
    s = convert(converted["src"], tmp_path / "u.dcq", **{**FAST, "model": task})
    prov = DCQFile(tmp_path / "u.dcq").provenance
    assert prov["model"]["kind"] == "module" and prov["model"]["gradcam_target"] == "predicted"
    assert s.images == 18


def test_force_replaces_an_existing_output(tmp_path: Path) -> None:
    src = make_folder(tmp_path / "s", per_class=2)
    dst = tmp_path / "o.dcq"
    convert(src, dst, **FAST)
    first = dst.stat().st_ino
    convert(src, dst, overwrite=True, **{**FAST, "bits": 1})
    assert DCQFile(dst).bits == 1 and dst.stat().st_ino != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.dcq", "s"]
    state = tmp_path / "st.npz"
    convert(src, state, fit_only=True, **FAST)
    with pytest.raises(InvalidArgumentError, match="exists"):
        convert(src, state, fit_only=True, **FAST)
    convert(src, state, fit_only=True, overwrite=True, **FAST)
    assert oct(state.stat().st_mode & 0o777) != "0o600"
