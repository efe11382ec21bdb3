from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.errors import ManifestError
from galaxy_archive.models.layout import (
    ObjectKind,
    cas_path,
    check_md5,
    galaxy_path,
    safe_relative_path,
    v1_blob_path,
    v1_manifest_path,
)

MD5 = "92ab42631ff4742b309bb62c175e6306"


def test_layout_paths_follow_the_spec_table() -> None:
    assert galaxy_path(MD5) == f"92/ab/{MD5}"
    assert cas_path(ObjectKind.META, MD5) == f"v2/meta/92/ab/{MD5}"
    assert cas_path(ObjectKind.STORE, MD5) == f"v2/store/92/ab/{MD5}"
    assert cas_path(ObjectKind.OFFLINE, MD5) == f"v2/offline/92/ab/{MD5}"
    assert cas_path(ObjectKind.PATCH_META, MD5) == f"v2/patches/meta/92/ab/{MD5}"
    assert cas_path(ObjectKind.PATCH_STORE, MD5) == f"v2/patches/store/92/ab/{MD5}"
    assert cas_path(ObjectKind.DEP_META, MD5) == f"v2/dependencies/meta/92/ab/{MD5}"
    assert cas_path(ObjectKind.DEP_STORE, MD5) == f"v2/dependencies/store/92/ab/{MD5}"
    assert (
        v1_manifest_path("1207658930", "windows", 37794096, "repository.json")
        == "v1/manifests/1207658930/windows/37794096/repository.json"
    )
    assert v1_blob_path("1", "osx", 2, "main.bin") == "v1/depots/1/osx/2/main.bin"


@pytest.mark.parametrize("bad", ["../x", "/abs", "C:\\x", "a\\..\\..\\b", "", "a\x00b", "..", 7])
def test_layout_rejects_hostile_paths(bad: object) -> None:
    with pytest.raises(ManifestError, match="item 3"):
        safe_relative_path(bad, "item 3")


@pytest.mark.parametrize("bad", ["xyz", MD5[:-1], MD5 + "0", "../../" + MD5[6:], 5, None])
def test_layout_rejects_non_hex_hashes(bad: object) -> None:
    with pytest.raises(ManifestError):
        check_md5(bad, "chunk")


def test_layout_rejects_unsafe_v1_names() -> None:
    with pytest.raises(ManifestError):
        v1_manifest_path("1", "windows", 2, "../../etc/passwd")
    with pytest.raises(ManifestError):
        v1_blob_path("1/..", "windows", 2, "main.bin")


@given(st.text(min_size=1, max_size=60))
def test_layout_safe_paths_never_escape(raw: str) -> None:
    try:
        path = safe_relative_path(raw, "item")
    except ManifestError:
        return
    assert not path.is_absolute()
    assert ".." not in path.parts
    joined = PurePosixPath("/root") / path
    assert joined.parts[:2] == ("/", "root")
