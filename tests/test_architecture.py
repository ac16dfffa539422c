"""The import structure the docs/ARCHITECTURE.md map promises, checked on the source files.

- every arrow points down: mlcore imports nothing of the other parts (nor Django), training nothing
  of hashtags or the demo, hashtags nothing of the demo;
- no import cycle between the project's modules, not even one hidden behind an import inside a
  function;
- an import inside a function is allowed only where it buys something, and says so: the import
  line, or the comment line right above it, carries ``# lazy: <reason>``.

Run ``python tests/test_architecture.py`` to print the import graph's cycles and the function-level
imports without a reason.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("mlcore", "training", "hashtags", "project")
FORBIDDEN = {
    "mlcore": ("django", "rest_framework", "celery", "hashtags", "training", "project"),
    "training": ("django", "rest_framework", "celery", "hashtags", "project"),
    "hashtags": ("project",),
    "project": (),
}
REASON = "# lazy:"


def module_files() -> dict[str, Path]:
    """``{"hashtags.api.views": path}`` for every source module of the four parts (not migrations)."""
    modules = {}
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            if "migrations" in relative.parts or "tests" in relative.parts:  # the demo's tests
                continue
            names = list(relative.parts)
            if names[-1] == "__init__":
                names.pop()
            modules[".".join(names)] = path
    return modules


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(module: str, path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute dotted names an import statement in ``module`` reaches (``from . import x`` → ``pkg.x``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package(path) else module.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def top_level_imports(tree: ast.Module):
    """Imports that run when the module loads (``if TYPE_CHECKING:`` blocks do not)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)) and not is_type_checking_block(node):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def nested_imports(tree: ast.Module):
    """Imports inside functions (and class bodies): they run later than the module's own load."""
    seen: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)) and id(child) not in seen:
                    seen.add(id(child))
                    yield child


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project-internal edges, every top-level name imported) per module.

    Imports inside functions count as edges too: hiding a cycle behind one does not remove it."""
    modules = module_files()
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        edges[module] = set()
        external[module] = set()
        for node in top_level_imports(tree):
            for name in resolve(module, path, node):
                external[module].add(name.split(".")[0])
                if name in modules and name != module:
                    edges[module].add(name)
        for node in nested_imports(tree):
            for name in resolve(module, path, node):
                external[module].add(name.split(".")[0])
                if name in modules and name != module:
                    edges[module].add(name)
    return edges, external


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def unexplained_function_imports() -> list[str]:
    """``path:line`` of each import inside a function without a ``# lazy:`` reason."""
    missing = []
    for path in module_files().values():
        source = path.read_text()
        lines = source.splitlines()
        for node in nested_imports(ast.parse(source, str(path))):
            here = lines[node.lineno - 1]
            above = lines[node.lineno - 2] if node.lineno > 1 else ""
            if REASON not in here and REASON not in above.strip():
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {here.strip()}")
    return missing


def test_every_arrow_points_down():
    _, external = import_graph()
    wrong = [
        f"{module} imports {name}"
        for module, names in external.items()
        for name in sorted(names)
        if name in FORBIDDEN[module.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_cycle_between_modules():
    edges, _ = import_graph()
    assert cycles(edges) == []


def test_function_level_imports_say_why():
    assert unexplained_function_imports() == []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


if __name__ == "__main__":
    graph, _ = import_graph()
    for component in cycles(graph):
        print("cycle:", " <-> ".join(component))
    unexplained = unexplained_function_imports()
    print(*unexplained, sep="\n")
    print(f"{len(unexplained)} function-level imports without a reason")
