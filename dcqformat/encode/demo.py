"""``dcqformat demo``: a complete conversion of real images that ship with scikit-learn.

The images are scikit-learn's ``load_digits()``: 1,797 real 8x8 greyscale handwritten digits
(UCI optical recognition data set, 10 classes). Their 17 grey levels (0..16) are scaled to
0..255 and each image is upscaled to ``size`` x ``size`` (default 32) with Pillow's bilinear
filter, then written as a temporary ImageFolder of PNGs (``<tmp>/<digit>/<nnnn>.png``). The demo
converts it at q = 2 bits with quick settings (2 proxy epochs, 10 refinement steps), prints the
storage report and writes a preview grid, then removes the temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["write_digits_folder", "run_demo"]


def write_digits_folder(root: str | os.PathLike[str], size: int = 32) -> int:
    """Write scikit-learn's digits as an ImageFolder of ``size``-pixel PNGs under ``root``;
    return the number of images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = Path(root)
    for t in sorted(set(int(v) for v in digits.target)):
        (out / str(t)).mkdir(parents=True, exist_ok=True)
    for i, (img, t) in enumerate(zip(digits.images, digits.target, strict=True)):
        grey = np.rint(np.asarray(img, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
        im = Image.fromarray(grey, mode="L")
        if size != grey.shape[0]:
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        im.save(out / str(int(t)) / f"{i:04d}.png")
    return len(digits.images)


def run_demo(
    out_dir: str | os.PathLike[str] = "demo_out",
    *,
    size: int = 32,
    seed: int = 0,
    progress: bool = True,
    device: str = "auto",
    print_fn: Any = print,
) -> dict[str, Any]:
    """Run the demo; return ``{"dcq", "preview", "summary", "report"}``."""
    from dcqformat.encode.pipeline import convert
    from dcqformat.encode.preview import make_preview
    from dcqformat.format.reader import DCQFile

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dcq = out / "digits_q2.dcq"
    grid = out / "digits_q2_preview.png"
    with tempfile.TemporaryDirectory(prefix="dcq-demo-") as tmp:
        src = Path(tmp) / "digits"
        count = write_digits_folder(src, size)
        print_fn(f"wrote {count} scikit-learn digits (8x8, upscaled bilinearly to {size}x{size}) "
                 f"as PNGs under {src}")
        summary = convert(src, dcq, bits=2, epochs=2, refine_steps=10, seed=seed,
                          device=device, progress=progress, overwrite=True)
        print_fn(summary.format())
        f = DCQFile(dcq)
        report: Any
        try:
            from dcqformat.format.info import format_report

            report = format_report(f.info())
        except ImportError:
            report = f.info()
        print_fn(report if isinstance(report, str) else str(report))
        pv = make_preview(dcq, grid, source=src, n=32)
    msg = f"preview (original | decoded) of {len(pv['samples'])} samples: {grid}"
    if pv["psnr_db"] is not None:
        msg += f" (mean PSNR of the shown pairs {pv['psnr_db']:.2f} dB)"
    print_fn(msg)
    return {"dcq": str(dcq), "preview": str(grid), "summary": summary, "report": report}
