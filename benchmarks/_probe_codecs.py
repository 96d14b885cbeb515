"""The train probe's baseline encoders: optimised PNG, per-image PNG-8 quantizers, JPEG, WebP,
optional downscaling, the byte-matching searches and the random stratified subsets. Every size
is the length of a real encoded file (Pillow, written to memory)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)


def _like(dec: np.ndarray, channels: int) -> np.ndarray:
    """A decoded H×W or H×W×3 array as H×W×``channels`` (grey: the first channel)."""
    if dec.ndim == 2:
        dec = dec[..., None]
    if channels == 1 and dec.shape[-1] != 1:
        dec = dec[..., :1]
    return np.ascontiguousarray(dec)


def png_bytes(img: np.ndarray) -> int:
    buf = io.BytesIO()
    _pil(img).save(buf, "PNG", optimize=True)
    return buf.tell()


def downscale(img: np.ndarray, scale: float) -> np.ndarray:
    """``img`` (H×W×C uint8) downscaled by ``scale`` (area filter: Pillow BOX); unchanged at 1."""
    if scale >= 1.0:
        return img
    h, w = img.shape[:2]
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return _like(np.asarray(_pil(img).resize(size, Image.Resampling.BOX)), img.shape[-1])


def upscale_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``img`` resized (bilinear) to ``height × width``; unchanged when it has that size."""
    if img.shape[:2] == (height, width):
        return img
    return _like(np.asarray(_pil(img).resize((width, height), Image.Resampling.BILINEAR)), img.shape[-1])


def quantize_colours(img: np.ndarray, colours: int, kmeans: bool = True) -> tuple[np.ndarray, int]:
    """Per-image Pillow quantization to ``colours`` colours (MEDIANCUT, then k-means when
    ``kmeans``): (decoded uint8 like ``img``, optimised PNG-8 bytes)."""
    rgb = _pil(img).convert("RGB")
    q = rgb.quantize(colors=int(colours), method=Image.Quantize.MEDIANCUT, kmeans=1 if kmeans else 0)
    buf = io.BytesIO()
    q.save(buf, "PNG", optimize=True)
    return _like(np.asarray(q.convert("RGB")), img.shape[-1]), buf.tell()


def quantize_image(img: np.ndarray, bits: int, kmeans: bool) -> tuple[np.ndarray, int]:
    """Per-image Pillow quantization to 2**bits colours: (decoded uint8 like ``img``, PNG-8 bytes)."""
    return quantize_colours(img, 1 << bits, kmeans)


