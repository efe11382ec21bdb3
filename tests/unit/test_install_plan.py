"""models.install_plan: where a restore may write, decided before anything is written."""

from __future__ import annotations

import posixpath

from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.models.build_files import DepotInfo
from galaxy_archive.models.install_plan import (
    case_clashes,
    install_directory_problems,
    install_plan,
    link_target_inside,
    plan_v2_depot,
)

DEPOT = DepotInfo("0" * 32, "1207658930", ("*",))
PARTS = st.sampled_from(["a", "b", "..", ".", "", "C:", "\\", "/", "x\\..", "..\\.."])
HOSTILE_TEXT = st.lists(PARTS, min_size=1, max_size=6).map("/".join) | st.text(max_size=12)


def _inside(link_path: str, target: str) -> bool:
    resolved = posixpath.normpath(posixpath.join("/dest", posixpath.dirname(link_path), target))
    return resolved == "/dest" or resolved.startswith("/dest/")


@given(link=st.sampled_from(["l", "a/l", "a/b/l"]), target=HOSTILE_TEXT)
def test_install_plan_a_link_target_kept_never_resolves_outside_dest(
    link: str, target: str
) -> None:
    kept = link_target_inside(link, target)
    if kept is not None:
        assert _inside(link, kept)


def test_install_plan_link_targets_inside_are_kept_with_slashes() -> None:
    assert link_target_inside("a/l", "..\\bin\\game") == "../bin/game"
    assert link_target_inside("a/l", "..\\..\\x") is None
    assert link_target_inside("l", "/etc/passwd") is None
    assert link_target_inside("l", "C:\\Windows") is None


@given(raw=HOSTILE_TEXT)
def test_install_plan_an_install_directory_is_refused_or_stays_relative(raw: str) -> None:
    if not install_directory_problems(raw) and raw:
        assert _inside("x", raw.replace("\\", "/"))


def test_install_plan_names_a_hostile_install_directory() -> None:
    assert "..\\\\..\\\\evil" in install_directory_problems("..\\..\\evil")[0]
    assert install_directory_problems("Sample Quest") == []


def test_install_plan_paths_differing_only_in_case_are_a_problem_the_same_path_is_not() -> None:
    assert case_clashes(["Data/a.pak", "data/A.pak", "b"]) == [
        "refused: paths differing only in case would overwrite each other on a "
        "case-insensitive destination: Data/a.pak, data/A.pak"
    ]
    assert case_clashes(["a", "a"]) == []


def _file(path: str, **extra: object) -> dict[str, object]:
    chunk = {"compressedMd5": "1" * 32, "compressedSize": 3, "md5": "2" * 32, "size": 5}
    return {"type": "DepotFile", "path": path, "chunks": [chunk], **extra}


def test_install_plan_support_files_go_under_support_and_backslashes_become_slashes() -> None:
    doc = {
        "depot": {
            "items": [
                _file("bin\\game.exe", flags=["executable"]),
                _file("icon.ico", flags=["support"]),
                {"type": "DepotDirectory", "path": "save\\slots"},
                {"type": "DepotLink", "path": "cur", "target": "bin\\game.exe"},
                {"type": "DepotLink", "path": "bad", "target": "..\\out"},
            ]
        }
    }
    plan = install_plan([plan_v2_depot(doc, DEPOT, "depot")])
    assert [(f.path, f.is_executable) for f in plan.files] == [
        ("bin/game.exe", True),
        ("support/1207658930/icon.ico", False),
    ]
    assert plan.directories == ("save/slots",)
    assert [(link.path, link.target) for link in plan.links] == [("cur", "bin/game.exe")]
    assert plan.problems == ("refused: link bad -> '..\\\\out' would leave DEST",)


def test_install_plan_an_sfc_member_reads_only_the_container_chunks_it_overlaps() -> None:
    def chunk(n: int, size: int) -> dict[str, object]:
        return {"compressedMd5": f"{n}" * 32, "compressedSize": 1, "md5": "f" * 32, "size": size}

    member = {"offset": 90, "size": 20}
    doc = {
        "depot": {
            "items": [{"type": "DepotFile", "path": "m", "chunks": [], "sfcRef": member}],
            "smallFilesContainer": {"chunks": [chunk(1, 100), chunk(2, 100), chunk(3, 100)]},
        }
    }
    (file,) = install_plan([plan_v2_depot(doc, DEPOT, "depot")]).files
    assert file.sfc is not None and (file.sfc.offset, file.sfc.size) == (90, 20)
    assert [c.compressed_md5[0] for c in file.sources] == ["1", "2"]
