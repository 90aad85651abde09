"""The design rules of minnet's own code, checked on its source with ``ast``.

1. Imports point one way: no import cycle between minnet's modules at module level. An import
   inside a function (the one-line delegations such as ``Sequential.fit``) or under
   ``if TYPE_CHECKING:`` runs later or never, so it is not an edge.
2. No module uses another module's private names. A name ``_x`` is private to the module that
   defines it (a function, class, module variable, attrs field or ``self.x = ...``). Any other
   module may not import it (``from .model import _x``) nor read it as an attribute
   (``model._x``, ``layer._cache``). ``self.x`` and ``cls._x`` are a class's business with
   itself (a subclass using what its base class keeps), so they are allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "minnet"

# Modules (and their submodules) not checked for private names: none.
KNOWN_PRIVATE_USERS: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_time_statements(body: list[ast.stmt]):
    """The statements that run when the module is imported: not function bodies, not
    ``if TYPE_CHECKING:`` blocks; class bodies and other blocks included."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and is_type_checking(node):
            yield from import_time_statements(node.orelse)
            continue
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from import_time_statements([child])
            elif isinstance(child, ast.ExceptHandler):
                yield from import_time_statements(child.body)


def imported_modules(name: str, node: ast.stmt) -> list[str]:
    """The minnet modules an import statement of module ``name`` imports."""
    found = []
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = name.split(".") if is_package(name) else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # from X import a: the module X.a if there is one, else a name defined in X
        for alias in node.names:
            found.append(
                submodule if (submodule := f"{origin}.{alias.name}") in MODULES else origin
            )
    return [module for module in found if module in MODULES]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, tree in TREES.items():
        edges = set()
        for node in import_time_statements(tree.body):
            edges.update(imported_modules(name, node))
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines: functions, classes, variables, fields, ``self.`` attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if is_self(node.value):  # self.x = ...: the class's own attribute
                names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def is_private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def is_self(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def private_uses(name: str) -> list[str]:
    tree = TREES[name]
    own = defined_names(tree)
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            if not is_self(node.value) and node.attr not in own:
                uses.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith("minnet")
        ):
            for alias in node.names:
                # a package-private module (minnet._checks, minnet._fast) is minnet's to share
                if is_private(alias.name) and f"minnet.{alias.name}" not in MODULES:
                    uses.append(f"{name}:{node.lineno}: imports {alias.name}")
    return uses


def test_every_module_is_parsed():
    assert {"minnet", "minnet.model", "minnet.layers", "minnet.losses"} <= set(MODULES)


def test_no_import_cycle_between_minnet_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle at module level: " + " -> ".join(cycle)


def test_the_core_does_not_import_what_builds_on_it():
    graph = import_graph()
    core = ["minnet.parameter", "minnet.layers", "minnet.losses", "minnet.model", "minnet.optim"]
    above = {"minnet.training", "minnet.gradcheck", "minnet.io"}
    for module in core:
        assert not graph[module] & above, (module, graph[module] & above)


def is_known_exception(name: str) -> bool:
    return any(name == known or name.startswith(known + ".") for known in KNOWN_PRIVATE_USERS)


@pytest.mark.parametrize("name", [name for name in sorted(MODULES) if not is_known_exception(name)])
def test_no_module_uses_another_modules_private_names(name):
    assert private_uses(name) == []


def test_the_rules_catch_what_they_should():
    tree = ast.parse("from .model import _secret\nmodel._pending = None\nself._mine = 1\n")
    TREES["minnet.example_for_test"] = tree
    try:
        uses = private_uses("minnet.example_for_test")
    finally:
        del TREES["minnet.example_for_test"]
    assert uses == [
        "minnet.example_for_test:1: imports _secret",
        "minnet.example_for_test:2: model._pending",
    ]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
