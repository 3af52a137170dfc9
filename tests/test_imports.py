"""Imports run one way, downward: no module of the package imports another that (through any chain) imports it
back, counting every import a module makes (at the top, inside functions, and under TYPE_CHECKING); and nothing in
the package imports the command line, which only the entry point runs."""

import ast
from pathlib import Path

import swcm

PACKAGE = Path(swcm.__file__).parent


def imports_of(path: Path) -> set[str]:
    """The package modules that `path` imports, by module name (`swcm.x` and `.x` alike)."""
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [node.module.split(".")[0]] if node.module else [alias.name for alias in node.names]
            elif node.level == 0 and node.module and node.module.split(".")[0] == "swcm":
                parts = node.module.split(".")
                names = [parts[1]] if len(parts) > 1 else [alias.name for alias in node.names]
            else:
                names = []
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("swcm.")]
        else:
            continue
        found |= {name for name in names if name in modules and name != path.stem}
    return found


def import_graph() -> dict[str, set[str]]:
    return {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def test_the_reader_sees_every_kind_of_import(tmp_path):
    (tmp_path / "sample.py").write_text(
        "from typing import TYPE_CHECKING\nfrom .errors import DataError\nimport swcm.paths\n"
        "if TYPE_CHECKING:\n    from .cli import main\n"
        "def later():\n    from swcm.checks import coerce\n    from . import folders\n",
        encoding="utf-8",
    )
    assert imports_of(tmp_path / "sample.py") == {"errors", "paths", "cli", "checks", "folders"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    assert cycles(import_graph()) == []


def test_nothing_in_the_package_imports_the_command_line():
    assert [module for module, imported in import_graph().items() if "cli" in imported] == []
