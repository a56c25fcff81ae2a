"""The layers of docs/architecture.md, read from the source (AST): imports point one way only.

    1 core (values and ports; errors.py beside it)   numpy/scipy only at import time
    2 backends (render, generators, learned, refine, export)  -> core
    3 engine (coverage, scheduler, lifting, pipeline)        -> core (ports), never a backend
    4 app (the composition root)                            -> core, backends, engine
    5 front ends and tooling (cli, ros, bag, envs, batch, viewer, tooling) -> anything below
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "srender_ros"

LAYER = {"errors": 1, "core": 1, "backends": 2, "engine": 3, "app": 4}
FRONT_END = 5
#: What each lower part may import (besides itself); front ends may import anything.
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "backends": {"errors", "core"},
    "engine": {"errors", "core"},
    "app": {"errors", "core", "backends", "engine"},
}
#: Libraries the bottom layer must not import at module level (they are heavy or optional).
HEAVY = {"torch", "gsplat", "diffusers", "transformers", "rclpy", "numba", "cv2", "ray", "gymnasium", "viser"}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "srender_ros" or len(parts) < 2:
        return None
    return parts[1]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts)
        out.append((name.removesuffix(".__init__"), path))
    return out


def _imports(path: Path, module: str, top_level_only: bool = False) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")[
                    : len(module.split(".")) - node.level + 1]
                found.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def test_every_module_is_in_a_known_layer() -> None:
    parts = {_part(m) for m, _ in _modules()} - {None, "__init__"}
    unknown = {p for p in parts if p not in LAYER and p not in {"cli", "ros", "bag", "envs", "batch", "viewer",
                                                                 "tooling", "msg", "action"}}
    assert not unknown, f"place these packages in a layer in tests/test_architecture.py and docs/architecture.md: {unknown}"


def test_no_lower_layer_imports_a_higher_one() -> None:
    bad = []
    for module, path in _modules():
        part = _part(module)
        if part not in ALLOWED:
            continue
        for lineno, target in _imports(path, module):
            other = _part(target)
            if other is None or other == part:
                continue
            if other not in ALLOWED[part]:
                bad.append(f"{path.relative_to(PKG.parent)}:{lineno} ({part}) imports {target} ({other})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_bottom_layer_imports_no_heavy_library_at_module_level() -> None:
    bad = []
    for module, path in _modules():
        if _part(module) not in {"core", "errors"}:
            continue
        for lineno, target in _imports(path, module, top_level_only=True):
            if target.split(".")[0] in HEAVY:
                bad.append(f"{path.relative_to(PKG.parent)}:{lineno} imports {target}")
    assert not bad, "\n".join(bad)


def _top_level_graph() -> dict[str, set[str]]:
    mods = {m for m, _ in _modules()}
    graph: dict[str, set[str]] = {}
    for module, path in _modules():
        deps = set()
        for _, target in _imports(path, module, top_level_only=True):
            # "from pkg import name" may name a submodule or an attribute: keep the longest module that exists.
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != module:
                deps.add(target)
        graph[module] = deps
    return graph


def test_no_import_cycle_between_modules() -> None:
    graph = _top_level_graph()
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = GREY
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            # A package's __init__ importing its own submodules is not a cycle with them.
            if m.startswith(d + ".") and d in graph:
                continue
            if colour.get(d) == GREY:
                return stack[stack.index(d):] + [d]
            if colour.get(d) == WHITE:
                cyc = visit(d)
                if cyc:
                    return cyc
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(graph):
        if colour[m] == WHITE:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_first_party_import_names_a_module_that_exists() -> None:
    """mypy runs with ignore_missing_imports (for third-party stubs), so a stale path would pass it."""
    mods = {m for m, _ in _modules()}
    generated = ("srender_ros.msg", "srender_ros.action")
    bad = []
    for module, path in _modules():
        for lineno, target in _imports(path, module):
            if not target.startswith("srender_ros") or target.startswith(generated):
                continue
            # "from pkg.mod import name" and "import pkg.mod" both name a module that must exist.
            if target not in mods:
                bad.append(f"{path.relative_to(PKG.parent)}:{lineno} imports {target}")
    assert not bad, "imports of modules that do not exist:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, part", [
    ("from srender_ros.backends.render.cpu import CpuRenderer\n", "engine"),
    ("from srender_ros.engine.pipeline import Pipeline\n", "core"),
    ("import srender_ros.app.compose\n", "backends"),
])
def test_the_checker_catches_a_violation(tmp_path: Path, source: str, part: str) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    targets = [_part(t) for _, t in _imports(path, f"srender_ros.{part}.m")]
    assert any(t not in ALLOWED[part] and t != part for t in targets)
