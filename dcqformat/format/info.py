"""The storage report: where every byte of a .dcq file went.

Sections are measured from the file itself (HDF5 storage sizes); what the named sections
do not account for (HDF5 superblock, object headers, attributes, B-trees, heaps) is
reported as ``container_overhead`` so the parts always add up to the file size.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dcqformat.format.reader import DCQFile


def storage_report(f: DCQFile) -> dict[str, Any]:
    """Build the report dict for ``f`` (what ``dcqformat info --json`` prints)."""
    m = f.metadata
    n = m.num_samples
    pixels = int((m.height.astype(np.int64) * m.width.astype(np.int64)).sum())
    sections = dict(sorted(m.section_bytes.items()))
    counted = sum(sections.values())
    overhead = m.file_size - counted
    raw_rgb = pixels * 3
    raw_stored_channels = pixels * m.channels
    packed_ideal = int(((m.height.astype(np.int64) * m.width.astype(np.int64) * m.bits + 7) // 8).sum())
    report: dict[str, Any] = {
        "file": str(f.path),
        "version": f"{m.version[0]}.{m.version[1]}",
        "created_by": m.created_by,
        "samples": n,
        "classes": len(m.classes),
        "bits": m.bits,
        "channels": m.channels,
        "palette_size": m.palette_size,
        "palettes": int(m.palettes.shape[0]),
        "payload_encoding": m.payload_encoding,
        "pixels": pixels,
        "file_bytes": m.file_size,
        "sections": sections,
        "container_overhead": overhead,
        "payload_bytes": m.payload_size,
        "payload_bytes_bitpacked": packed_ideal,
        "bits_per_pixel": (8 * m.file_size / pixels) if pixels else 0.0,
        "payload_bits_per_pixel": (8 * m.payload_size / pixels) if pixels else 0.0,
        "bytes_per_image": (m.file_size / n) if n else 0.0,
        "raw_pixel_bytes": raw_stored_channels,
        "ratio_vs_raw": (raw_stored_channels / m.file_size) if m.file_size else 0.0,
        "raw_rgb_bytes": raw_rgb,
        "ratio_vs_raw_rgb": (raw_rgb / m.file_size) if m.file_size else 0.0,
    }
    if m.payload_encoding == "zstd" and packed_ideal:
        report["zstd_saving"] = 1.0 - m.payload_size / packed_ideal
    if m.source_sizes is not None:
        known = m.source_sizes[m.source_sizes >= 0]
        if known.size:
            total = int(known.sum())
            report["source_bytes"] = total
            report["source_files_recorded"] = int(known.size)
            report["ratio_vs_source"] = total / m.file_size if m.file_size else 0.0
    counts = Counter(m.label.tolist())
    report["images_per_class"] = {m.classes[k]: counts.get(k, 0) for k in range(len(m.classes))}
    sizes = Counter(zip(m.height.tolist(), m.width.tolist(), strict=False))
    report["image_sizes"] = {f"{h}x{w}": c for (h, w), c in sizes.most_common(10)}
    report["distinct_image_sizes"] = len(sizes)
    if m.original_height is not None and m.original_width is not None:
        orig = Counter(zip(m.original_height.tolist(), m.original_width.tolist(), strict=True))
        report["original_sizes"] = {f"{h}x{w}": c for (h, w), c in orig.most_common(10)}
    report["selections"] = {
        name: {"size": int(np.asarray(s["selected"]).size), **s["attrs"]}
        for name, s in m.selections.items()
    }
    if m.masks is not None:
        from dcqformat.format.masks import mask_report
        report["patch_mask"] = mask_report(m)
    if m.ctx is not None:
        from dcqformat.format.ctx import ctx_report
        report["ctx"] = ctx_report(m)
    from dcqformat.format.costs import encoding_costs
    report["encoding_costs"] = encoding_costs(f)
    report["provenance"] = m.provenance
    return report


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def _short(value: Any, limit: int = 100) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _selection_lines(name: str, sel: dict[str, Any], samples: int, classes: list[str]) -> list[str]:
    """Text lines for one stored selection: size, method, seed, model, parameters, per-class
    counts and, for a de-duplication, its groups and cross-class conflicts."""
    size = sel.get("size", 0)
    head = f"  selection {name}: {size} of {samples} samples"
    if "method" in sel:
        head += f", method {sel['method']}, seed {sel.get('seed')}"
    if sel.get("model_identity"):
        head += f", model {_short(sel['model_identity'], 40)}"
    lines = [head]
    counts = sel.get("per_class_counts")
    if isinstance(counts, dict):
        def cname(k: str) -> str:
            return classes[int(k)] if k.isdigit() and int(k) < len(classes) else k
        lines.append("    per class: " + ", ".join(f"{cname(str(k))} {v}" for k, v in counts.items()))
    params = sel.get("params")
    if isinstance(params, dict) and params:
        first = [k for k in ("ratio", "hash", "threshold", "mirror_invariant", "k", "candidates")
                 if k in params]
        keys = first + [k for k in params if k not in first]
        lines.append("    params: " + _short(", ".join(f"{k}={params[k]}" for k in keys), 200))
    groups = sel.get("groups")
    if isinstance(groups, list):
        members = sum(len(g.get("members", [])) for g in groups if isinstance(g, dict))
        conflicts = [g for g in groups if isinstance(g, dict) and g.get("conflict")]
        lines.append(f"    duplicate groups: {len(groups)} ({members} images), cross-class "
                     f"conflicts: {len(conflicts)}")
        for g in conflicts[:10]:
            who = ", ".join(f"{m} [{classes[c] if 0 <= c < len(classes) else c}]"
                            for m, c in zip(g.get("members", []), g.get("labels", []), strict=False))
            lines.append(f"      conflict: {_short(who, 200)}; kept {', '.join(g.get('kept', []))}")
        if len(conflicts) > 10:
            lines.append(f"      ... and {len(conflicts) - 10} more conflicts (info --json lists all)")
    return lines


def format_report(report: dict[str, Any]) -> str:
    """Render the report dict as the human-readable text of ``dcqformat info``."""
    r = report
    lines = [
        f"{r['file']}: dcq v{r['version']} ({r['created_by']})",
        f"  samples {r['samples']}, classes {r['classes']}, {r['bits']} bit(s)/pixel index, "
        f"{r['channels']} channel(s), {r['palettes']} palette(s) of {r['palette_size']} colours, "
        f"payload {r['payload_encoding']}",
        f"  file {r['file_bytes']} bytes ({_human(r['file_bytes'])}): "
        f"{r['bits_per_pixel']:.3f} bits/pixel overall, {r['bytes_per_image']:.1f} bytes/image",
        f"  vs raw pixels ({r['raw_pixel_bytes']} B, {r['channels']} ch): {r['ratio_vs_raw']:.2f}x smaller; "
        f"vs raw RGB: {r['ratio_vs_raw_rgb']:.2f}x",
    ]
    if "ratio_vs_source" in r:
        lines.append(f"  vs source files ({r['source_files_recorded']} files, {r['source_bytes']} B): "
                     f"{r['ratio_vs_source']:.2f}x smaller")
    if "ctx" in r:
        c = r["ctx"]
        lines.append(f"  ctx models: one per {c['models']} ({c['num_models']} model(s), {c['model_rows']} "
                     f"rows), {c['model_bytes']} B ({c['model_bytes_per_image']:.2f} B/image); "
                     f"streams {c['stream_bytes']} B ({c['stream_bytes_per_image']:.1f} B/image)")
    if "encoding_costs" in r:
        e = r["encoding_costs"]
        n = max(1, r["samples"])
        lines.append(f"  payload as raw / zstd / ctx: {e['raw']} / {e['zstd']} / {e['ctx']} B "
                     f"({e['raw'] / n:.1f} / {e['zstd'] / n:.1f} / {e['ctx'] / n:.1f} B/image; ctx "
                     f"with its models, one per {e['ctx_models']}"
                     + ("" if e["measured_on"] >= r["samples"] else
                        f"; measured on {e['measured_on']} samples and scaled") + ")")
    if "zstd_saving" in r:
        lines.append(f"  zstd saved {100 * r['zstd_saving']:.1f}% of the {r['payload_bytes_bitpacked']} "
                     "bit-packed payload bytes")
    lines.append("  where the bytes went:")
    total = r["file_bytes"] or 1
    for name, size in sorted(r["sections"].items(), key=lambda kv: -kv[1]):
        lines.append(f"    {name:<28} {size:>12} B  {100 * size / total:6.2f}%")
    lines.append(f"    {'(HDF5 container overhead)':<28} {r['container_overhead']:>12} B  "
                 f"{100 * r['container_overhead'] / total:6.2f}%")
    lines.append("  images per class: " + ", ".join(f"{k} {v}" for k, v in r["images_per_class"].items()))
    sizes = ", ".join(f"{k} ×{v}" for k, v in r["image_sizes"].items())
    lines.append(f"  image sizes ({r['distinct_image_sizes']} distinct): {sizes}")
    for name, sel in r["selections"].items():
        lines.extend(_selection_lines(name, sel, r["samples"], list(r["images_per_class"])))
    if "patch_mask" in r:
        from dcqformat.format.masks import mask_report_lines
        lines.extend(mask_report_lines(r["patch_mask"]))
    if r["provenance"]:
        params = r["provenance"].get("parameters", {k: v for k, v in r["provenance"].items()
                                                    if not isinstance(v, (list, dict))})
        lines.append(f"  parameters: {params}")
        lines.extend(_encoded_on(r["provenance"]))
        lines.extend(_budget_lines(r["provenance"].get("budget_plan")))
    if r.get("original_sizes"):
        lines.append(f"  original sizes recorded (spec §15): {r['original_sizes']}")
    return "\n".join(lines)


def _encoded_on(prov: dict[str, Any]) -> list[str]:
    """Where the encoder ran, from the provenance: torch's version and CPU capability (files
    from the same command are byte-identical only on the same capability)."""
    cap, version = prov.get("torch_cpu_capability"), prov.get("torch_version")
    if cap is None:
        return []
    return [f"  encoded with torch {_short(version, 40)}, CPU capability {_short(cap, 40)} (the same "
            "command gives the same file only on the same capability)"]


def _budget_lines(plan: Any) -> list[str]:
    """What ``convert --budget`` chose and what it weighed (from the provenance)."""
    if not isinstance(plan, dict) or not isinstance(plan.get("chosen"), dict):
        return []
    c = plan["chosen"]
    est = c.get("estimate")
    out = [f"  budget plan: {c.get('name')} for a budget of {plan.get('budget')} B "
           f"(predicted {c.get('bytes')} B ± {c.get('error_95')}; estimate "
           f"{'n/a' if est is None else f'{100 * est:.1f} %'})"]
    for f in plan.get("finalists", [])[:6]:
        if f.get("name") != c.get("name") and f.get("estimate") is not None:
            out.append(f"    also weighed: {f.get('name')} ({f.get('bytes')} B, estimate "
                       f"{100 * f['estimate']:.1f} %)")
    return out
