"""The train probe's work items, run in pool processes: preparing a dataset (the training
ImageFolder and the arrays the model sees), the proxy model, converts, the baseline encodings
and the training runs."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from _data import emoji64_root, fashion_mnist, write_imagefolder
from _probe_codecs import (
    downscale,
    jpeg_image,
    jpeg_search,
    png8_search,
    png_bytes,
    quantize_colours,
    quantize_image,
    stratified_subset,
    upscale_to,
    webp_image,
    webp_search,
)
from _probe_configs import Config
from _probe_train import Settings, train_eval

# ================================================================================ data


def _stratified_take(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified random sample of ``n`` of ``labels``."""
    if n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(labels)), train_size=n, stratify=labels,
                              random_state=seed)
    return np.sort(idx)


def prepare_dataset(name: str, work: Path, *, fm_train: int, fm_test: int) -> dict[str, Any] | None:
    """Write the training ImageFolder (what ``convert`` reads) and ``train.npz`` / ``test.npz``
    (uint8 ``[N, H, W, C]`` as the model sees the originals, labels); None when absent."""
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    if name == "fashion-mnist":
        try:
            xtr, ytr = fashion_mnist("train")
            xte, yte = fashion_mnist("t10k")
        except FileNotFoundError as e:
            print(f"[skip] fashion-mnist: data not found ({e})", flush=True)
            return None
        tr = _stratified_take(ytr, fm_train, 0)
        te = _stratified_take(yte, fm_test, 0)
        xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
        folder = write_imagefolder(xtr, ytr, out / "train_folder")
        classes = [f"{c:02d}" for c in range(10)]
        # ImageFolder order: class-major, file names (= index) sorted -> same order as a stable sort.
        order = np.argsort(ytr, kind="stable")
        xtr, ytr = xtr[order][..., None], ytr[order]
        xte = xte[..., None]
        note = (f"Fashion-MNIST: {len(ytr):,} of the 60,000 training images (class-stratified, "
                f"seed 0), {len(yte):,} test images, 28x28 grey")
    elif name == "emoji64":
        root = emoji64_root()
        if not root.is_dir():
            print(f"[skip] emoji64: folder {root} not found", flush=True)
            return None
        from dcqformat.encode.images import load_image, to_channels
        from dcqformat.encode.scan import scan_image_folder

        listing = scan_image_folder(root)
        classes = list(listing.classes)
        labels = np.array([e.label for e in listing.entries], np.int64)
        from sklearn.model_selection import train_test_split

        tr, te = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                                  random_state=0)
        tr, te = np.sort(tr), np.sort(te)
        folder = out / "train_folder"
        for i in tr:  # the original RGBA files, byte for byte
            e = listing.entries[int(i)]
            dst = folder / classes[e.label] / Path(e.relpath).name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(e.path, dst)
        # flatten alpha on white exactly as the encoder does
        imgs = np.stack([to_channels(load_image(e.path), 3) for e in listing.entries])
        xtr, ytr, xte, yte = imgs[tr], labels[tr], imgs[te], labels[te]
        note = (f"emoji64: stratified 80/20 split (seed 0): {len(ytr):,} train / {len(yte):,} "
                "test, 64x64 RGBA flattened on white")
    else:
        raise ValueError(name)
    np.savez(out / "train.npz", x=xtr, y=ytr.astype(np.int64))
    np.savez(out / "test.npz", x=xte, y=yte.astype(np.int64))
    return {"name": name, "dir": str(out), "folder": str(folder), "classes": classes,
            "n_train": len(ytr), "n_test": len(yte), "channels": int(xtr.shape[-1]),
            "native": int(xtr.shape[1]), "note": note}


# ================================================================================ pool tasks


def worker_init() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def task_proxy(ds: dict[str, Any], out: str, epochs: int) -> dict[str, Any]:
    """Train the library's proxy task model once per dataset, as ``convert(model="proxy")`` would
    (up to 20,000 seeded-random 32 px thumbnails, ``train_proxy`` defaults), and save it."""
    import torch

    from dcqformat.encode.images import load_image, to_channels
    from dcqformat.encode.model import deterministic, train_proxy
    from dcqformat.encode.model_files import save_proxy
    from dcqformat.encode.scan import scan_image_folder

    t0 = time.perf_counter()
    listing = scan_image_folder(ds["folder"])
    n = len(listing.entries)
    with deterministic(0):
        g = torch.Generator().manual_seed(0 * 1_000_003 + 1)
        sample = list(range(n)) if n <= 20_000 else sorted(torch.randperm(n, generator=g)[:20_000].tolist())
        thumbs = []
        for i in sample:
            a = to_channels(load_image(listing.entries[i].path), ds["channels"])
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()
            t = torch.nn.functional.interpolate(t, size=(32, 32), mode="bilinear", align_corners=False,
                                                antialias=True)
            thumbs.append(t[0].round().clamp(0, 255).to(torch.uint8))
        imgs = torch.stack(thumbs)
        labels = torch.tensor([listing.entries[i].label for i in sample])
        task = train_proxy(imgs, labels, len(listing.classes), epochs=epochs, seed=0, device="cpu")
    save_proxy(task, out)
    return {"seconds": time.perf_counter() - t0, "train_images": len(sample), "epochs": epochs}


