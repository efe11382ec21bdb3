"""object_checks: one stored file against its recorded size, MD5, zlib stream, JSON, V1 extents."""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from galaxy_archive.models.layout import ObjectKind
from galaxy_archive.models.v1_ranges import Extent
from galaxy_archive.models.verify_plan import VerifyLevel, checks_for
from galaxy_archive.storage.local import ArchiveStore
from galaxy_archive.verify.object_checks import CheckItem, ObjectChecker, Verdict


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def store(tmp_path: Path, data: bytes, name: str = "obj") -> str:
    (tmp_path / name).write_bytes(data)
    return name


def item(
    path: str,
    stored: bytes,
    kind: ObjectKind = ObjectKind.STORE,
    level: VerifyLevel = VerifyLevel.FULL,
    **overrides: object,
) -> CheckItem:
    fields: dict[str, object] = {
        "object_id": 1,
        "kind": kind,
        "path": path,
        "md5": md5(stored),
        "size": len(stored),
        "checks": checks_for(kind, level),
    }
    fields.update(overrides)
    return CheckItem(**fields)  # type: ignore[arg-type]


def test_checks_each_level_adds_to_the_one_below() -> None:
    for kind in ObjectKind:
        quick, full, deep = (checks_for(kind, level) for level in VerifyLevel)
        assert quick < full <= deep
    assert {str(c) for c in checks_for(ObjectKind.STORE, VerifyLevel.DEEP)} == {
        "size",
        "md5",
        "inflate",
    }
    assert "meta_json" in checks_for(ObjectKind.DEP_META, VerifyLevel.DEEP)
    assert "json" in checks_for(ObjectKind.V1_MANIFEST, VerifyLevel.DEEP)
    assert "extents" in checks_for(ObjectKind.V1_BLOB, VerifyLevel.DEEP)


def test_checker_missing_wrong_size_and_not_a_file(tmp_path: Path) -> None:
    checker = ObjectChecker(ArchiveStore(tmp_path))
    data = b"x" * 100
    assert checker.check(item("nope", data)).verdict is Verdict.MISSING
    assert checker.check(item("nope/deeper", data)).verdict is Verdict.MISSING
    short = store(tmp_path, data[:-1])
    result = checker.check(item(short, data, level=VerifyLevel.QUICK))
    assert result.verdict is Verdict.CORRUPT and "99 bytes, expected 100" in (result.detail or "")
    (tmp_path / "dir").mkdir()
    assert checker.check(item("dir", data)).verdict is Verdict.CORRUPT


def test_checker_quick_reads_nothing_full_compares_md5(tmp_path: Path) -> None:
    checker = ObjectChecker(ArchiveStore(tmp_path))
    good = b"y" * 5000
    path = store(tmp_path, bytes([good[0] ^ 1]) + good[1:])
    quick = checker.check(item(path, good, level=VerifyLevel.QUICK))
    assert quick.verdict is Verdict.OK and quick.bytes_read == 0
    full = checker.check(item(path, good))
    assert full.verdict is Verdict.CORRUPT and md5(good) in (full.detail or "")
    assert full.bytes_read == len(good)
    assert checker.check(item(store(tmp_path, good, "g"), good)).verdict is Verdict.OK


def test_checker_without_a_recorded_md5_proves_nothing(tmp_path: Path) -> None:
    path = store(tmp_path, b"abc")
    result = ObjectChecker(ArchiveStore(tmp_path)).check(item(path, b"abc", md5=None))
    assert result.verdict is Verdict.UNPROVEN


def test_checker_deep_inflates_chunks(tmp_path: Path) -> None:
    checker = ObjectChecker(
        ArchiveStore(tmp_path), block_bytes=64
    )  # many blocks: streaming is exercised
    raw = bytes(range(256)) * 40
    body = zlib.compress(raw)
    deep: dict[str, Any] = {
        "level": VerifyLevel.DEEP,
        "inflated_md5": md5(raw),
        "inflated_size": len(raw),
    }
    cases = {
        "good": (body, None),
        "truncated": (body[:-10], "truncated"),
        "trailing": (body + b"\x00", "after the end"),
        "garbage": (b"\x78\x9c" + b"\xff" * 50, "invalid zlib"),
    }
    for name, (stored, problem) in cases.items():
        result = checker.check(item(store(tmp_path, stored, name), stored, **deep))
        if problem is None:
            assert result.verdict is Verdict.OK, result.detail
        else:
            assert result.verdict is Verdict.CORRUPT and problem in (result.detail or ""), name
        # The default level only hashes the stored bytes, which match in every case.
        assert checker.check(item(name, stored)).verdict is Verdict.OK
    wrong = checker.check(item("good", body, **{**deep, "inflated_md5": "0" * 32}))
    assert wrong.verdict is Verdict.CORRUPT and "inflated MD5" in (wrong.detail or "")
    wrong = checker.check(item("good", body, **{**deep, "inflated_size": 1}))
    assert wrong.verdict is Verdict.CORRUPT and "inflates to" in (wrong.detail or "")


