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