def task_convert(ds: dict[str, Any], cfg: Config, proxy: str, dst: str, seed: int = 0) -> dict[str, Any]:
    import dcqformat

    t0 = time.perf_counter()
    kwargs = cfg.convert_kwargs()
    options = {"model": proxy, "device": "cpu", "seed": seed, "progress": False,
               "payload_encoding": "auto", "overwrite": True, "threads": 1, "workers": 0,
               **{k: v for k, v in kwargs.items() if k != "budget"}}
    plan: dict[str, Any] = {}
    if "budget" in kwargs:  # the planner chooses the encoding and writes the file within budget
        from dcqformat.encode.planner.run import convert_within_budget

        res = convert_within_budget(ds["folder"], dst, kwargs["budget"], **options)
        assert res.summary is not None and res.tried
        s = res.summary
        plan = {"plan": res.tried[-1]["plan"], "budget_tried": res.tried,
                "budget_bytes": res.report.budget, "plan_table": res.report.table()}
    else:
        s = dcqformat.convert(ds["folder"], dst, **options)
    d = {**s.to_dict(), **plan}
    d["seconds"] = time.perf_counter() - t0
    d["kwargs"] = kwargs
    d["seed"] = seed
    d["file_bytes"] = os.path.getsize(dst)  # every byte of the file, whatever the summary says
    return d


def _encode_matched(x: np.ndarray, cfg: Config, ref_bytes: int) -> tuple[np.ndarray, dict[str, Any]]:
    """webp/png8 rows: search the setting that matches ``ref_bytes`` at or under it, then
    encode every image with it: (decoded images at the stored size, info)."""
    if cfg.kind == "webp":
        found = webp_search(x, ref_bytes, cfg.scales[0])
        enc = [webp_image(downscale(img, cfg.scales[0]), int(found["quality"])) for img in x]  # type: ignore[call-overload]
    else:
        found = png8_search(x, ref_bytes, cfg.scales)
        scale = float(found["scale"])  # type: ignore[arg-type]
        enc = [quantize_colours(downscale(img, scale), int(found["colours"])) for img in x]  # type: ignore[call-overload]
    dec = np.stack([e[0] for e in enc])
    total = int(sum(e[1] for e in enc))
    assert total == found["bytes"], (total, found["bytes"])  # the search counted the same files
    return dec, {**found, "bytes": total, "images": len(x), "target_bytes": ref_bytes}


def task_baseline(ds: dict[str, Any], cfg: Config, ref_bytes: int | None, out: str,
                  seed: int = 0) -> dict[str, Any]:
    """Encode the training set as ``cfg`` says; write the decoded images to ``out`` (npz).
    ``seed`` draws the random subset (the other baselines are deterministic)."""
    t0 = time.perf_counter()
    with np.load(Path(ds["dir"]) / "train.npz") as z:
        x, y = z["x"], z["y"]
    info: dict[str, Any] = {}
    dec: np.ndarray | None = None
    if cfg.kind == "original":
        sizes = np.array([png_bytes(img) for img in x], np.int64)
        np.save(Path(ds["dir"]) / "png_sizes.npy", sizes)
        info.update(bytes=int(sizes.sum()), images=len(y), psnr=None)
    elif cfg.kind == "quant":
        assert cfg.bits is not None
        dec = np.empty_like(x)
        total = 0
        for i, img in enumerate(x):
            dec[i], nb = quantize_image(img, cfg.bits, cfg.kmeans)
            total += nb
        info.update(bytes=total, images=len(y))
    elif cfg.kind == "jpeg":
        assert ref_bytes is not None
        qual, total, tried = jpeg_search(x, ref_bytes)
        dec = np.empty_like(x)
        for i, img in enumerate(x):
            dec[i] = jpeg_image(img, qual)[0]
        info.update(bytes=total, images=len(y), quality=qual, tried={str(k): v for k, v in tried.items()},
                    target_bytes=ref_bytes)
    elif cfg.kind in ("webp", "png8"):
        assert ref_bytes is not None
        dec, found = _encode_matched(x, cfg, ref_bytes)
        info.update(found)
    elif cfg.kind == "subset":
        assert ref_bytes is not None
        sizes = np.load(Path(ds["dir"]) / "png_sizes.npy")
        idx = stratified_subset(y, sizes, ref_bytes, seed=seed)
        np.save(out.replace(".npz", "_indices.npy"), idx)
        info.update(bytes=int(sizes[idx].sum()), images=len(idx), target_bytes=ref_bytes, psnr=None,
                    per_class=np.bincount(y[idx], minlength=int(y.max()) + 1).tolist())
    else:
        raise ValueError(cfg.kind)
    if dec is not None:
        np.savez(out, x=dec, y=y)
        full = np.stack([upscale_to(d, x.shape[1], x.shape[2]) for d in dec]) if dec.shape != x.shape else dec
        mse = ((full.astype(np.float64) - x) ** 2).reshape(len(x), -1).mean(1)
        info["psnr"] = float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10)).clip(max=99)))
    info["seconds"] = time.perf_counter() - t0
    return info


def task_train(source: dict[str, Any], test: dict[str, Any], st: Settings, seed: int,
               classes: int) -> dict[str, Any]:
    return train_eval(source, test, st, seed, classes)