def test_checker_deep_parses_manifests(tmp_path: Path) -> None:
    checker = ObjectChecker(ArchiveStore(tmp_path))
    for kind, good, bad in (
        (ObjectKind.META, zlib.compress(b'{"depot": {}}'), zlib.compress(b"{nope")),
        (ObjectKind.V1_MANIFEST, b'{"product": {}}', b"\xff\xfe"),
    ):
        ok = checker.check(item(store(tmp_path, good, "g"), good, kind, VerifyLevel.DEEP))
        assert ok.verdict is Verdict.OK
        result = checker.check(item(store(tmp_path, bad, "b"), bad, kind, VerifyLevel.DEEP))
        assert result.verdict is Verdict.CORRUPT and "does not parse" in (result.detail or "")
        assert checker.check(item("b", bad, kind)).verdict is Verdict.OK  # default: MD5 only


@st.composite
def blobs_with_extents(draw: st.DrawFn) -> tuple[bytes, list[Extent], set[str]]:
    blob = draw(st.binary(min_size=0, max_size=600))
    extents, wrong = [], set()
    for number in range(draw(st.integers(0, 8))):
        offset = draw(st.integers(0, len(blob)))
        size = draw(st.integers(0, len(blob) - offset))
        data = blob[offset : offset + size]
        path = f"/f{number}"
        recorded = md5(data)
        if draw(st.booleans()):
            recorded = md5(data + b"!")
            wrong.add(path)
        extents.append(Extent(path, offset, size, recorded))
    return blob, extents, wrong


@given(case=blobs_with_extents(), block=st.integers(1, 97))
def test_checker_extents_names_exactly_the_wrong_files(
    tmp_path_factory: object, case: tuple[bytes, list[Extent], set[str]], block: int
) -> None:
    """Whatever the read block size, overlaps, empty files or files at the very end."""
    blob, extents, wrong = case
    root = tmp_path_factory.mktemp("blob")  # type: ignore[attr-defined]
    (root / "main.bin").write_bytes(blob)
    checker = ObjectChecker(ArchiveStore(root), block_bytes=block)
    result = checker.check(
        item("main.bin", blob, ObjectKind.V1_BLOB, VerifyLevel.DEEP, extents=tuple(extents))
    )
    named = {entry.split(" ", 1)[0] for entry in result.bad_extents}
    assert named == wrong
    assert result.verdict is (Verdict.CORRUPT if wrong else Verdict.OK)


def test_checker_extent_past_the_end_of_the_blob(tmp_path: Path) -> None:
    blob = b"a" * 100
    extents = (Extent("/tail", 90, 20, md5(b"a" * 20)), Extent("/after", 150, 0, md5(b"")))
    result = ObjectChecker(ArchiveStore(tmp_path)).check(
        item(store(tmp_path, blob), blob, ObjectKind.V1_BLOB, VerifyLevel.DEEP, extents=extents)
    )
    assert result.verdict is Verdict.CORRUPT
    assert sorted(e.split(" ")[0] for e in result.bad_extents) == ["/after", "/tail"]


def test_checker_proves_a_blob_by_its_records_and_the_bytes_between(tmp_path: Path) -> None:
    """GOG has no MD5 of a whole blob: the default level checks every record's MD5 and the
    MD5 of the bytes outside them, recorded when the blob was stored, in one read."""
    blob = b"file-a" + b"--gap--" + b"file-b" + b"tail"
    extents = (Extent("/a", 0, 6, md5(b"file-a")), Extent("/b", 13, 6, md5(b"file-b")))
    proof: dict[str, Any] = {"md5": None, "extents": extents, "uncovered_md5": md5(b"--gap--tail")}
    checker = ObjectChecker(ArchiveStore(tmp_path), block_bytes=4)

    def check(stored: bytes, **changes: Any) -> tuple[Verdict, str, tuple[str, ...]]:
        path = store(tmp_path, stored, "main.bin")
        result = checker.check(item(path, blob, ObjectKind.V1_BLOB, **{**proof, **changes}))
        return result.verdict, result.detail or "", result.bad_extents

    assert check(blob)[0] is Verdict.OK
    verdict, detail, files = check(blob.replace(b"gap", b"gAp"))
    assert verdict is Verdict.CORRUPT and "outside its file records" in detail and files == ()
    verdict, _, files = check(blob.replace(b"file-b", b"file-B"))
    assert verdict is Verdict.CORRUPT and [f.split(" ")[0] for f in files] == ["/b"]
    # a blob stored by an older version: nothing recorded for the bytes between the files
    assert check(blob, uncovered_md5=None)[0] is Verdict.UNPROVEN
    covered = b"file-a" + b"file-b"
    whole = (Extent("/a", 0, 6, md5(b"file-a")), Extent("/b", 6, 6, md5(b"file-b")))
    path = store(tmp_path, covered, "covered.bin")
    no_gaps = item(path, covered, ObjectKind.V1_BLOB, md5=None, extents=whole)
    assert checker.check(no_gaps).verdict is Verdict.OK  # the records prove every byte
