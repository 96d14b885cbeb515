"""The rules of ``docs/architecture.md``, checked on the source tree: no import cycle inside
``dcqformat/``, which folder may import which, no module using another module's private
names, no function over 100 lines, no module over 500, a docstring on every public function,
and a plain ``convert()`` never loads the torchrun driver."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dcqformat"

#: For each folder, the dcqformat folders its modules may import at module level.
ALLOWED = {
    "codecs": {"codecs"},
    "format": {"codecs", "format"},
    "select": {"select"},
    "encode": {"codecs", "format", "select", "encode"},
    "torch": {"codecs", "format", "torch"},
}
ROOT_MODULES = {"errors", "checks", "device", "_version"}  # importable from anywhere


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text()) for p in sorted(PKG.rglob("*.py"))}


def top_level_imports(name: str, tree: ast.Module) -> set[str]:
    """dcqformat modules imported by statements at module level (not inside functions)."""
    out: set[str] = set()
    is_pkg = (PKG.parent / (name.replace(".", "/") + "/__init__.py")).exists()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dcqformat")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("dcqformat"):
                subs = {f"{mod}.{a.name}" for a in node.names}
                found = {m for m in subs if _is_module(m)}
                out |= found if found == subs else found | {mod}
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return out - ancestors  # a parent package is always initialised before its modules


def _is_module(dotted: str) -> bool:
    base = PKG.parent / dotted.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: {m for m in top_level_imports(n, t) if m in mods and m != n} for n, t in mods.items()}


def test_no_import_cycle_inside_dcqformat() -> None:
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)


def test_folders_import_only_what_the_architecture_allows() -> None:
    bad = []
    for n, deps in graph().items():
        parts = n.split(".")
        if len(parts) < 3 or parts[1] not in ALLOWED:
            continue
        for d in deps:
            dp = d.split(".")
            if len(dp) == 2 and dp[1] in ROOT_MODULES:
                continue
            if len(dp) >= 2 and dp[1] not in ALLOWED[parts[1]]:
                bad.append(f"{n} imports {d}")
    assert not bad, "\n".join(sorted(bad))


def test_no_module_imports_another_modules_private_names() -> None:
    bad = []
    for n, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dcqformat"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        bad.append(f"{n}: from {node.module} import {a.name}")
    assert not bad, "\n".join(bad)


def test_no_function_over_100_lines_and_no_module_over_500() -> None:
    long_funcs, big_mods = [], []
    for path in sorted(PKG.rglob("*.py")):
        src = path.read_text()
        if len(src.splitlines()) > 500:
            big_mods.append(f"{path.relative_to(PKG)}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > 100:
                    long_funcs.append(f"{path.relative_to(PKG)}:{node.lineno} {node.name}: {length}")
    assert not long_funcs and not big_mods, "\n".join(long_funcs + big_mods)


def test_every_public_function_class_and_method_has_a_docstring() -> None:
    """Public: a name not starting with ``_``. Checked: module-level functions and classes, and
    the methods of module-level classes (functions nested in functions are not)."""
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent)
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, defs):
                continue
            inner = node.body if isinstance(node, ast.ClassDef) else []
            for d in [node] + [m for m in inner if isinstance(m, defs)]:
                if not d.name.startswith("_") and ast.get_docstring(d) is None:
                    name = d.name if d is node else f"{node.name}.{d.name}"
                    missing.append(f"{rel}:{d.lineno}:{name}")
    assert not missing, "no docstring:\n" + "\n".join(missing)


def test_a_plain_convert_never_loads_the_torchrun_driver(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    code = f"""
import sys
import numpy as np
from dcqformat.encode.pipeline import convert
imgs = np.random.default_rng(0).integers(0, 256, (8, 12, 12, 3), dtype=np.uint8)
convert(imgs, {str(tmp_path / 'x.dcq')!r}, labels=[0, 1] * 4, epochs=1, clusters=2,
        refine_steps=1, progress=False, device="cpu", threads=1, workers=0)
assert "dcqformat.encode.drivers.torchrun" not in sys.modules
assert "dcqformat.encode.drivers.sharded" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_options_table_in_docs_method_is_current() -> None:
    pytest.importorskip("torch")
    tool = PKG.parent / "tools" / "options_table.py"
    out = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
