"""What a conversion reports: :class:`ConvertSummary` (a written ``.dcq`` file) and
:class:`FitSummary` (a ``fit_only`` run that wrote a fit state)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from dcqformat.encode.selection_stage import summary_lines

__all__ = ["ConvertSummary", "FitSummary"]


@dataclass
class ConvertSummary:
    """What :func:`convert` did. Byte counts are of the written file and of the source files of
    the images it holds; ``ratio_*`` are "times smaller" (source / file)."""

    path: str
    images: int
    skipped: list[dict[str, str]]
    classes: int
    bits: int
    channels: int
    palettes: int
    palette_mode: str
    file_bytes: int
    raw_pixel_bytes: int
    source_bytes: int
    ratio_vs_raw: float
    ratio_vs_source: float
    psnr_mean_db: float
    psnr_min_db: float
    device: str
    model: dict[str, Any]
    stage_seconds: dict[str, float] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)  # dedup / coreset (selection_stage)
    patch_drop: dict[str, Any] | None = None  # patch dropping (encode/patchdrop.py)
    source_kind: str = "folder"  # folder, array or dataset (encode/sources.py)
    scan_skipped: list[dict[str, str]] = field(default_factory=list)  # links seen twice, unreadable

    @property
    def total_seconds(self) -> float:
        """The stage times (``stage_seconds``), summed."""
        return float(sum(self.stage_seconds.values()))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (:func:`dataclasses.asdict`) plus ``total_seconds``."""
        d = asdict(self)
        d["total_seconds"] = self.total_seconds
        return d

    def format(self) -> str:
        """A short human-readable report (what ``dcqformat convert`` prints)."""
        pix = self.raw_pixel_bytes / max(1, self.channels)
        lines = [
            f"wrote {self.path}: {self.images} images, {self.classes} classes, {self.bits} bit(s), "
            f"{self.channels} channel(s), {self.palettes} palette(s) ({self.palette_mode})",
            f"  {self.file_bytes:,} bytes = {8 * self.file_bytes / max(1, pix):.3f} bits/pixel, "
            f"{self.file_bytes / max(1, self.images):.1f} bytes/image",
            f"  {self.ratio_vs_raw:.2f}x smaller than raw pixels ({self.raw_pixel_bytes:,} B), "
            + (f"{self.ratio_vs_source:.2f}x smaller than the source files "
               f"({self.source_bytes:,} B)" if self.source_bytes else
               f"no source files (a {self.source_kind} source)"),
            f"  PSNR vs the (flattened) source images: mean {self.psnr_mean_db:.2f} dB, "
            f"min {self.psnr_min_db:.2f} dB",
        ]
        if self.patch_drop:
            d = self.patch_drop
            lines.append(f"  patch drop {d['spec']} (P={d['patch_size']}): mean theta {d['mean_theta']:.3f}, "
                         f"{100 * d['dropped_patch_fraction']:.1f}% of patches dropped")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} unreadable file(s):")
            lines.extend(f"    {s['path']}: {s['error']}" for s in self.skipped[:20])
            if len(self.skipped) > 20:
                lines.append(f"    ... and {len(self.skipped) - 20} more (see the provenance)")
        if self.scan_skipped:
            lines.append(f"  the scan left out {len(self.scan_skipped)} directory/file name(s):")
            lines.extend(f"    {s['path']}: {s['reason']}" for s in self.scan_skipped[:10])
        lines.extend(summary_lines(self.selection))
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.stage_seconds.items())
        lines.append(f"  time {self.total_seconds:.2f}s on {self.device}: {times}")
        return "\n".join(lines)


@dataclass
class FitSummary(ConvertSummary):
    """:class:`ConvertSummary` of a ``fit_only`` run (no samples written)."""

    def format(self) -> str:
        """One line per fact of the fit state."""
        times = ", ".join(f"{k} {v:.2f}s" for k, v in self.stage_seconds.items())
        return (f"wrote fit state {self.path}: {self.file_bytes:,} bytes, {self.palettes} "
                f"palette(s) of {1 << self.bits} colours, {self.channels} channel(s), fitted on "
                f"{self.images} images\n  time {self.total_seconds:.2f}s on {self.device}: {times}")
