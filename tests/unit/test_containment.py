"""containment, and the store and checker on top of it: nothing below the root is followed,
nothing is written outside it, whatever the tree or the recorded paths hold."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.errors import StorageError
from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.verify_plan import VerifyLevel, checks_for
from galaxy_archive.storage.containment import Escape, Tree, path_problem
from galaxy_archive.storage.local import TEMP_SUFFIX, ArchiveStore, md5_of_file
from galaxy_archive.verify.object_checks import CheckItem, ObjectChecker, Verdict

DATA = b"chunk bytes " * 50


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def item(path: str, data: bytes = DATA, level: VerifyLevel = VerifyLevel.FULL) -> CheckItem:
    kind = ObjectKind.STORE
    return CheckItem(1, kind, path, md5(data), len(data), checks_for(kind, level))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the archive root, holding a copy of the object's bytes."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "obj").write_bytes(DATA)
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    directory = tmp_path / "root"
    (directory / "v2/store/aa").mkdir(parents=True)
    return directory


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(
    "path",
    ["", "/etc/passwd", "../x", "v2/../../x", "v2/./x", "v2//x", "v2/x/", "v2/x\x00", ".", ".."],
)
def test_path_problem_rejects_paths_that_can_leave_the_root(path: str) -> None:
    assert path_problem(path) is not None


def test_path_problem_accepts_the_layouts_paths() -> None:
    for path in ("v2/store/aa/bb/" + "a" * 32, "v1/depots/1/windows/2/main.bin", "v2/x..y"):
        assert path_problem(path) is None


@given(st.text(alphabet="a./\x00", min_size=1, max_size=12))
def test_path_problem_is_a_component_check(path: str) -> None:
    """The fast pre-filter finds every '', '.' or '..' component a split would."""
    parts = path.split("/")
    is_plain = "\x00" not in path and all(part not in ("", ".", "..") for part in parts)
    assert (path_problem(path) is None) == is_plain


def test_tree_refuses_symlinked_and_file_directories(root: Path, outside: Path) -> None:
    (root / "v2/store/bb").symlink_to(outside)
    (root / "v2/store/cc").write_bytes(b"junk")
    tree = Tree(root)
    tree.check_dirs("v2/store/aa/obj")  # a real directory: fine
    with pytest.raises(Escape, match=r"^v2/store/bb is a symlink$"):
        tree.check_dirs("v2/store/bb/obj")
    with pytest.raises(Escape, match=r"^v2/store/bb is a symlink$"):
        tree.make_dirs("v2/store/bb/new/obj")
    with pytest.raises(Escape, match=r"^v2/store/cc is not a directory$"):
        tree.check_dirs("v2/store/cc/obj")
    with pytest.raises(FileNotFoundError):
        tree.check_dirs("v2/store/dd/obj")
    assert snapshot(outside) == {"obj": DATA} and not (outside / "new").exists()


def test_tree_makes_missing_directories_and_resolves_a_symlinked_root(
    root: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(root)  # /srv/archive -> /mnt/disk3: allowed, resolved once
    tree = Tree(link)
    assert tree.root == str(root.resolve())
    tree.make_dirs("v2/meta/ab/cd/obj")
    assert (root / "v2/meta/ab/cd").is_dir()
    tree.check_dirs("v2/meta/ab/cd/obj")


def test_store_never_writes_through_a_symlinked_directory(root: Path, outside: Path) -> None:
    (root / "v2/store/bb").symlink_to(outside)
    store = ArchiveStore(root, fsync=False)
    with pytest.raises(
        StorageError, match="v2/store/bb/obj: not written: v2/store/bb is a symlink"
    ):
        store.write_verified("v2/store/bb/obj", [b"new"], expected_md5=None, expected_size=None)
    with pytest.raises(StorageError, match="v2/store/bb is a symlink"):
        store.write_verified("v2/store/bb/x/y", [b"new"], expected_md5=None, expected_size=None)
    assert snapshot(outside) == {"obj": DATA}
    assert store.size_of("v2/store/bb/obj") is None  # not adopted either


def test_store_refuses_a_file_on_the_way_and_paths_outside_the_tree(root: Path) -> None:
    (root / "v2/store/cc").write_bytes(b"junk")
    store = ArchiveStore(root, fsync=False)
    with pytest.raises(StorageError, match="v2/store/cc/obj: not written: v2/store/cc is not a"):
        store.write_verified("v2/store/cc/obj", [b"x"], expected_md5=None, expected_size=None)
    assert store.size_of("v2/store/cc/obj") is None
    for path in ("../escaped", "/tmp/escaped", "v2/../../escaped", "archive.db", "v2"):
        with pytest.raises(StorageError, match="not written: recorded path"):
            store.write_verified(path, [b"x"], expected_md5=None, expected_size=None)
    assert not (root.parent / "escaped").exists() and not (root / "archive.db").exists()
    assert (root / "v2/store/cc").read_bytes() == b"junk"


def test_store_replaces_a_symlinked_object_without_touching_its_target(
    root: Path, outside: Path
) -> None:
    (root / "v2/store/aa/obj").symlink_to(outside / "obj")
    store = ArchiveStore(root, fsync=False)
    assert store.size_of("v2/store/aa/obj") is None  # a symlink is no object to adopt
    with pytest.raises(OSError):
        md5_of_file(root / "v2/store/aa/obj")
    store.write_verified("v2/store/aa/obj", [b"new"], expected_md5=md5(b"new"), expected_size=3)
    assert not (root / "v2/store/aa/obj").is_symlink()
    assert (root / "v2/store/aa/obj").read_bytes() == b"new"
    assert snapshot(outside) == {"obj": DATA}


def test_temp_sweep_deletes_nothing_behind_a_symlink(root: Path, outside: Path) -> None:
    temp = f".obj.1234{TEMP_SUFFIX}"
    (outside / temp).write_bytes(b"not ours")
    (root / "v2/store/bb").symlink_to(outside)
    (root / "v1").symlink_to(outside)
    assert ArchiveStore(root).sweep_temp_files() == 0
    assert (outside / temp).exists()


def test_checker_follows_no_symlink_and_names_what_is_wrong(root: Path, outside: Path) -> None:
    (root / "v2/store/aa/obj").symlink_to(outside / "obj")  # identical bytes: still refused
    (root / "v2/store/bb").symlink_to(outside)
    (root / "v2/store/cc").write_bytes(b"junk")
    checker = ObjectChecker(ArchiveStore(root))
    for level in VerifyLevel:
        result = checker.check(item("v2/store/aa/obj", level=level))
        assert (result.verdict, result.detail) == (Verdict.CORRUPT, "is a symlink; not followed")
    result = checker.check(item("v2/store/bb/obj"))
    assert result.verdict is Verdict.CORRUPT and result.bytes_read == 0
    assert result.detail == "v2/store/bb is a symlink; not followed"
    result = checker.check(item("v2/store/cc/obj"))
    assert (result.verdict, result.detail) == (
        Verdict.CORRUPT,
        "v2/store/cc is not a directory; not followed",
    )


@pytest.mark.parametrize("path", ["../outside/obj", "v2/../../outside/obj"])
def test_checker_never_opens_a_recorded_path_that_leaves_the_root(
    root: Path, outside: Path, path: str
) -> None:
    result = ObjectChecker(ArchiveStore(root)).check(item(path))
    assert result.verdict is Verdict.CORRUPT and result.bytes_read == 0
    assert "not a plain relative path" in (result.detail or "")
    result = ObjectChecker(ArchiveStore(root)).check(item(str(outside / "obj")))
    assert result.verdict is Verdict.CORRUPT and "absolute" in (result.detail or "")


def test_checker_reads_through_a_symlinked_root(root: Path, tmp_path: Path) -> None:
    (root / "v2/store/aa/obj").write_bytes(DATA)
    link = tmp_path / "link"
    link.symlink_to(root)
    assert ObjectChecker(ArchiveStore(link)).check(item("v2/store/aa/obj")).verdict is Verdict.OK
