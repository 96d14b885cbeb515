"""Load one source image as a uint8 ``[H, W, C]`` array, C = 1 (grey) or 3 (sRGB).

What happens to each PIL mode (the encoder quantizes 8-bit sRGB or 8-bit grey):

==================  ================================================================================
mode                result
==================  ================================================================================
``RGB``             as stored
``L``               grey, as stored
``1``               grey, 0 or 255
``P``               its palette's RGB colours (``P`` with a ``transparency`` entry: as RGBA below)
``RGBA`` ``PA``     composited over ``background`` (default white): ``c·a + bg·(1 − a)``, rounded.
``RGBa``            Fully transparent pixels become exactly the background colour.
``LA`` ``La``       grey composited over the background when the background is grey (R = G = B),
                    otherwise over the colour background as RGB
``L``/``RGB`` with  a ``transparency`` key colour (PNG tRNS) becomes alpha, then as RGBA above
transparency
``CMYK`` ``YCbCr``  Pillow's conversion to RGB (``CMYK`` is the naive ``255 − c − k`` conversion; no
``LAB`` ``HSV``     ICC colour management)
``I;16*``           16-bit grey: ``round(v / 257)``, i.e. the full range 0..65535 maps linearly onto
                    0..255 (no per-image stretch: a 12-bit image stays dark, as it is)
``I``               32-bit integer grey (how Pillow may read 16-bit PNG/TIFF): clipped to 0..65535,
                    then as ``I;16``
``F``               float grey: NaN -> 0; if every value lies in [0, 1] it is taken as a [0, 1] image
                    and scaled by 255, otherwise clipped to [0, 255]; rounded
==================  ================================================================================

Only the first frame of a multi-frame file is read; EXIF orientation is not applied (as
torchvision's ``ImageFolder`` loader). With ``max_side`` an image whose longer side exceeds it is
downscaled (Lanczos, aspect ratio kept) after flattening.

Every failure raises :class:`~dcqformat.errors.InputImageError` naming the file and what was
found: empty file, not an image, truncated or corrupt data, zero width/height, more pixels than
``max_pixels`` (decompression-bomb guard, checked from the header before any pixel is decoded).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dcqformat.errors import InputImageError, InvalidArgumentError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LoadOptions",
    "load_image",
    "pil_to_image",
    "array_to_image",
    "scale_image",
    "is_grey",
    "to_channels",
    "parse_background",
]

#: Pillow's own decompression-bomb warning threshold (``PIL.Image.MAX_IMAGE_PIXELS``).
#: Pillow itself refuses images above twice its threshold regardless of ``max_pixels``.
DEFAULT_MAX_PIXELS = 89_478_485

_GREY16 = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "PA", "LA", "La")


@dataclass(frozen=True)
class LoadOptions:
    """How source images are turned into arrays (recorded in the file's provenance)."""

    background: tuple[int, int, int] = (255, 255, 255)
    max_side: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        bg = tuple(int(v) for v in self.background)
        if len(bg) != 3 or any(not 0 <= v <= 255 for v in bg):
            raise InvalidArgumentError(
                f"background must be three integers in 0..255, got {self.background!r}"
            )
        object.__setattr__(self, "background", bg)
        if self.max_side is not None and int(self.max_side) < 1:
            raise InvalidArgumentError(f"max_side must be >= 1 or None, got {self.max_side!r}")
        if int(self.max_pixels) < 1:
            raise InvalidArgumentError(f"max_pixels must be >= 1, got {self.max_pixels!r}")


def parse_background(text: str | Sequence[int]) -> tuple[int, int, int]:
    """``"white"``, ``"black"``, ``"grey"``, ``"#rrggbb"``, ``"r,g,b"`` or a 3-sequence -> RGB."""
    if not isinstance(text, str):
        vals = tuple(int(v) for v in text)
    else:
        t = text.strip().lower()
        named = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128),
                 "gray": (128, 128, 128)}
        if t in named:
            return named[t]
        if re.fullmatch(r"#[0-9a-f]{6}", t):
            return (int(t[1:3], 16), int(t[3:5], 16), int(t[5:7], 16))
        parts = [p for p in re.split(r"[,\s]+", t) if p]
        try:
            vals = tuple(int(p) for p in parts)
        except ValueError:
            vals = ()
    if len(vals) != 3 or any(not 0 <= v <= 255 for v in vals):
        raise InvalidArgumentError(
            f"background must be 'white', 'black', '#rrggbb' or 'r,g,b' with values 0..255, "
            f"got {text!r}"
        )
    return (vals[0], vals[1], vals[2])


