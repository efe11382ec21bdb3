"""The package's layer order, read from its imports (README: "How the code is laid out").

Lowest first: core modules (errors, config, redact, interrupts, report) -> models (pure) ->
storage -> state / upstream -> fetch -> app, output, runs -> use cases (sync, verify, browse)
-> cli.
A module imports from its own package or a lower layer only; nothing imports cli; one use
case never imports another; models import no I/O library.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "galaxy_archive"
RANK = {
    "errors": -1, "config": 0, "redact": 0, "interrupts": 0, "report": 0, "__init__": 0,
    "models": 1,
    "storage": 2,
    "state": 3, "upstream": 3,
    "fetch": 4,
    "app": 5, "output": 5, "runs": 5,
    "sync": 6, "verify": 6, "browse": 6, "restore": 6, "serve": 6, "gc": 6, "transfer": 6,
    "cli": 7, "__main__": 8,
}  # fmt: skip
IO_LIBRARIES = {"requests", "urllib3", "sqlite3", "sqlite_utils", "socket", "subprocess"}
OVERSIZE_ALLOWED: set[str] = set()


def _unit(module: str) -> str:
    """The layer unit of a dotted module below galaxy_archive: its subpackage or module."""
    return module.split(".")[0]


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported galaxy_archive module, is at run time) for every import in `path`."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for child in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, id(node) not in type_only))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, id(node) not in type_only) for alias in node.names)
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(path.relative_to(PACKAGE).with_suffix("").parts), path)
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_layers_every_unit_has_a_rank() -> None:
    missing = {_unit(name) for name, _ in _modules()} - set(RANK)
    assert not missing, f"add these to RANK and to the README layout section: {missing}"


def test_layers_imports_follow_the_layer_order() -> None:
    wrong = []
    for name, path in _modules():
        unit = _unit(name)
        for imported, _ in _imports(path):
            if not imported.startswith("galaxy_archive."):
                continue
            target = _unit(imported.removeprefix("galaxy_archive."))
            if target == unit:
                continue
            if RANK[target] >= RANK[unit]:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_layers_models_import_no_io() -> None:
    wrong = [
        f"{name} imports {imported}"
        for name, path in _modules()
        if _unit(name) == "models"
        for imported, _ in _imports(path)
        if imported.split(".")[0] in IO_LIBRARIES
        or (imported.startswith("galaxy_archive.") and RANK[_unit(imported[15:])] > 1)
    ]
    assert not wrong, "\n".join(wrong)


def test_layers_no_import_cycle_at_run_time() -> None:
    graph: dict[str, set[str]] = {}
    names = {name for name, _ in _modules()}
    for name, path in _modules():
        graph[name] = {
            imported.removeprefix("galaxy_archive.")
            for imported, is_run_time in _imports(path)
            if is_run_time and imported.removeprefix("galaxy_archive.") in names
        }
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_layers_no_module_over_600_lines() -> None:
    long = [
        f"{name}: {count}"
        for name, path in _modules()
        if (count := len(path.read_text().splitlines())) > 600 and name not in OVERSIZE_ALLOWED
    ]
    assert not long, ", ".join(long)
