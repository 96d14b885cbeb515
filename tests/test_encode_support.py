"""Helpers shared by the encoder tests (imported by the other ``test_encode_*`` modules):
tiny ImageFolders cut from scikit-image's real photographs, tree hashing, PSNR."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path("/work/shared/data")
EMOJI = DATA / "emoji64"
FASHION = DATA / "fashion-mnist"


def photos() -> dict[str, np.ndarray]:
    """Three real RGB photographs from scikit-image (bundled with the package)."""
    from skimage import data

    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}


def make_folder(
    root: Path,
    per_class: int = 6,
    size: int = 32,
    *,
    seed: int = 0,
    grey: bool = False,
    extra_sizes: bool = True,
    rgba: bool = False,
) -> Path:
    """An ImageFolder of random crops (classes = the three photos), written as PNG files.

    With ``extra_sizes`` some crops are ``size x (size + 8)``; with ``rgba`` every third image
    gets a partly transparent alpha channel; with ``grey`` all images are mode L.
    """
    rng = np.random.default_rng(seed)
    for name, img in photos().items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        h, w = img.shape[:2]
        for i in range(per_class):
            cw = size + (8 if extra_sizes and i % 3 == 2 else 0)
            y = int(rng.integers(0, h - size))
            x = int(rng.integers(0, w - cw))
            crop = img[y : y + size, x : x + cw]
            # Downscale a larger window so the crop holds real structure, not one flat patch.
            big = img[y : min(h, y + 4 * size), x : min(w, x + 4 * cw)]
            crop = np.asarray(Image.fromarray(big).resize((cw, size), Image.Resampling.BILINEAR))
            if grey:
                Image.fromarray(crop).convert("L").save(d / f"{i:03d}.png")
            elif rgba and i % 3 == 0:
                alpha = np.full(crop.shape[:2], 255, np.uint8)
                alpha[: size // 4] = 0
                alpha[size // 4 : size // 2] = 128
                Image.fromarray(np.dstack([crop, alpha]), "RGBA").save(d / f"{i:03d}.png")
            else:
                Image.fromarray(crop).save(d / f"{i:03d}.png")
    return root


def tree_digest(root: Path) -> str:
    """SHA-256 over every path, size, mtime and content under ``root``."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + sorted(dirnames):
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}|{st.st_mode}\n".encode())
            if p.is_file():
                h.update(p.read_bytes())
    return h.hexdigest()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"real data not present at {path} (a fresh clone has no ../shared/data)")


#: Quick settings for end-to-end tests on tiny folders.
QUICK = dict(epochs=1, clusters=3, refine_steps=4, refine_images=4, proxy_resolution=16,
             progress=False, device="cpu", workers=1)


def test_make_folder_is_an_imagefolder(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "src", per_class=3)
    assert sorted(p.name for p in root.iterdir()) == ["astronaut", "chelsea", "coffee"]
    assert len(list(root.rglob("*.png"))) == 9
