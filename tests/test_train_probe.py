"""Smoke test of the train-probe harness (benchmarks/train_probe.py) on a tiny planted dataset.

Three trivially separable classes of 16x16 grey images (bright top half, bright bottom half,
bright centre square, plus noise). The probe CNN must learn them from in-memory arrays and from
a 1-bit ``.dcq`` file read through DCQDataset; the byte-matching baselines must respect their
budgets.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def probe():
    sys.path.insert(0, str(BENCH))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is faster, above all on a busy machine
    try:
        spec = importlib.util.spec_from_file_location("train_probe", BENCH / "train_probe.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["train_probe"] = mod  # dataclasses look their module up while defining
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("train_probe", None)
        sys.path.remove(str(BENCH))
        torch.set_num_threads(threads)


def planted(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(3):
        for _ in range(n_per_class):
            img = np.full((16, 16), 30.0)
            if c == 0:
                img[:7] = 220
            elif c == 1:
                img[9:] = 220
            else:
                img[5:11, 5:11] = 220
            img += rng.normal(0, 20, img.shape)
            xs.append(np.clip(img, 0, 255).astype(np.uint8)[..., None])
            ys.append(c)
    return np.stack(xs), np.array(ys, np.int64)


def settings(probe):
    return probe.Settings("planted", train_images=48, test_images=60, resolution=16, channels=1,
                          width=8, epochs=25, batch=32, lr=0.05, pad=1)


def test_probe_learns_planted_data_from_arrays_and_dcq(probe, tmp_path):
    from dcqformat import DCQWriter

    xtr, ytr = planted(16, 0)
    xte, yte = planted(20, 1)
    np.savez(tmp_path / "train.npz", x=xtr, y=ytr)
    np.savez(tmp_path / "test.npz", x=xte, y=yte)
    st = settings(probe)
    test = {"path": str(tmp_path / "test.npz")}

    r = probe.train_eval({"kind": "npz", "path": str(tmp_path / "train.npz")}, test, st, 0, 3)
    assert r["accuracy"] > 0.9, r
    assert r["steps"] == st.steps and r["train_images"] == 48

    # the same images as a 1-bit .dcq (one palette: black/white), read through DCQDataset
    path = tmp_path / "planted.dcq"
    with DCQWriter(path, bits=1, channels=1, classes=["a", "b", "c"]) as w:
        w.set_palettes(np.array([[[30], [220]]], np.uint8))
        for img, y in zip(xtr, ytr, strict=True):
            w.add_sample((img[..., 0] > 125).astype(np.uint8), 0, int(y))
    r = probe.train_eval({"kind": "dcq", "path": str(path)}, test, st, 1, 3)
    assert r["accuracy"] > 0.9, r
    assert r["reader"] in ("DCQDataset", "DCQFile.decode_batch")

    # a subset run keeps the number of steps (same compute), and sees only its images' classes
    idx = np.flatnonzero(ytr != 2)
    r = probe.train_eval({"kind": "npz", "path": str(tmp_path / "train.npz"), "indices": idx.tolist()},
                         test, st, 0, 3)
    assert r["steps"] == st.steps and r["train_images"] == len(idx)
    assert r["class_counts_seen"][2] == 0
    assert r["per_class"][2] < 0.5 < min(r["per_class"][:2])


def test_byte_matched_baselines_respect_budgets(probe):
    x, y = planted(10, 2)
    sizes = np.array([probe.png_bytes(img) for img in x])
    budget = int(sizes.sum() * 0.4)
    idx = probe.stratified_subset(y, sizes, budget, seed=0)
    assert sizes[idx].sum() <= budget
    assert sizes[idx].sum() > 0.25 * sizes.sum()  # as large as the budget allows, roughly
    counts = np.bincount(y[idx], minlength=3)
    assert counts.max() - counts.min() <= 1  # stratified

    q, total, tried = probe.jpeg_search(x, target=int(sizes.sum()))
    assert tried[q] == total and 1 <= q <= 95
    assert all(abs(total - sizes.sum()) <= abs(v - sizes.sum()) for v in tried.values())

    dec, nbytes = probe.quantize_image(x[0], 1, kmeans=True)
    assert dec.shape == x[0].shape and len(np.unique(dec)) <= 2 and nbytes > 0


# -- generic rows, WebP / PNG-8 matched to bytes, combine training, the frontier table ---------
def test_fixed_names_are_stable_and_generic_names_parse(probe):
    fixed = ["original", "dcq-q1", "dcq-q2", "dcq-q1-cluster", "dcq-q2-cluster", "dcq-q2-image",
             "dcq-q2-global", "dcq-q2-noattn", "dcq-q2-norefine", "dcq-q2-paper", "mediancut-q1",
             "mediancut-q2", "kmeans-q1", "kmeans-q2", "jpeg@dcq-q1", "jpeg@dcq-q2",
             "subset@dcq-q1", "subset@dcq-q2"]
    assert [c.name for c in probe.CONFIGS] == fixed  # the committed tables name these rows
    assert probe.parse_config("jpeg@dcq-q2") is probe.BY_NAME["jpeg@dcq-q2"]
    c = probe.parse_config("dcq:palette=image,bits=1,load.cellcrop=1,load.combine=2")
    assert c.name == "dcq:bits=1,palette=image,load.cellcrop=1,load.combine=2" and c.error is None
    assert c.kind == "dcq" and c.bits == 1 and c.dcq == {"bits": 1, "palette": "image"}
    assert c.load == {"combine": 2, "cellcrop": 1}
    # rows that convert alike share a file, whatever their loader keys
    assert c.file_key() == probe.parse_config("dcq:bits=1,palette=image").file_key()
    assert probe.parse_config("dcq:bits=2").file_key() == probe.BY_NAME["dcq-q2"].file_key()
    w = probe.parse_config("webp@dcq:palette=image,bits=1")
    assert (w.kind, w.ref, w.scales) == ("webp", "dcq:bits=1,palette=image", (1.0,))
    p = probe.parse_config("png8:scale=auto@dcq-q1")
    assert p.kind == "png8" and len(p.scales) == 5 and p.ref == "dcq-q1"
    assert probe.parse_config("png8:scale=0.5@dcq-q1").scales == (0.5,)
    assert probe.split_config_list("dcq:bits=1,scale=0.5,webp@dcq:bits=1,scale=0.5,original") == \
        ["dcq:bits=1,scale=0.5", "webp@dcq:bits=1,scale=0.5", "original"]
    names = [x.name for x in probe.resolve_configs(["dcq-q1", "original", "dcq-q1"], frontier=True)]
    assert names == ["dcq-q1", "webp@dcq-q1", "png8@dcq-q1", "png8:scale=0.5@dcq-q1", "original"]
    names = [x.name for x in probe.resolve_configs(["dcq:bits=1,load.combine=2"], frontier=True,
                                                   baselines=("webp", "png8"))]
    assert names == ["dcq:bits=1,load.combine=2", "webp@dcq:bits=1", "png8@dcq:bits=1"]  # same file


def test_rows_that_cannot_run_say_why(probe, tmp_path):
    bad = probe.parse_config("dcq:bits=2,no_such_option=3")
    assert bad.error is not None and "no_such_option" in bad.error  # convert's own message
    assert "unknown convert option" in bad.error
    dependent = probe.parse_config("webp@dcq:bits=2,no_such_option=3")
    assert dependent.error is not None and "reference" in dependent.error
    for name, words in (("dcq:seed=4", "set by the probe"), ("dcq:load.zoom=2", "loader keys"),
                        ("webp:quality=3@dcq-q2", "no option"), ("png8:scale=2@dcq-q2", "scale")):
        assert words in probe.parse_config(name).error
    budget = probe.parse_config("dcq:budget=300KB,load.combine=2")
    assert budget.error is None and budget.convert_kwargs() == {"budget": "300KB"}  # the planner's
    assert budget.name == "dcq:budget=300KB,load.combine=2" and "--budget 300KB" in budget.what
    assert "budget must be" in probe.parse_config("dcq:budget=lots").error
    plan = probe.parse_config("plan:q2 C20 s0.75 f0.5")  # as --plan-only names it
    assert plan.name == "dcq:bits=2,clusters=20,coreset=bgfdq:0.5,palette=cluster,scale=0.75"
    assert probe.parse_config("plan:q3 image").dcq == {"bits": 3, "palette": "image", "refine": False}
    assert probe.parse_config("plan:q2 C20").file_key() == probe.BY_NAME["dcq-q2"].file_key()
    with pytest.raises(ValueError, match="plan name"):
        probe.parse_config("plan:q2 zz")
    with pytest.raises(ValueError, match="unknown config"):
        probe.parse_config("nonsense")
    with pytest.raises(ValueError, match="not a dcq row"):
        probe.parse_config("webp@original")
    listing = tmp_path / "rows.txt"
    listing.write_text("# a comment\ndcq:bits=1,coreset=random:0.5  # half the images\n\noriginal\n")
    assert probe.split_config_list(f"@{listing},dcq-q2") == \
        ["dcq:bits=1,coreset=random:0.5", "original", "dcq-q2"]


def test_search_at_or_under(probe):
    from _probe_codecs import search_at_or_under

    sizes = {v: 10 * v for v in range(0, 101)}
    assert search_at_or_under(range(0, 101), sizes.__getitem__, 555) == (55, 550, True)
    assert search_at_or_under(range(0, 101), sizes.__getitem__, 5000) == (100, 1000, True)
    bumpy = {**sizes, 56: 540}  # not monotone: 56 is larger but smaller; the closest under wins
    assert search_at_or_under(range(0, 101), bumpy.__getitem__, 555)[0] == 55
    assert search_at_or_under(range(3, 101), sizes.__getitem__, 10) == (3, 30, False)


def test_webp_and_png8_match_bytes_at_or_under(probe):
    x, _y = planted(6, 4)
    x = np.repeat(x, 3, axis=-1)  # RGB
    target = int(sum(probe.png_bytes(img) for img in x) * 0.6)
    w = probe.webp_search(x, target)
    assert w["under"] and w["bytes"] <= target and 0 <= w["quality"] <= 100
    tried = {int(k): v for k, v in w["tried"].items()}
    assert all(v <= w["bytes"] or v > target for v in tried.values())  # the closest under tried
    if w["quality"] < 100:
        above = sum(probe.webp_image(img, w["quality"] + 1)[1] for img in x)
        assert above > target or above <= w["bytes"]
    dec, nbytes = probe.webp_image(x[0], w["quality"])
    assert dec.shape == x[0].shape and nbytes > 0
    p = probe.png8_search(x, target, scales=(1.0, 0.5))
    assert p["bytes"] <= target and p["under"] and 2 <= p["colours"] <= 256 and p["scale"] in (1.0, 0.5)
    small = probe.downscale(x[0], 0.5)
    assert small.shape == (8, 8, 3) and probe.upscale_to(small, 16, 16).shape == (16, 16, 3)
    grey, _ = planted(2, 5)
    g, _n = probe.webp_image(grey[0], 50)
    assert g.shape == grey[0].shape  # grey in, grey out
    tiny = probe.png8_search(x, 10)  # nothing fits: the smallest, flagged
    assert not tiny["under"] and tiny["colours"] == 2


def test_matched_baselines_write_what_they_count(probe, tmp_path):
    x, y = planted(5, 6)
    np.savez(tmp_path / "train.npz", x=x, y=y)
    ds = {"dir": str(tmp_path)}
    target = int(sum(probe.png_bytes(img) for img in x) * 0.5)
    for name in ("webp@dcq-q2", "png8@dcq-q2", "png8:scale=0.5@dcq-q2"):
        cfg = probe.parse_config(name)
        out = str(tmp_path / f"{cfg.kind}{len(cfg.scales)}{cfg.scales[0]}.npz")
        info = probe.task_baseline(ds, cfg, target, out)
        assert info["bytes"] <= target and info["target_bytes"] == target and info["images"] == len(x)
        with np.load(out) as z:
            side = 16 if cfg.scales == (1.0,) else 8
            assert z["x"].shape == (len(x), side, side, 1) and np.array_equal(z["y"], y)
        assert info["psnr"] is not None and info["psnr"] > 5


def test_probe_trains_on_combined_canvases_with_cellcrop(probe, tmp_path):
    from dcqformat import DCQWriter

    xtr, ytr = planted(16, 0)
    xte, yte = planted(20, 1)
    np.savez(tmp_path / "test.npz", x=xte, y=yte)
    path = tmp_path / "planted.dcq"
    with DCQWriter(path, bits=1, channels=1, classes=["a", "b", "c"]) as w:
        w.set_palettes(np.array([[[30], [220]]], np.uint8))
        for img, y in zip(xtr, ytr, strict=True):
            w.add_sample((img[..., 0] > 125).astype(np.uint8), 0, int(y))
    st = settings(probe)
    src = {"kind": "dcq", "path": str(path), "load": {"combine": 2, "cellcrop": 1}}
    r = probe.train_eval(src, {"path": str(tmp_path / "test.npz")}, st, 0, 3)
    assert r["reader"] == "DCQDataset(combine=2)" and r["train_images"] == 3 * 4  # canvases
    assert r["steps"] == st.steps and r["load"] == {"combine": 2, "cellcrop": 1}
    assert r["accuracy"] > 0.6, r  # crops of one cell: still learnable (chance is 1/3)
    assert sum(r["class_counts_seen"]) == st.steps * st.batch
    r1 = probe.train_eval({**src, "load": {"cellcrop": 1}}, {"path": str(tmp_path / "test.npz")}, st, 0, 3)
    assert r1["reader"] == "DCQDataset" and r1["train_images"] == 48


def test_scheduler_reports_a_failing_task_to_its_row(probe):
    sched = probe.Scheduler(1)
    got, errors = [], []
    sched.add(0, int, ("12",), got.append, errors.append)
    sched.add(1, int, ("not a number",), got.append, errors.append)
    sched.run()
    assert got == [12] and len(errors) == 1 and isinstance(errors[0], ValueError)


def test_frontier_table_sorts_by_bytes_and_marks_the_frontier(probe):
    from _probe_report import frontier_table

    def row(kind, nbytes, accs, **enc):
        return {"kind": kind, "runs": [{"accuracy": a / 100, "seed": i} for i, a in enumerate(accs)],
                "encode": {"bytes": nbytes, **enc}}

    names = ["dcq-q1", "dcq-q2", "webp@dcq-q2", "png8@dcq-q2", "original"]
    configs = {n: probe.parse_config(n) for n in names}
    state = {"configs": configs, "rows": {
        "dcq-q1": row("dcq", 2000, [50, 52]),
        "dcq-q2": row("dcq", 3000, [60, 62]),
        "webp@dcq-q2": row("webp", 2900, [64, 66], quality=7, scale=1.0, under=True),
        "png8@dcq-q2": row("png8", 2950, [40, 44], colours=3, scale=0.5, under=True),
        "original": row("original", 50000, [70, 70]),
    }}
    st = settings(probe)  # 48 training images
    lines = frontier_table(state, st)
    body = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| B/img")]
    assert [ln.split(" | ")[1] for ln in body] == ["dcq-q1", "dcq-q2", "original"]
    q1, q2, orig = body
    star = [ln.split(" | ")[3] for ln in body]
    assert star == ["★", "", "★"]  # webp@dcq-q2 is smaller and better than dcq-q2
    assert "q 7) ★" in q2 and "65.00 ± 1.41" in q2 and "3 col, ×0.5)" in q2 and "×0.5) ★" not in q2
    assert "webp (+4.00 over dcq)" in q2
    assert q1.startswith(f"| {2000 / 48:.0f} |")
    # a baseline that cannot get down to the bytes is shown, flagged, and not called the best
    state["rows"]["png8@dcq-q2"] = row("png8", 4000, [90, 90], colours=2, scale=1.0, under=False)
    q2 = [ln for ln in frontier_table(state, st) if ln.startswith("| 62 | dcq-q2")][0]
    assert "2 col, ABOVE" in q2 and "webp (+4.00 over dcq)" in q2
    # of two WebP rows at these bytes, the more accurate one is shown
    configs["webp:scale=0.5@dcq-q2"] = probe.parse_config("webp:scale=0.5@dcq-q2")
    state["rows"]["webp:scale=0.5@dcq-q2"] = row("webp", 2990, [70, 70], quality=40, scale=0.5, under=True)
    q2 = [ln for ln in frontier_table(state, st) if ln.startswith("| 62 | dcq-q2")][0]
    assert "q 40, ×0.5" in q2 and "webp (+9.00 over dcq)" in q2
