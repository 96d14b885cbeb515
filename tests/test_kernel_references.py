"""The rule "a pure-NumPy reference for every Numba kernel, checked by Hypothesis property tests",
enforced: every function in dcqformat/ decorated with ``njit`` / ``numba.njit`` / ``jit`` must
be in REGISTRY with its reference and the property tests that hold it to that reference
(through a public wrapper is fine), or be registered as covered by a kernel that calls it (an
inline helper, a loop a dispatcher picks). A new kernel fails here until it is registered; an
entry whose kernel, reference or test is gone fails too."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COVERED = "covered by "

CB = "tests/test_codecs_bitpack.py::"
CC = "tests/test_codecs_ctx.py::"
CX = "tests/test_codecs_ctx_batch.py::"
CD = "tests/test_codecs_kernels_direct.py::"
CG = "tests/test_codecs_gather.py::"
CP = "tests/test_codecs_palette.py::"
CPB = "tests/test_codecs_palette_batch.py::"
MK = "tests/test_masks.py::"
ZF = "tests/test_codecs_zstd_frames.py::"
REF = "dcqformat.codecs.reference."
CREF = "dcqformat.codecs.ctx_reference."
DECODE = "dcqformat.codecs.palette.decode_kernel"
LOOPS = (CD + "test_every_palette_loop_matches_the_reference", CP + "test_decode_matches_reference")
CTX_DECODE = (CC + "test_kernel_streams_equal_reference_and_round_trip",
              CC + "test_random_streams_never_crash_and_agree_with_reference",
              CX + "test_batch_kernel_matches_the_reference")

#: kernel (module.function) -> (reference, or "covered by <kernel>"; the tests comparing them)
REGISTRY: dict[str, tuple[str, tuple[str, ...]]] = {
    "dcqformat.codecs.bitpack._pack_kernel": (REF + "pack_ref", (CB + "test_round_trip_and_reference",)),
    "dcqformat.codecs.bitpack._unpack_kernel": (
        REF + "unpack_ref", (CB + "test_unpack_arbitrary_bytes_matches_reference",)),
    # ctx: context helpers (inline="always"; their references are also checked through the kernels)
    "dcqformat.codecs.ctx_context.neighbours": (
        COVERED + "dcqformat.codecs.ctx_model.count_kernel", (CC + "test_count_kernel_matches_reference",)),
    "dcqformat.codecs.ctx_context.context_of": (
        COVERED + "dcqformat.codecs.ctx_model.count_kernel", (CC + "test_count_kernel_matches_reference",)),
    "dcqformat.codecs.ctx_context.to_rank": (
        COVERED + "dcqformat.codecs.ctx_model.count_kernel", (CC + "test_count_kernel_matches_reference",)),
    "dcqformat.codecs.ctx_context.from_rank": (
        COVERED + "dcqformat.codecs.ctx_decode.ctx_decode_kernel", CTX_DECODE),
    "dcqformat.codecs.ctx_model.count_kernel": (
        CREF + "count_reference", (CC + "test_count_kernel_matches_reference",
                                   CC + "test_rectangles_of_a_masked_sample")),
    "dcqformat.codecs.ctx_rans.ctx_encode_kernel": (
        CREF + "encode_status_reference", (CX + "test_encoder_streams_and_statuses",
                                           CC + "test_kernel_streams_equal_reference_and_round_trip",
                                           CC + "test_rectangles_of_a_masked_sample")),
    "dcqformat.codecs.ctx_decode._eq": (COVERED + "dcqformat.codecs.ctx_decode.decode_rect", CTX_DECODE),
    "dcqformat.codecs.ctx_decode.neighbours_u": (COVERED + "dcqformat.codecs.ctx_decode.decode_rect", CTX_DECODE),
    "dcqformat.codecs.ctx_decode._rank1": (COVERED + "dcqformat.codecs.ctx_decode.decode_rect", CTX_DECODE),
    "dcqformat.codecs.ctx_decode._symbol_above": (COVERED + "dcqformat.codecs.ctx_decode.decode_rect", CTX_DECODE),
    "dcqformat.codecs.ctx_decode._symbol": (COVERED + "dcqformat.codecs.ctx_decode.decode_rect", CTX_DECODE),
    "dcqformat.codecs.ctx_decode.decode_rect": (
        COVERED + "dcqformat.codecs.ctx_decode.ctx_decode_kernel", CTX_DECODE),
    "dcqformat.codecs.ctx_decode._decode_sample": (
        COVERED + "dcqformat.codecs.ctx_decode.ctx_decode_kernel", CTX_DECODE),
    "dcqformat.codecs.ctx_decode.ctx_decode_kernel": (
        CREF + "decode_status_reference", CTX_DECODE + (CX + "test_encoder_streams_and_statuses",)),
    "dcqformat.codecs.ctx_decode.ctx_decode_pixels_kernel": (
        CREF + "decode_status_reference", (CX + "test_batch_kernel_matches_the_reference",
                                           CC + "test_kernel_streams_equal_reference_and_round_trip")),
    "dcqformat.codecs.ctx_decode.ctx_decode_batch_kernel": (
        CREF + "decode_status_reference", (CX + "test_batch_kernel_matches_the_reference",)),
    "dcqformat.codecs.ctx_decode.pack_into": (REF + "pack_ref", (CC + "test_pack_into_equals_the_reference_packing",)),
    # gather (ctx decode to pixels)
    "dcqformat.codecs.gather.gather_palette": (REF + "gather_palette_ref", (CG + "test_gather_equals_the_reference",)),
    "dcqformat.codecs.gather.gather_bytes": (REF + "gather_palette_ref", (CD + "test_gather_bytes",)),
    "dcqformat.codecs.gather._hwc3_words": (
        COVERED + "dcqformat.codecs.gather.gather_palette", (CG + "test_gather_equals_the_reference",)),
    "dcqformat.codecs.gather._chw3_pairs": (
        COVERED + "dcqformat.codecs.gather.gather_palette", (CG + "test_gather_equals_the_reference",)),
    "dcqformat.codecs.gather._chw3_quads": (
        COVERED + "dcqformat.codecs.gather.gather_palette", (CG + "test_gather_equals_the_reference",)),
    "dcqformat.codecs.gather._quad": (
        COVERED + "dcqformat.codecs.gather.gather_palette", (CG + "test_gather_equals_the_reference",)),
    # palette decode
    DECODE: (REF + "decode_ref", (CP + "test_decode_matches_reference", CP + "test_byte_table_path_matches_reference")),
    "dcqformat.codecs.palette.decode_many_kernel": (
        REF + "decode_many_ref", (CPB + "test_decode_many_matches_per_sample",
                                  CPB + "test_decode_many_shared_byte_tables_match_the_reference")),
    "dcqformat.codecs.palette.decode_many_tables": (
        COVERED + "dcqformat.codecs.palette.decode_many_kernel",
        (CPB + "test_decode_many_shared_byte_tables_match_the_reference",)),
    "dcqformat.codecs.palette.table_slots": (REF + "table_slots_ref", (CD + "test_table_slots",)),
    "dcqformat.codecs.palette_grey.decode_strided": (REF + "decode_ref", (CD + "test_strided_loop_over_a_pixel_range",)),
    "dcqformat.codecs.palette_grey.q8_count_bad": (REF + "q8_count_bad_ref", (CD + "test_q8_count_bad",)),
    "dcqformat.codecs.palette_table.decode_by_table": (
        REF + "decode_ref", (CP + "test_byte_table_path_matches_reference",
                             CD + "test_every_palette_loop_matches_the_reference")),
    "dcqformat.codecs.palette_table.byte_table": (
        COVERED + "dcqformat.codecs.palette_table.decode_by_table", (CP + "test_byte_table_path_matches_reference",)),
    "dcqformat.codecs.palette_table.table_decode": (
        COVERED + "dcqformat.codecs.palette_table.decode_by_table", (CP + "test_byte_table_path_matches_reference",)),
    **{f"dcqformat.codecs.palette_grey.c1_{q}": (REF + "decode_ref", LOOPS) for q in ("q8", "q4", "q2", "q1", "qx")},
    **{f"dcqformat.codecs.palette_rgb.{lay}_{q}": (REF + "decode_ref", LOOPS)
       for lay in ("hwc3", "chw3") for q in ("q8", "q4", "q2", "q1", "qx", "q8_words")},
    # patch masks
    "dcqformat.codecs.patches._gather_kernel": (REF + "gather_ref", (MK + "test_gather_scatter_kernels_match_reference",)),
    "dcqformat.codecs.patches._decode_masked_kernel": (
        REF + "decode_masked_ref", (MK + "test_decode_masked_kernel_matches_reference",
                                    MK + "test_gather_scatter_kernels_match_reference",
                                    CD + "test_masked_decode_status")),
    "dcqformat.codecs.patches._mask_stats_kernel": (
        REF + "mask_stats_ref", (MK + "test_mask_stats_kernel_matches_reference",)),
    # zstd frame walk
    "dcqformat.codecs.zstd_frames.frame_status": (
        "dcqformat.codecs.zstd_reference.frame_walk_ref", (ZF + "test_frame_walk_matches_the_rfc_reference",
                                                          ZF + "test_real_frames_are_ok_and_the_reference_agrees")),
    "dcqformat.codecs.zstd_frames._frames_kernel": (
        "dcqformat.codecs.zstd_reference.frames_ref", (ZF + "test_frame_walk_matches_the_rfc_reference",)),
    # the decoded-map cache
    "dcqformat.format.cache._take": (REF + "take_ref", (CD + "test_cache_take_and_put_batch",)),
    "dcqformat.format.cache._scatter": (REF + "cache_scatter_ref", (CD + "test_cache_take_and_put_batch",)),
}


def _is_jit(decorator: ast.expr) -> bool:
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name in ("njit", "jit")


def kernels() -> dict[str, set[str]]:
    """Every jit-decorated function of dcqformat/ (module.function) -> the names it calls."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "dcqformat").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and any(_is_jit(d) for d in node.decorator_list):
                calls = {c.func.id if isinstance(c.func, ast.Name) else c.func.attr
                         for c in ast.walk(node) if isinstance(c, ast.Call)
                         and isinstance(c.func, (ast.Name, ast.Attribute))}
                found[f"{module}.{node.name}"] = calls
    return found


