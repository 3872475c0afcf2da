"""The package's shape, read from its source: layers whose imports run one way, no import
cycle, small modules, and the openai SDK, Hydra and OmegaConf each imported by one layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "runner"
PLUGINS = PACKAGE.parent / "hydra_plugins"
MAX_LINES = 600
# Each layer imports only the layers below it: base at the bottom, then analysis and wire
# (neither imports the other), then core, then cli. The package's root modules: __init__
# and __main__ stand above everything, example_tools (a tool users copy) beside nothing.
RANKS = {"base": 0, "analysis": 1, "wire": 1, "core": 2, "cli": 3}
ROOT_RANKS = {"__init__": 4, "__main__": 4, "example_tools": -1}
# Who may import what from outside the package (its whole layer, or nobody).
ONLY = {"openai": {"wire"}, "hydra": {"cli"}, "omegaconf": {"core", "cli"}}


@dataclass(frozen=True)
class Import:
    """One import in a module: what it names, where, and whether it is for type checkers only."""

    target: str
    line: int
    typing_only: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> list[Import]:
    """Every import in a module, function-level ones included; those under
    ``if TYPE_CHECKING:`` are marked typing-only."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []

    def visit(node: ast.AST, typing_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, typing_only)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, node.lineno, typing_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                target = full if full in modules() else node.module
                found.append(Import(target, node.lineno, typing_only))
        for child in ast.iter_child_nodes(node):
            visit(child, typing_only)

    visit(tree, False)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def layer(name: str) -> str:
    """``core`` for ``runner.core.job``; the module's own name for a root module."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rank(name: str) -> int:
    part = layer(name)
    return RANKS[part] if part in RANKS else ROOT_RANKS[part]


def owning_module(target: str) -> str | None:
    """The package module an import names (``runner.core.job`` for ``runner.core.job.X``)."""
    while target:
        if target in modules():
            return target
        target = target.rpartition(".")[0]
    return None


def edges() -> dict[str, set[str]]:
    """Module -> the package modules it imports (typing-only imports aside)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules().items():
        targets = {owning_module(i.target) for i in imports_of(path) if not i.typing_only}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def test_every_subpackage_and_root_module_has_a_layer() -> None:
    for name in modules():
        assert layer(name) in RANKS or layer(name) in ROOT_RANKS, name


def runs_up(name: str, target: str) -> bool:
    """Whether module ``name`` importing ``target`` breaks the layering."""
    if layer(target) == layer(name) or target == "runner":
        return False
    return rank(target) >= rank(name) or rank(name) < 0


def test_imports_run_down_the_layers() -> None:
    wrong = []
    for name, path in modules().items():
        for item in imports_of(path):
            target = owning_module(item.target)
            if target is not None and not item.typing_only and runs_up(name, target):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{item.line} imports {target}")
    assert wrong == []


def test_the_layer_check_sees_an_import_back_up() -> None:
    assert runs_up("runner.base.record", "runner.core.costs")
    assert runs_up("runner.wire.gateway", "runner.analysis.totals")  # side by side
    assert runs_up("runner.example_tools", "runner.base.errors")
    assert not runs_up("runner.core.job", "runner.wire.gateway")
    assert not runs_up("runner.core.job", "runner.core.plan")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of a graph: its strongly connected components of two or more."""
    found: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle() -> None:
    graph = edges()
    assert "runner.core.plan" in graph["runner.core.job"]  # the graph is read
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("library", sorted(ONLY))
def test_a_library_is_imported_by_its_layers_only(library: str) -> None:
    wrong = []
    for name, path in modules().items():
        for item in imports_of(path):
            if item.target.partition(".")[0] == library and layer(name) not in ONLY[library]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{item.line} imports {library}")
    assert wrong == []


def test_no_module_is_over_600_lines() -> None:
    sizes = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in modules().values()}
    sizes |= {p: len(p.read_text(encoding="utf-8").splitlines()) for p in PLUGINS.rglob("*.py")}
    assert {str(p): n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_load_results_reaches_no_hydra_omegaconf_or_sdk_import() -> None:
    """Statically: every module ``runner.analysis.results`` imports, and the packages that hold
    them, at any depth; and as Python runs it."""
    graph = edges()
    seen, todo = set(), ["runner.analysis.results"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1)]
        todo += [*graph[name], *parents]
    heavy = {
        f"{name}: {item.target}"
        for name in seen
        for item in imports_of(modules()[name])
        if item.target.partition(".")[0] in ONLY
    }
    assert heavy == set()
    code = (
        "import sys, runner.analysis.results as r; r.load_results; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in "
        "('hydra', 'omegaconf', 'openai')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
