"""Attack class 4 of issue #15: real-world source folders.

Names that are not valid UTF-8 used to crash ``convert`` with a UnicodeEncodeError after all the
analysis; symbolic-link loops made it hang with growing memory, and a link to the root
duplicated images under wrong labels (8 images became 328 samples). Each test builds such a
folder itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from dcqformat.encode.pipeline import convert  # noqa: E402
from dcqformat.errors import InputImageError  # noqa: E402
from dcqformat.format.reader import DCQFile  # noqa: E402

QUICK = dict(epochs=1, clusters=2, refine_steps=1, refine_images=2, proxy_resolution=16,
             progress=False, device="cpu", workers=0, threads=1)


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)


def _folder(root: Path, per_class: int = 4) -> Path:
    for c, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            _png(root / name / f"{i}.png", 10 * c + i)
    return root


def _bad_name(directory: Path, stem: bytes, suffix: bytes = b".png") -> Path:
    """A path under ``directory`` whose last component is the given non-UTF-8 bytes."""
    return Path(os.fsdecode(os.fsencode(str(directory)) + b"/" + stem + suffix))


def test_a_file_name_that_is_not_utf8_fails_up_front_or_is_skipped(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    _png(_bad_name(src / "cat", b"caf\xe9"), 99)
    with pytest.raises(InputImageError, match=r"caf\\xe9.*not valid UTF-8"):
        convert(src, tmp_path / "x.dcq", **QUICK)
    assert not (tmp_path / "x.dcq").exists()
    s = convert(src, tmp_path / "y.dcq", on_error="skip", **QUICK)
    assert s.images == 8
    assert any("caf\\xe9" in k["path"] for k in s.skipped)
    assert any("caf\\xe9" in k["path"] for k in DCQFile(tmp_path / "y.dcq").provenance["skipped"])


def test_a_class_folder_name_that_is_not_utf8_is_refused_before_any_work(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    _png(_bad_name(src, b"b\xffd", b"") / "0.png", 5)
    with pytest.raises(InputImageError, match=r"b\\xffd.*not valid UTF-8"):
        convert(src, tmp_path / "x.dcq", on_error="skip", **QUICK)


def _scan_in_subprocess(src: Path) -> str:
    code = ("import sys; from dcqformat.encode.scan import scan_image_folder; "
            f"l = scan_image_folder({str(src)!r}); "
            "print(len(l.entries), sorted({e.label for e in l.entries}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_symlink_loop_neither_hangs_nor_duplicates(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    (src / "cat" / "again").symlink_to(src / "cat", target_is_directory=True)
    (src / "dog" / "deep").mkdir()
    (src / "dog" / "deep" / "up").symlink_to(src / "dog", target_is_directory=True)
    assert _scan_in_subprocess(src) == "8 [0, 1]"


def test_a_link_to_the_root_does_not_copy_images_under_other_labels(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    (src / "cat" / "everything").symlink_to(src, target_is_directory=True)
    assert _scan_in_subprocess(src) == "8 [0, 1]"
    s = convert(src, tmp_path / "x.dcq", **QUICK)
    assert s.images == 8 and s.scan_skipped
    f = DCQFile(tmp_path / "x.dcq")
    assert np.asarray(f.labels).tolist() == [0] * 4 + [1] * 4
    assert f.provenance["source"]["scan_skipped"][0]["path"] == "cat/everything"


def test_the_same_file_under_two_names_is_listed_once(tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    os.link(src / "cat" / "0.png", src / "dog" / "hard.png")
    (src / "dog" / "soft.png").symlink_to(src / "cat" / "1.png")
    s = convert(src, tmp_path / "x.dcq", **QUICK)
    assert s.images == 8
    reasons = " ".join(k["reason"] for k in s.scan_skipped)
    assert "cat/0.png" in reasons and "cat/1.png" in reasons
