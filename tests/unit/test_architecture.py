"""The architecture holds: no import cycle, lower layers never import upper ones, no module
over 450 lines.

Every import statement counts, wherever it stands (module level, inside a function, under
TYPE_CHECKING): a late import is still a dependency. Run it alone with
``pytest tests/unit/test_architecture.py``; a failure names the offending modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.layout import REPO_ROOT

#: Import name -> source directory of the two packages.
PACKAGES = {"rig": REPO_ROOT / "rig", "autoballoon": REPO_ROOT / "host" / "autoballoon"}
MAX_LINES = 450

#: The rig's layers, lowest first (rig/__init__.py says why). A module may import modules
#: of its own layer and of lower ones. The foundation is every module directly in rig/
#: except the cli's (CLI_MODULES).
RIG_LAYERS = ("foundation", "build", "vm", "host", "bench", "report", "cli")
#: The modules directly in rig/ that make up the `rig` command (the cli layer).
CLI_MODULES = ("cli", "cli_matrix", "cli_scale")


def discover() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg, root in PACKAGES.items():
        for f in sorted(root.rglob("*.py")):
            parts = [pkg, *f.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name an import statement in ``path`` may bind, resolved to absolute."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if path.name != "__init__.py":
                    base.pop()
                base = base[: len(base) - node.level + 1]
                prefix = ".".join([*base, node.module] if node.module else base)
            else:
                prefix = node.module or ""
            # `from a import b` depends on a.b when that is a module, else on a
            yield from (f"{prefix}.{a.name}" for a in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (a name resolves to its longest module)."""
    mods = discover()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for name in imported_names(mod, path):
            while name and name not in mods:
                name = name.rpartition(".")[0]
            if name and name != mod:
                deps.add(name)
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def rig_layer(module: str) -> str:
    parts = module.split(".")
    if parts == ["rig"] or (len(parts) == 2 and parts[1] in CLI_MODULES):
        return "cli"
    if len(parts) == 2 and parts[1] not in RIG_LAYERS:
        return "foundation"
    return parts[1]


def test_the_cli_modules_are_the_cli_layer():
    assert rig_layer("rig.cli") == rig_layer("rig.cli_matrix") == "cli"
    assert rig_layer("rig.cli_scale") == "cli"
    assert rig_layer("rig.errors") == "foundation"
    assert rig_layer("rig.report.matrix") == "report"


def test_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_every_module_is_seen():
    graph = import_graph()
    assert "rig.vm.domains" in graph and "autoballoon.model" in graph
    assert "rig.errors" in graph["rig.host.lifecycle"]
    # a late import inside a function counts
    assert "rig.vm.domains" in graph["rig.host.lifecycle"]


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_rig_layers_only_import_downwards():
    rank = {name: i for i, name in enumerate(RIG_LAYERS)}
    upward = [
        f"{mod} ({rig_layer(mod)}) imports {dep} ({rig_layer(dep)})"
        for mod, deps in import_graph().items() if mod.startswith("rig")
        for dep in sorted(deps) if dep.startswith("rig")
        if rank[rig_layer(dep)] > rank[rig_layer(mod)]
    ]
    assert upward == []


def test_the_device_model_never_imports_the_rig():
    assert [(m, sorted(d)) for m, d in import_graph().items()
            if m.startswith("autoballoon") and any(x.startswith("rig") for x in d)] == []


@pytest.mark.parametrize("pkg", sorted(PACKAGES))
def test_no_module_over_the_limit(pkg: str):
    too_long = {str(f.relative_to(REPO_ROOT)): n for f in PACKAGES[pkg].rglob("*.py")
                if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert too_long == {}


def test_every_subpackage_says_what_it_owns():
    for pkg, root in PACKAGES.items():
        for init in root.rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc and len(doc) > 80, f"{pkg}: {init} has no docstring saying what it owns"