def _resolves(qualified: str) -> bool:
    module, _, name = qualified.rpartition(".")
    try:
        return callable(getattr(importlib.import_module(module), name, None))
    except ImportError:
        return False


def _test_exists(test_id: str) -> bool:
    file, _, name = test_id.partition("::")
    path = ROOT / file
    return path.is_file() and any(isinstance(n, ast.FunctionDef) and n.name == name
                                  for n in ast.parse(path.read_text(encoding="utf-8")).body)


def _reaches(found: dict[str, set[str]], start: str, target: str) -> bool:
    """Whether kernel ``start`` calls ``target`` (by name), directly or through other kernels."""
    short = {k.rpartition(".")[2]: k for k in found}
    todo, seen = [start], set()
    while todo:
        k = todo.pop()
        if k in seen:
            continue
        seen.add(k)
        if target.rpartition(".")[2] in found[k]:
            return True
        todo += [short[c] for c in found[k] if c in short]
    return False


def test_every_kernel_is_registered_and_nothing_registered_is_gone() -> None:
    found = kernels()
    assert len(found) >= 50, "the kernel walk found too few kernels: is the decorator test broken?"
    missing = sorted(set(found) - set(REGISTRY))
    stale = sorted(set(REGISTRY) - set(found))
    assert not missing, f"kernels without a reference and property test in REGISTRY: {missing}"
    assert not stale, f"REGISTRY names kernels that no longer exist: {stale}"


