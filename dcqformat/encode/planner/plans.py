"""Candidate plans: one choice for every lever the format has.

A :class:`Plan` fixes the palettes (shared by C clusters, or one per image), the bits q, the
stored resolution (``scale``), the share of images kept (a BGFDQ coreset) and whether patches
are dropped. :func:`candidate_grid` is the planner's search space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Plan", "candidate_grid", "SCALES", "FRACTIONS", "BITS"]

BITS = (1, 2, 3, 4)
SCALES = (1.0, 0.75, 0.5)
FRACTIONS = (1.0, 0.5, 0.25)


@dataclass(frozen=True, order=True)
class Plan:
    """One way to store the dataset."""

    palette: str = "cluster"  # "cluster" or "image"
    clusters: int = 20
    bits: int = 2
    scale: float = 1.0
    fraction: float = 1.0  # share of the images kept (BGFDQ coreset below 1)
    patch_drop: str | None = None

    @property
    def encoding_key(self) -> tuple[str, int, int, float, str | None]:
        """What changes the bytes per image (the fraction only changes the image count)."""
        return (self.palette, self.clusters, self.bits, self.scale, self.patch_drop)

    def name(self) -> str:
        """A short label, e.g. ``q2 C20 s0.5 f0.5``."""
        pal = "image" if self.palette == "image" else f"C{self.clusters}"
        parts = [f"q{self.bits}", pal]
        if self.scale != 1.0:
            parts.append(f"s{self.scale:g}")
        if self.fraction != 1.0:
            parts.append(f"f{self.fraction:g}")
        if self.patch_drop:
            parts.append(f"drop {self.patch_drop}")
        return " ".join(parts)

    def convert_kwargs(self) -> dict[str, Any]:
        """The ``convert()`` options that realise this plan (besides the user's own)."""
        kw: dict[str, Any] = {"bits": self.bits, "palette": self.palette, "scale": self.scale,
                              "patch_drop": self.patch_drop}
        if self.palette == "cluster":
            kw["clusters"] = self.clusters
        else:  # per-image refinement costs ~0.5 s per image: planned and written without it
            kw["refine"] = False
        kw["coreset"] = None if self.fraction == 1.0 else f"bgfdq:{self.fraction:g}"
        return kw

    def record(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**asdict(self), "name": self.name()}


def candidate_grid(large_clusters: int = 64) -> list[Plan]:
    """Every image share {1, 1/2, 1/4} of 28 encodings: palette {C = 20, one per image} x
    q {1..4} x scale {1, 3/4, 1/2}; C = ``large_clusters`` at q {1, 2}, full resolution; and
    adaptive patch dropping (``spd``) at q {2, 3}, C = 20, full resolution."""
    encodings: list[tuple[str, int, int, float, str | None]] = [
        ("cluster", 20, q, s, None) for q in BITS for s in SCALES]
    encodings += [("image", 20, q, s, None) for q in BITS for s in SCALES]
    encodings += [("cluster", large_clusters, q, 1.0, None) for q in (1, 2)]
    encodings += [("cluster", 20, q, 1.0, "spd") for q in (2, 3)]
    return [Plan(p, c, q, s, f, d) for p, c, q, s, d in encodings for f in FRACTIONS]
