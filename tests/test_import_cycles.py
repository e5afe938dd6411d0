"""No import cycles among the modules issue 21 named, counting imports inside functions (which
hide a cycle from import time but not from the design)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hwmodel"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every hwmodel module ``path`` imports, at any depth of its code (``from . import x``
    counts ``x`` when it is a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hwmodel")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("hwmodel"):
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in files and m != name}
            for name, path in files.items()}


def _reaches(graph, start, goal) -> bool:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return False


@pytest.mark.parametrize(("a", "b"), [
    ("hwmodel.cli.replay", "hwmodel.cli.cosim"),
    ("hwmodel.rtlsim.build", "hwmodel.tb"),
    ("hwmodel.traces.reader", "hwmodel.traces.adapters")])
def test_no_cycle_between(a, b):
    graph = _graph()
    assert b in graph and a in graph
    assert not (_reaches(graph, a, b) and _reaches(graph, b, a)), f"{a} <-> {b}"


def test_the_finder_sees_an_import_inside_a_function():
    """The checker itself: a function-level import is an edge (the kind issue 21 found)."""
    assert "hwmodel.cli.cosim" in _graph()["hwmodel.cli.replay"]