def test_every_reference_and_test_exists() -> None:
    found = kernels()
    problems = []
    for kernel, (reference, tests) in REGISTRY.items():
        if reference.startswith(COVERED):
            host = reference[len(COVERED):]
            if host not in REGISTRY or host == kernel:
                problems.append(f"{kernel}: {host} is not a registered kernel")
            elif host in found and kernel in found and not _reaches(found, host, kernel):
                problems.append(f"{kernel}: {host} never calls it")
        elif not _resolves(reference):
            problems.append(f"{kernel}: reference {reference} does not exist")
        if not tests:
            problems.append(f"{kernel}: no test")
        problems += [f"{kernel}: test {t} does not exist" for t in tests if not _test_exists(t)]
    assert not problems, "\n".join(problems)


def test_covered_helpers_lead_to_a_kernel_with_a_reference() -> None:
    for kernel, (reference, _) in REGISTRY.items():
        seen = {kernel}
        while reference.startswith(COVERED):
            host = reference[len(COVERED):]
            assert host not in seen, f"{kernel}: 'covered by' goes round in a circle"
            seen.add(host)
            reference = REGISTRY[host][0]
        assert _resolves(reference), f"{kernel}: no reference at the end of its 'covered by' chain"


def test_the_property_tests_are_hypothesis_tests() -> None:
    """A registered test must draw its inputs (@given), not be an example test."""
    tests = {t for _, ts in REGISTRY.values() for t in ts}
    plain = []
    for t in sorted(tests):
        file, _, name = t.partition("::")
        tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
        if not any("given" in ast.unparse(d) for d in fn.decorator_list):
            plain.append(t)
    assert not plain, f"registered tests without @given: {plain}"
