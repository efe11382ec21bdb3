"""The tree walk: any depth, never through a symlink, a directory it cannot list reported."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from galaxy_archive.errors import ExitCode
from galaxy_archive.storage.local import ArchiveStore
from galaxy_archive.storage.tree_walk import Stray, WalkStopped, find_strays
from galaxy_archive.verify.report import VerifyReport
from tests.unprivileged import rerun_unprivileged

DEPTH = 1100  # beyond Python's default recursion limit (1000)


def nothing_known(_top: str) -> Iterator[str]:
    return iter(())


def strays(root: Path, known: list[str] | None = None) -> list[tuple[str, Stray]]:
    recorded = sorted(known or [])
    return list(
        find_strays(
            ArchiveStore(root),
            lambda top: (p for p in recorded if p.startswith(top + "/")),
            lambda: False,
        )
    )


def write(root: Path, relative: str, data: bytes = b"x") -> None:
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    (root / relative).write_bytes(data)


def test_tree_walk_lists_a_tree_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    deep = "v2/" + "/".join(["d"] * DEPTH) + "/bottom"
    make_chain(tmp_path / "v2", ["d"] * DEPTH)  # os.makedirs would recurse too deep itself
    try:
        (tmp_path / deep).write_bytes(b"x")
        write(tmp_path, "v2/e")
        assert strays(tmp_path) == [(deep, Stray.UNKNOWN), ("v2/e", Stray.UNKNOWN)]
    finally:
        remove_chain(tmp_path / "v2", DEPTH)


def remove_chain(base: Path, depth: int) -> None:
    """Remove base/d/d/.../d (depth levels) and the files in them, deepest first: shutil.rmtree
    (pytest's tmp_path clean-up) recurses and would fail on it."""
    for level in range(depth, 0, -1):
        directory = base.joinpath(*["d"] * level)
        for entry in directory.iterdir():
            if not entry.is_dir():
                entry.unlink()
        directory.rmdir()


def test_tree_walk_reports_a_path_too_long_to_open_and_goes_on(tmp_path: Path) -> None:
    """ENAMETOOLONG: an OSError that a root user meets too (unlike a chmod 000 directory)."""
    names = ["n" * 250] * 20  # 5000 characters: more than PATH_MAX (4096)
    make_chain(tmp_path / "v2", names)
    write(tmp_path, "v2/" + "/".join(names[:2]) + "/a-file")
    write(tmp_path, "v2/zz/after")
    found = strays(tmp_path)
    unreadable = [path for path, stray in found if stray is Stray.UNREADABLE]
    assert len(unreadable) == 1
    too_long = unreadable[0]
    assert ("v2/" + "/".join(names)).startswith(too_long + "/")
    assert len(os.path.join(tmp_path, too_long)) >= 4096
    assert len(os.path.join(tmp_path, too_long.rsplit("/", 1)[0])) < 4096
    assert ("v2/" + "/".join(names[:2]) + "/a-file", Stray.UNKNOWN) in found
    assert found[-1] == ("v2/zz/after", Stray.UNKNOWN)


def make_chain(base: Path, names: list[str]) -> None:
    """Nested directories, made one level at a time relative to the parent's descriptor (the
    whole path is too long for mkdir)."""
    base.mkdir()
    fd = os.open(base, os.O_RDONLY)
    try:
        for name in names:
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def test_tree_walk_reports_a_directory_it_may_not_read_and_goes_on(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if rerun_unprivileged(request):  # root reads a chmod 000 directory anyway
        return
    write(tmp_path, "v2/store/01/aa/hidden")
    write(tmp_path, "v2/store/02/aa/seen")
    locked = tmp_path / "v2/store/01"
    locked.chmod(0)
    try:
        assert strays(tmp_path) == [
            ("v2/store/01", Stray.UNREADABLE),
            ("v2/store/02/aa/seen", Stray.UNKNOWN),
        ]
    finally:
        locked.chmod(0o755)


def test_tree_walk_never_follows_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "aa/inside-target")
    write(tmp_path, "v2/store/00/known")
    (tmp_path / "v2/store/01").symlink_to(outside, target_is_directory=True)
    (tmp_path / "v2/store/02").symlink_to(outside / "aa/inside-target")
    (tmp_path / "v2/store/03").symlink_to(tmp_path / "nowhere")  # dangling
    assert strays(tmp_path, ["v2/store/00/known"]) == [
        ("v2/store/01", Stray.UNKNOWN),
        ("v2/store/02", Stray.UNKNOWN),
        ("v2/store/03", Stray.UNKNOWN),
    ]


def test_tree_walk_a_top_that_is_a_symlink_or_a_file_is_an_unknown_entry(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    write(outside, "store/aa/x")
    (tmp_path / "v1").symlink_to(outside, target_is_directory=True)
    write(tmp_path, "v2", b"not a directory")
    assert strays(tmp_path) == [("v1", Stray.UNKNOWN), ("v2", Stray.UNKNOWN)]


def test_tree_walk_stops_when_asked_once_per_directory(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path, f"v2/{name}/file")
    asked = []

    def is_over() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(WalkStopped):
        list(find_strays(ArchiveStore(tmp_path), nothing_known, is_over))
    assert len(asked) == 3


def test_tree_walk_an_unreadable_directory_is_a_problem_of_the_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What verify does with Stray.UNREADABLE: an error line naming the directory, exit 1."""
    report = VerifyReport(level="full", is_tree_walked=True)
    assert report.exit_code is ExitCode.OK
    with caplog.at_level(logging.ERROR):
        report.unreadable_dir("v2/store/01")
    assert report.exit_code is ExitCode.PROBLEMS
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert "unreadable directory: v2/store/01 could not be listed" in caplog.text
    assert report.to_json()["unreadable_dirs"] == ["v2/store/01"]
    assert "1 unreadable directories" in report.summary_line()
