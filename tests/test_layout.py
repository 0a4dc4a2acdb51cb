"""The package's import graph: the core imports no family, and no module imports itself back."""

import ast
from pathlib import Path

import bigmodel_tf

ROOT = Path(bigmodel_tf.__file__).parent
FAMILIES = "bigmodel_tf.families."
# The public `bigmodel_tf.training` re-exports the families' entry points (`classify`, ...),
# importing them on first use; everything else outside `families/` is core.
FACADES = {"bigmodel_tf.training"}


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module's imports of the package's modules, at any depth of its code."""
    sources = {_name(path): path for path in ROOT.rglob("*.py")}
    graph = {}
    for name, path in sources.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}: relative import"
                graph[name] |= {
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in sources
                    else node.module
                    for a in node.names
                }
        graph[name] = {target for target in graph[name] if target in sources} - {name}
    return graph


def test_the_core_imports_no_family():
    offending = {
        f"{name} imports {target}"
        for name, imports in import_graph().items()
        if not name.startswith(FAMILIES) and name not in FACADES
        for target in imports
        if target.startswith(FAMILIES)
    }
    assert not offending, sorted(offending)


def test_no_import_cycle():
    graph, done, path = import_graph(), set(), []

    def visit(name: str) -> None:
        assert name not in path, "import cycle: " + " -> ".join([*path[path.index(name) :], name])
        if name in done:
            return
        path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