def _composite(rgb: np.ndarray, alpha: np.ndarray, bg: Sequence[int]) -> np.ndarray:
    """Round-to-nearest ``c·a/255 + bg·(255 − a)/255`` in integers (``rgb [H, W, C]``)."""
    a = alpha.astype(np.uint32)[..., None]
    b = np.asarray(bg, dtype=np.uint32).reshape(1, 1, -1)
    out = (rgb.astype(np.uint32) * a + b * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _to_array(im: Image.Image, bg: tuple[int, int, int]) -> np.ndarray:
    mode = im.mode
    grey_bg = bg[0] == bg[1] == bg[2]
    has_key = "transparency" in im.info and im.info["transparency"] is not None
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.uint8)[..., None]
    if mode in ("L", "RGB") and not has_key:
        arr = np.asarray(im, dtype=np.uint8)
        return arr[..., None] if arr.ndim == 2 else arr
    if mode in _GREY16 or mode == "I":
        v = np.asarray(im).astype(np.float64)
        v = np.clip(v, 0, 65535)
        return np.rint(v / 257.0).astype(np.uint8)[..., None]
    if mode == "F":
        v = np.nan_to_num(np.asarray(im, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if v.size and v.min() >= 0.0 and v.max() <= 1.0:
            v = v * 255.0
        return np.rint(np.clip(v, 0.0, 255.0)).astype(np.uint8)[..., None]
    if mode in ("LA", "La") or (mode == "L" and has_key):
        if grey_bg:
            la = np.asarray(im.convert("LA"), dtype=np.uint8)
            return _composite(la[..., :1], la[..., 1], bg[:1])
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return _composite(rgba[..., :3], rgba[..., 3], bg)
    if mode in _ALPHA_MODES or (mode in ("P", "RGB") and has_key):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return _composite(rgba[..., :3], rgba[..., 3], bg)
    # P, RGBX, CMYK, YCbCr, LAB, HSV and anything else Pillow can turn into RGB.
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


#: Larger images are converted to arrays in strips of about this many pixels, so that only
#: one full-size copy exists besides Pillow's decoded image (every mode rule is per pixel).
STRIP_PIXELS = 1 << 22


def _to_array_in_strips(im: Image.Image, bg: tuple[int, int, int]) -> np.ndarray:
    w, h = im.size
    rows = max(1, STRIP_PIXELS // w)
    first = _to_array(im.crop((0, 0, w, min(rows, h))), bg)
    out = np.empty((h, w, first.shape[2]), np.uint8)
    out[:first.shape[0]] = first
    for y in range(rows, h, rows):
        out[y:y + rows] = _to_array(im.crop((0, y, w, min(y + rows, h))), bg)
    return out


def scale_image(arr: np.ndarray, scale: float) -> np.ndarray:
    """``arr`` resized to ``scale`` times its sides (rounded, at least 1 px; Lanczos, as
    ``max_side``); the array itself when ``scale`` is 1."""
    if scale == 1.0:
        return arr
    h, w = arr.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    src = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    out = np.array(src.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)  # writable
    return out[..., None] if out.ndim == 2 else out


def _resize(arr: np.ndarray, max_side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    src = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    out = np.asarray(src.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def load_image(path: str | os.PathLike[str], options: LoadOptions | None = None) -> np.ndarray:
    """Decode ``path`` into a writable C-contiguous uint8 ``[H, W, C]`` array (C = 1 or 3).

    See the module docstring for the per-mode rules; failures raise
    :class:`~dcqformat.errors.InputImageError`.
    """
    opts = options or LoadOptions()
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise InputImageError(f"{str(p)!r}: cannot read the file ({e.strerror or e})") from e
    if size == 0:
        raise InputImageError(f"{str(p)!r}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below decides; Pillow still raises above 2x its limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                _check_pixels(w, h, opts, repr(str(p)))
                im.load()
                arr = _to_array(im, opts.background) if w * h <= STRIP_PIXELS else \
                    _to_array_in_strips(im, opts.background)
                im.close()  # frees the decoded image before _finish copies the array
    except InputImageError:
        raise
    except Image.DecompressionBombError as e:
        raise InputImageError(f"{str(p)!r}: refused by Pillow's decompression-bomb guard: {e}") from e
    except UnidentifiedImageError as e:
        with open(p, "rb") as fh:
            head = fh.read(8)
        raise InputImageError(
            f"{str(p)!r}: not a recognised image file ({size:,} bytes, starts with {head!r})"
        ) from e
    except MemoryError as e:
        raise InputImageError(f"{str(p)!r}: out of memory while decoding") from e
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, struct.error, ...
        msg = str(e) or type(e).__name__
        kind = "truncated" if "truncated" in msg.lower() else "corrupt or unsupported"
        raise InputImageError(f"{str(p)!r}: {kind} image data ({type(e).__name__}: {msg})") from e
    return _finish(arr, opts)


def _finish(arr: np.ndarray, opts: LoadOptions) -> np.ndarray:
    if opts.max_side is not None:
        arr = _resize(arr, int(opts.max_side))
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order="C")  # Pillow's arrays are read-only views; torch wants writable
    return arr


def _check_pixels(w: int, h: int, opts: LoadOptions, where: str) -> None:
    if w <= 0 or h <= 0:
        raise InputImageError(f"{where}: image has zero size ({w}x{h})")
    if w * h > opts.max_pixels:
        raise InputImageError(
            f"{where}: {w}x{h} = {w * h:,} pixels exceeds the limit of {opts.max_pixels:,} "
            "(decompression-bomb guard; raise max_pixels to allow it)")


def pil_to_image(im: Image.Image, options: LoadOptions | None = None,
                 where: str = "image") -> np.ndarray:
    """A PIL image (any mode) as :func:`load_image` would return it from a file."""
    opts = options or LoadOptions()
    w, h = im.size
    _check_pixels(w, h, opts, where)
    try:
        im.load()
        arr = _to_array(im, opts.background)
    except Exception as e:  # lazily decoded images can fail here like files do
        raise InputImageError(f"{where}: cannot convert the {im.mode} image "
                              f"({type(e).__name__}: {e})") from e
    return _finish(arr, opts)


def array_to_image(arr: np.ndarray, options: LoadOptions | None = None,
                   where: str = "image") -> np.ndarray:
    """A uint8 ``[H, W]`` or ``[H, W, C]`` array (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA)
    as :func:`load_image` would return the same pixels from a PNG file."""
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and not 1 <= a.shape[2] <= 4):
        raise InputImageError(f"{where}: expected a uint8 [H, W] or [H, W, C] array with C in "
                              f"1..4, got {a.dtype} {a.shape}")
    _check_pixels(int(a.shape[1]), int(a.shape[0]), opts := options or LoadOptions(), where)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    im = Image.fromarray(np.ascontiguousarray(a))
    return _finish(_to_array(im, opts.background), opts)


def is_grey(arr: np.ndarray) -> bool:
    """True for one-channel arrays and for RGB arrays whose three channels are equal everywhere."""
    if arr.shape[-1] == 1:
        return True
    return bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))


def to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """Convert a ``[H, W, 1|3]`` array to ``channels`` (grey is replicated; RGB -> 1 requires a
    grey image, see :func:`is_grey`)."""
    c = arr.shape[-1]
    if c == channels:
        return arr
    if c == 1 and channels == 3:
        return np.ascontiguousarray(np.repeat(arr, 3, axis=-1))
    if c == 3 and channels == 1:
        if not is_grey(arr):
            raise InvalidArgumentError("cannot reduce a colour image to one channel")
        return np.ascontiguousarray(arr[..., :1])
    raise InvalidArgumentError(f"cannot convert {c} channel(s) to {channels}")
