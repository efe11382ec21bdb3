"""One way into the tree: no module outside `storage/` touches the archive tree's files.

Every module of the package outside `galaxy_archive/storage/` is parsed with `ast`, and a call
that reaches the filesystem the way only a backend may (renames, stats, listings, positional
I/O, a store's path) fails the test, naming the module, the line and the call. Files that are
not the tree (the token file, the lock file) are allowed by an explicit list, each entry with
its reason; an entry no longer needed fails too, so the list stays short.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "galaxy_archive"

# os / shutil calls that touch files by path: in the tree they are the backend's alone.
TREE_CALLS = frozenset(
    {
        "os.replace",
        "os.rename",
        "os.renames",
        "os.lstat",
        "os.scandir",
        "os.walk",
        "os.unlink",
        "os.remove",
        "os.rmdir",
        "shutil.move",
        "shutil.rmtree",
    }
)
# Positional I/O: the V1 staging file (a local file the store hands out) only.
POSITIONAL_CALLS = frozenset({"os.pwrite", "os.pwritev", "os.pread", "os.preadv"})
POSITIONAL_MODULE = "fetch/v1_blob_io.py"
# The local backend's helpers that bypass the ObjectStore methods.
BACKEND_INTERNALS = frozenset(
    {"partial_path", "md5_of_file", "Tree", "Escape", "sorted_entries", "sorted_files"}
)

# (module, call): why that file is not the archive tree.
ALLOWED = {
    ("upstream/auth.py", "os.replace"): "the token file, written atomically beside itself",
    ("state/lock.py", "os.pwrite"): "the lock file at the archive root, rewritten in place",
    ("state/lock.py", "os.pread"): "the lock file: who holds it, read back",
    ("restore/dest.py", "os.rename"): "DEST, where restore installs a build: not the tree",
    ("restore/dest.py", "os.unlink"): "DEST: a temp file beside a restored file",
    ("restore/dest.py", "os.walk"): "DEST: the files a build does not name, listed with -v",
    ("transfer/export.py", "os.replace"): "the export file the user named, once complete",
    ("transfer/importer.py", "os.unlink"): "the import's scratch copy of a DB member",
}


def tree_touches(source: str, module: str) -> list[str]:
    """`module:line: call` for every call in `source` that touches the tree directly."""
    tree = ast.parse(source)
    aliases = _imported_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "galaxy_archive.storage."
        ):
            found += [
                f"{module}:{node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name in BACKEND_INTERNALS
            ]
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases)
        if name is None:
            continue
        is_positional = name in POSITIONAL_CALLS and module != POSITIONAL_MODULE
        if name in TREE_CALLS or is_positional or _is_store_path(node.func):
            found.append(f"{module}:{node.lineno}: {name}")
    return found


def _imported_names(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted name for `from os import replace [as r]` and `import os as o`."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil"):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ("os", "shutil") and alias.asname:
                    names[alias.asname] = alias.name
    return names


def _dotted(func: ast.expr, aliases: dict[str, str]) -> str | None:
    if isinstance(func, ast.Name):
        return aliases.get(func.id)
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name):
            base = aliases.get(func.value.id, func.value.id)
            return f"{base}.{func.attr}"
        return f"?.{func.attr}" if func.attr == "path" else None
    return None


def _is_store_path(func: ast.expr) -> bool:
    """`store.path(...)`, `self._store.path(...)`, `app.store().path(...)`: a store's path."""
    if not isinstance(func, ast.Attribute) or func.attr != "path":
        return False
    return "store" in ast.unparse(func.value).lower()


def _modules() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] != "storage"
    )


def test_storage_boundary_no_module_outside_storage_touches_the_tree() -> None:
    found: list[str] = []
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        found += [
            hit
            for hit in tree_touches(path.read_text(), module)
            if (module, hit.rsplit(": ", 1)[1]) not in ALLOWED
        ]
    assert found == []


def test_storage_boundary_allowlist_has_no_stale_entry() -> None:
    used = set()
    for path in _modules():
        module = path.relative_to(PACKAGE).as_posix()
        used |= {(module, hit.rsplit(": ", 1)[1]) for hit in tree_touches(path.read_text(), module)}
    assert set(ALLOWED) <= used


def test_storage_boundary_scans_the_whole_package_but_storage() -> None:
    modules = {path.relative_to(PACKAGE).as_posix() for path in _modules()}
    assert {"fetch/downloader.py", "verify/repair.py", "sync/syncer.py", "app.py"} <= modules
    assert not any(module.startswith("storage/") for module in modules)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.replace(a, b)\n", "m.py:2: os.replace"),
        ("from os import replace as r\nr(a, b)\n", "m.py:2: os.replace"),
        ("import os as o\no.lstat(p)\n", "m.py:2: os.lstat"),
        ("import shutil\nshutil.move(a, b)\n", "m.py:2: shutil.move"),
        ("import os\nos.pwrite(fd, b, 0)\n", "m.py:2: os.pwrite"),
        ("x = self._store.path(task.path)\n", "m.py:1: ?.path"),
        ("x = app.store().path(p)\n", "m.py:1: ?.path"),
        ("from galaxy_archive.storage.local import partial_path\n", "m.py:1: imports partial_path"),
    ],
)
def test_storage_boundary_finds_a_reintroduced_tree_access(source: str, expected: str) -> None:
    assert tree_touches(source, "m.py") == [expected]


def test_storage_boundary_leaves_what_is_not_the_tree() -> None:
    source = (
        "import os\nos.path.join(a, b)\nos.getpid()\nrequest.path.strip()\n"
        "self.store.open_read(p)\nos.pwrite(fd, b, 0)\n"
    )
    assert tree_touches(source, POSITIONAL_MODULE) == []