def jpeg_image(img: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    _pil(img).save(buf, "JPEG", quality=int(quality), optimize=True)
    n = buf.tell()
    buf.seek(0)
    return _like(np.asarray(Image.open(buf)), img.shape[-1]), n


def webp_image(img: np.ndarray, quality: int) -> tuple[np.ndarray, int]:
    """WebP lossy at ``quality`` (0..100), ``method=6`` (slowest, smallest): (decoded, bytes).
    Grey images are stored as RGB (Pillow's WebP has no grey mode) and decoded to grey."""
    buf = io.BytesIO()
    _pil(img).save(buf, "WEBP", quality=int(quality), method=6)
    n = buf.tell()
    buf.seek(0)
    dec = Image.open(buf)
    dec = dec.convert("L") if img.shape[-1] == 1 else dec.convert("RGB")
    return _like(np.asarray(dec), img.shape[-1]), n


def jpeg_search(x: np.ndarray, target: int, qualities: Sequence[int] = range(1, 96)) -> tuple[int, int, dict[int, int]]:
    """The JPEG quality whose total bytes over ``x`` are closest to ``target`` (bisection;
    total bytes grow with quality): (quality, bytes, {quality: bytes tried})."""
    tried: dict[int, int] = {}

    def total(q: int) -> int:
        if q not in tried:
            tried[q] = sum(jpeg_image(img, q)[1] for img in x)
        return tried[q]

    qs = list(qualities)
    lo, hi = 0, len(qs) - 1
    while lo < hi:  # smallest quality with bytes >= target
        mid = (lo + hi) // 2
        if total(qs[mid]) >= target:
            hi = mid
        else:
            lo = mid + 1
    cands = [qs[lo]] + ([qs[lo - 1]] if lo > 0 else [])
    best = min(cands, key=lambda q: (abs(total(q) - target), q))
    return best, total(best), tried


def search_at_or_under(values: Sequence[int], total: Callable[[int], int], target: int,
                       neighbours: int = 2) -> tuple[int, int, bool]:
    """The value whose ``total`` is the largest at or under ``target``, for totals that grow
    (nearly) with the value: bisection, then the ``neighbours`` values either side are tried
    too. Returns (value, its total, under) with ``under`` False when even the smallest total
    tried exceeds ``target`` (then the value with the smallest total)."""
    vals = list(values)
    lo, hi = 0, len(vals) - 1
    if total(vals[lo]) <= target:
        while lo < hi:  # largest index with total <= target
            mid = (lo + hi + 1) // 2
            if total(vals[mid]) <= target:
                lo = mid
            else:
                hi = mid - 1
    around = range(max(0, lo - neighbours), min(len(vals), lo + neighbours + 1))
    sizes = {vals[i]: total(vals[i]) for i in around}
    under = {v: b for v, b in sizes.items() if b <= target}
    if under:
        best = max(under, key=lambda v: (under[v], -v))
        return best, under[best], True
    best = min(sizes, key=lambda v: (sizes[v], v))
    return best, sizes[best], False


def webp_search(x: np.ndarray, target: int, scale: float = 1.0) -> dict[str, object]:
    """The WebP quality (0..100) whose total bytes over ``x`` (downscaled by ``scale``) are
    the largest at or under ``target``: {quality, bytes, under, tried}."""
    small = [downscale(img, scale) for img in x]
    tried: dict[int, int] = {}

    def total(q: int) -> int:
        if q not in tried:
            tried[q] = sum(webp_image(img, q)[1] for img in small)
        return tried[q]

    q, nbytes, under = search_at_or_under(range(0, 101), total, target)
    return {"quality": q, "bytes": nbytes, "under": under, "scale": scale,
            "tried": {str(k): v for k, v in sorted(tried.items())}}


def png8_search(x: np.ndarray, target: int, scales: Sequence[float] = (1.0,)) -> dict[str, object]:
    """Per-image k-means PNG-8: the (scale, colours) among ``scales`` × 2..256 colours whose
    total bytes are the largest at or under ``target``: {colours, scale, bytes, under, tried}."""
    best: dict[str, object] | None = None
    tried: dict[str, int] = {}
    for scale in scales:
        small = [downscale(img, scale) for img in x]
        cache: dict[int, int] = {}

        def total(k: int, small: list[np.ndarray] = small, cache: dict[int, int] = cache) -> int:
            if k not in cache:
                cache[k] = sum(quantize_colours(img, k)[1] for img in small)
            return cache[k]

        k, nbytes, under = search_at_or_under(range(2, 257), total, target)
        tried.update({f"{scale:g}x{kk}": v for kk, v in sorted(cache.items())})
        cand = {"colours": k, "scale": scale, "bytes": nbytes, "under": under}
        if best is None or _better(cand, best):
            best = cand
    assert best is not None
    return {**best, "tried": tried}


def _better(a: dict[str, object], b: dict[str, object]) -> bool:
    """At or under the target beats above it; then closer to it (more bytes if under)."""
    if a["under"] != b["under"]:
        return bool(a["under"])
    ab, bb = int(a["bytes"]), int(b["bytes"])  # type: ignore[call-overload]
    return ab > bb if a["under"] else ab < bb


def stratified_subset(labels: np.ndarray, sizes: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """Indices of a random class-stratified subset (the same fraction of every class, each class
    in a seeded random order) whose ``sizes`` add up to at most ``budget`` bytes, as large as
    possible."""
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    perms = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}

    def pick(frac: float) -> np.ndarray:
        parts = [p[: int(round(frac * len(p)))] for p in perms.values()]
        return np.sort(np.concatenate(parts))

    lo, hi = 0.0, 1.0
    if sizes.sum() <= budget:
        return np.arange(len(labels))
    for _ in range(40):
        mid = (lo + hi) / 2
        if sizes[pick(mid)].sum() <= budget:
            lo = mid
        else:
            hi = mid
    return pick(lo)
