"""Loading source images: every PIL mode, alpha flattening, guards, errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from dcqformat.encode.images import (
    LoadOptions,
    is_grey,
    load_image,
    parse_background,
    to_channels,
)
from dcqformat.errors import InputImageError, InvalidArgumentError

RGB = data.astronaut()[100:140, 180:230].copy()  # 40 x 50 real photo crop


def _save(tmp_path: Path, im: Image.Image, name: str = "img.png", **kw: object) -> Path:
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_rgb_and_l(tmp_path: Path) -> None:
    a = load_image(_save(tmp_path, Image.fromarray(RGB)))
    assert a.shape == (40, 50, 3) and a.dtype == np.uint8 and np.array_equal(a, RGB)
    grey = np.asarray(Image.fromarray(RGB).convert("L"))
    b = load_image(_save(tmp_path, Image.fromarray(grey), "g.png"))
    assert b.shape == (40, 50, 1) and np.array_equal(b[..., 0], grey)


def test_rgba_composited_on_background(tmp_path: Path) -> None:
    alpha = np.zeros((40, 50), np.uint8)
    alpha[:, 25:] = 255
    alpha[:10, :] = 128
    p = _save(tmp_path, Image.fromarray(np.dstack([RGB, alpha]), "RGBA"))
    white = load_image(p)
    assert np.all(white[10:, :25] == 255)  # fully transparent -> background exactly
    assert np.array_equal(white[10:, 25:], RGB[10:, 25:])  # opaque -> unchanged
    half = (RGB[:10, 25:].astype(int) * 128 + 255 * 127 + 127) // 255
    assert np.array_equal(white[:10, 25:], half)
    black = load_image(p, LoadOptions(background=(0, 0, 0)))
    assert np.all(black[10:, :25] == 0)
    red = load_image(p, LoadOptions(background=(255, 0, 0)))
    assert np.all(red[10:, :25] == [255, 0, 0])


def test_la_stays_grey_on_grey_background(tmp_path: Path) -> None:
    g = np.asarray(Image.fromarray(RGB).convert("L"))
    alpha = np.where(np.arange(50)[None, :] < 20, 0, 255).astype(np.uint8).repeat(40, 0)
    p = _save(tmp_path, Image.fromarray(np.dstack([g, alpha]), "LA"))
    a = load_image(p)
    assert a.shape == (40, 50, 1)
    assert np.all(a[:, :20, 0] == 255) and np.array_equal(a[:, 20:, 0], g[:, 20:])
    c = load_image(p, LoadOptions(background=(0, 0, 255)))
    assert c.shape == (40, 50, 3) and np.all(c[:, :20] == [0, 0, 255])


def test_palette_modes(tmp_path: Path) -> None:
    pim = Image.fromarray(RGB).quantize(16)
    a = load_image(_save(tmp_path, pim, "p.png"))
    assert a.shape == (40, 50, 3) and np.array_equal(a, np.asarray(pim.convert("RGB")))
    # P with a transparent palette entry: those pixels become the background.
    idx = np.asarray(pim).copy()
    idx[:5] = 15
    pt = Image.fromarray(idx, "P")
    pt.putpalette(pim.getpalette())
    p = _save(tmp_path, pt, "pt.png", transparency=15)
    b = load_image(p)
    assert np.all(b[:5] == 255)
    assert np.all(load_image(p, LoadOptions(background=(0, 0, 0)))[:5] == 0)


def test_cmyk(tmp_path: Path) -> None:
    im = Image.fromarray(RGB).convert("CMYK")
    a = load_image(_save(tmp_path, im, "c.jpg", quality=95))
    assert a.shape == (40, 50, 3)
    assert np.abs(a.astype(int) - RGB.astype(int)).mean() < 12


def test_sixteen_bit_and_int_and_float(tmp_path: Path) -> None:
    v = (np.arange(40 * 50, dtype=np.uint32).reshape(40, 50) * 32).astype(np.uint16)
    im16 = Image.fromarray(v)
    assert im16.mode.startswith("I;16")
    a = load_image(_save(tmp_path, im16, "16.png"))
    assert a.shape == (40, 50, 1)
    assert np.array_equal(a[..., 0], np.rint(v / 257.0).astype(np.uint8))
    i32 = Image.fromarray(v.astype(np.int32))
    assert i32.mode == "I"
    b = load_image(_save(tmp_path, i32, "i.tif"))
    assert np.array_equal(b[..., 0], np.rint(v / 257.0).astype(np.uint8))
    f01 = Image.fromarray((v / 65535.0).astype(np.float32))
    c = load_image(_save(tmp_path, f01, "f.tif"))
    assert np.abs(c[..., 0].astype(int) - np.rint(v / 65535.0 * 255)).max() <= 1
    f255 = Image.fromarray(np.full((4, 4), 300.0, np.float32))
    assert np.all(load_image(_save(tmp_path, f255, "f2.tif")) == 255)


def test_one_bit(tmp_path: Path) -> None:
    bw = Image.fromarray(RGB).convert("1")
    a = load_image(_save(tmp_path, bw, "b.png"))
    assert a.shape == (40, 50, 1) and set(np.unique(a)) <= {0, 255}


def test_max_side(tmp_path: Path) -> None:
    p = _save(tmp_path, Image.fromarray(RGB))
    a = load_image(p, LoadOptions(max_side=25))
    assert a.shape == (20, 25, 3)
    assert load_image(p, LoadOptions(max_side=100)).shape == (40, 50, 3)


def test_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputImageError, match=r"empty\.png.*empty file"):
        load_image(empty)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(InputImageError, match=r"junk\.jpg.*not a recognised image"):
        load_image(junk)
    good = _save(tmp_path, Image.fromarray(RGB), "full.png")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputImageError, match=r"trunc\.png.*truncated"):
        load_image(trunc)
    jpg = _save(tmp_path, Image.fromarray(RGB), "full.jpg")
    tj = tmp_path / "trunc.jpg"
    tj.write_bytes(jpg.read_bytes()[:200])
    with pytest.raises(InputImageError, match=r"trunc\.jpg"):
        load_image(tj)
    with pytest.raises(InputImageError, match=r"missing\.png.*cannot read"):
        load_image(tmp_path / "missing.png")


def test_decompression_bomb_guard(tmp_path: Path) -> None:
    p = _save(tmp_path, Image.fromarray(RGB))
    with pytest.raises(InputImageError, match=r"2,000 pixels exceeds the limit of 1,999"):
        load_image(p, LoadOptions(max_pixels=1999))
    assert load_image(p, LoadOptions(max_pixels=2000)).shape == (40, 50, 3)


def test_grey_helpers() -> None:
    g = np.repeat(RGB[..., :1], 3, axis=2)
    assert is_grey(g) and is_grey(RGB[..., :1]) and not is_grey(RGB)
    assert to_channels(g, 1).shape == (40, 50, 1)
    assert np.array_equal(to_channels(RGB[..., :1], 3), g)
    with pytest.raises(InvalidArgumentError):
        to_channels(RGB, 1)


def test_parse_background() -> None:
    assert parse_background("white") == (255, 255, 255)
    assert parse_background("#102030") == (16, 32, 48)
    assert parse_background("1, 2,3") == (1, 2, 3)
    assert parse_background([4, 5, 6]) == (4, 5, 6)
    for bad in ("purple", "1,2", "1,2,300", "#12345"):
        with pytest.raises(InvalidArgumentError):
            parse_background(bad)
    with pytest.raises(InvalidArgumentError):
        LoadOptions(background=(0, 0, 256))
