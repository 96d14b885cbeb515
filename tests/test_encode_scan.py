"""ImageFolder scanning: torchvision's order and rules, sizes, listing hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcqformat.encode.scan import IMG_EXTENSIONS, scan_image_folder
from dcqformat.errors import InvalidArgumentError


def _touch(p: Path, data: bytes = b"x") -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_order_classes_and_filters(tmp_path: Path) -> None:
    for rel in ["b/2.png", "b/10.PNG", "b/sub/a.jpg", "b/Z.webp", "a/x.tiff", "a/notes.txt",
                "a/y.gif", "c_empty/.keep", "B/upper.bmp"]:
        _touch(tmp_path / rel)
    (tmp_path / "stray.png").write_bytes(b"x")  # files at the root are not samples
    listing = scan_image_folder(tmp_path)
    assert listing.classes == ("B", "a", "b", "c_empty")  # code-point order, empty class kept
    assert [e.relpath for e in listing.entries] == [
        "B/upper.bmp", "a/x.tiff", "b/10.PNG", "b/2.png", "b/Z.webp", "b/sub/a.jpg"]
    assert [e.label for e in listing.entries] == [0, 1, 2, 2, 2, 2]
    assert all(e.size == 1 and e.path.is_absolute() for e in listing.entries)
    assert listing.total_bytes == 6 and len(listing) == 6


def test_extensions_match_torchvision() -> None:
    assert IMG_EXTENSIONS == (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff",
                              ".webp")


def test_hash_depends_on_names_and_sizes(tmp_path: Path) -> None:
    _touch(tmp_path / "a" / "1.png", b"abc")
    h1 = scan_image_folder(tmp_path).listing_hash
    assert scan_image_folder(tmp_path).listing_hash == h1
    _touch(tmp_path / "a" / "1.png", b"abcd")
    h2 = scan_image_folder(tmp_path).listing_hash
    assert h2 != h1
    (tmp_path / "a" / "1.png").rename(tmp_path / "a" / "2.png")
    assert scan_image_folder(tmp_path).listing_hash not in (h1, h2)


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        scan_image_folder(tmp_path / "missing")
    with pytest.raises(InvalidArgumentError, match="no class sub-folders"):
        scan_image_folder(tmp_path)
    (tmp_path / "a").mkdir()
    _touch(tmp_path / "a" / "readme.txt")
    with pytest.raises(InvalidArgumentError, match="no image files"):
        scan_image_folder(tmp_path)


def test_matches_an_independent_walk(tmp_path: Path) -> None:
    """The rule written out the way torchvision's make_dataset does it."""
    import os

    names = ["k/b/2.png", "k/a/1.png", "k/0.png", "j/x.JPG", "j/y/z.jpeg"]
    for rel in names:
        _touch(tmp_path / rel)
    classes = sorted(e.name for e in os.scandir(tmp_path) if e.is_dir())
    expected = []
    for c in classes:
        for root, _, files in sorted(os.walk(tmp_path / c, followlinks=True)):
            for f in sorted(files):
                if f.lower().endswith(IMG_EXTENSIONS):
                    expected.append(Path(root, f).relative_to(tmp_path).as_posix())
    assert [e.relpath for e in scan_image_folder(tmp_path).entries] == expected
