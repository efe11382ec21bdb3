import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy_archive.errors import IntegrityError, PathRefused, StorageError
from galaxy_archive.storage.interface import WalkStopped
from galaxy_archive.storage.local import PARTIAL_SUFFIX, TEMP_SUFFIX, ArchiveStore, md5_of_file


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_storage_writes_verified_bytes_atomically(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path)
    data = b"x" * 5000
    stored = store.write_verified(
        "v2/store/aa/bb/obj", _pieces(data, 700), expected_md5=_md5(data), expected_size=len(data)
    )
    assert stored.size == 5000 and stored.md5 == _md5(data)
    assert (tmp_path / "v2/store/aa/bb/obj").read_bytes() == data
    assert list(store.iter_temp_files()) == []


@pytest.mark.parametrize(
    ("body", "md5", "size"),
    [
        (b"abc", _md5(b"abd"), 3),  # flipped byte
        (b"ab", _md5(b"abc"), 3),  # truncated
        (b"abcd", _md5(b"abc"), 3),  # too long
    ],
)
def test_storage_mismatch_never_reaches_the_final_path(
    tmp_path: Path, body: bytes, md5: str, size: int
) -> None:
    store = ArchiveStore(tmp_path)
    (tmp_path / "v2").mkdir()
    with pytest.raises(IntegrityError, match="v2/x"):
        store.write_verified("v2/x", [body], expected_md5=md5, expected_size=size)
    assert not (tmp_path / "v2/x").exists()
    assert list(store.iter_temp_files()) == []


def test_storage_failing_check_discards_and_keeps_old_file(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path)
    store.write_verified("v2/f", [b"old"], expected_md5=None, expected_size=None)

    def refuse(reader: BinaryIO) -> None:  # the check reads the complete bytes, from 0
        assert reader.read() == b"new"
        raise IntegrityError("not a manifest")

    with pytest.raises(IntegrityError):
        store.write_verified("v2/f", [b"new"], expected_md5=None, expected_size=None, check=refuse)
    assert (tmp_path / "v2/f").read_bytes() == b"old"


def test_storage_interrupted_stream_leaves_no_temp(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path)

    def broken() -> Iterator[bytes]:
        yield b"part"
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        store.write_verified("v2/a/b", broken(), expected_md5=None, expected_size=None)
    assert list(store.iter_temp_files()) == [] and not (tmp_path / "v2/a/b").exists()


def test_storage_sweep_removes_leftover_temps_only(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path)
    keep = tmp_path / "v2/meta/aa/bb/keep"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"k")
    (keep.parent / f".keep.1234{TEMP_SUFFIX}").write_bytes(b"partial")
    (tmp_path / f"v1.other{TEMP_SUFFIX}").write_bytes(b"outside the tree tops")
    assert store.sweep_temp_files() == 1
    assert keep.exists()


@settings(max_examples=40)
@given(data=st.binary(max_size=50_000), piece=st.integers(min_value=1, max_value=9000))
def test_storage_digest_does_not_depend_on_piece_boundaries(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, piece: int
) -> None:
    root = tmp_path_factory.mktemp("s")
    stored = ArchiveStore(root, fsync=False).write_verified(
        "v2/o", _pieces(data, piece), expected_md5=_md5(data), expected_size=len(data)
    )
    assert stored.md5 == _md5(data)
    assert md5_of_file(root / "v2/o") == (_md5(data), len(data))


# --- the ObjectStore methods, on the local backend -----------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the archive root: nothing in it may ever be read, moved or deleted."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "obj").write_bytes(b"precious")
    return directory


@pytest.fixture
def store(tmp_path: Path) -> ArchiveStore:
    store = ArchiveStore(tmp_path / "root", fsync=False)
    store.write_verified("v2/store/aa/obj", [b"object"], expected_md5=None, expected_size=None)
    return store


def _link_directory(store: ArchiveStore, outside: Path) -> None:
    """v2/store/bb -> outside, holding what looks like an object."""
    (store.root / "v2/store/bb").symlink_to(outside, target_is_directory=True)


def _link_object(store: ArchiveStore, outside: Path) -> None:
    (store.root / "v2/store/aa/link").symlink_to(outside / "obj")


def test_storage_stat_gives_the_size_or_says_what_is_wrong(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    _link_object(store, outside)
    (store.root / "v2/store/aa/dir").mkdir()
    assert store.stat("v2/store/aa/obj") == 6
    with pytest.raises(FileNotFoundError):
        store.stat("v2/store/aa/absent")
    with pytest.raises(FileNotFoundError):
        store.stat("v2/store/cc/absent")  # its directory is missing too
    refused = {
        "v2/store/bb/obj": "v2/store/bb is a symlink; not followed",
        "v2/store/aa/link": "is a symlink; not followed",
        "v2/store/aa/dir": "not a regular file",
        "v2/../outside/obj": "recorded path 'v2/../outside/obj' is not a plain relative path "
        "(it may leave the root); not opened",
    }
    for path, message in refused.items():
        with pytest.raises(PathRefused) as caught:
            store.stat(path)
        assert str(caught.value) == message
        assert store.size_of(path) is None


def test_storage_open_read_reads_from_the_start_and_follows_no_symlink(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    _link_object(store, outside)
    with store.open_read("v2/store/aa/obj") as reader:
        assert reader.read() == b"object"
    assert store.md5_of("v2/store/aa/obj") == (_md5(b"object"), 6)
    with pytest.raises(PathRefused, match=r"^v2/store/bb/obj: not read: v2/store/bb is a symlink$"):
        store.open_read("v2/store/bb/obj")
    with pytest.raises(PathRefused, match=r"^v2/store/aa/link: not read: is a symlink$"):
        store.open_read("v2/store/aa/link")  # O_NOFOLLOW: the target is never opened
    with pytest.raises(PathRefused, match="may leave the root"):
        store.open_read("v2/store/../../outside/obj")
    with pytest.raises(FileNotFoundError):
        store.open_read("v2/store/aa/absent")


def test_storage_local_path_only_for_a_path_reached_through_real_directories(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    assert store.local_path("v2/store/aa/obj") == store.root.resolve() / "v2/store/aa/obj"
    assert store.local_path("v2/store/bb/obj") is None
    assert store.local_path("../outside/obj") is None


def test_storage_quarantine_moves_the_object_aside_and_keeps_every_copy(
    store: ArchiveStore,
) -> None:
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    first = store.quarantine("v2/store/aa/obj", now)
    assert first == "quarantine/v2/store/aa/obj.20231114T221320Z"
    store.write_verified("v2/store/aa/obj", [b"again"], expected_md5=None, expected_size=None)
    second = store.quarantine("v2/store/aa/obj", now)  # the same second: not overwritten
    assert second == f"{first}.2"
    assert (store.root / first).read_bytes() == b"object"
    assert (store.root / second).read_bytes() == b"again"
    assert not (store.root / "v2/store/aa/obj").exists()


def test_storage_quarantine_refuses_a_symlinked_directory_and_moves_a_link_as_a_link(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    _link_object(store, outside)
    with pytest.raises(StorageError, match="v2/store/bb is a symlink"):
        store.quarantine("v2/store/bb/obj", 0.0)
    (store.root / "quarantine").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="quarantine is a symlink"):
        store.quarantine("v2/store/aa/obj", 0.0)
    assert (store.root / "v2/store/aa/obj").read_bytes() == b"object"  # stays where it was
    (store.root / "quarantine").unlink()
    moved = store.quarantine("v2/store/aa/link", 0.0)
    assert (store.root / moved).is_symlink()  # evidence as it was; its target untouched
    assert sorted(p.name for p in outside.iterdir()) == ["obj"]
    assert (outside / "obj").read_bytes() == b"precious"


def test_storage_delete_removes_an_object_and_nothing_else(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    _link_object(store, outside)
    store.delete("v2/store/aa/obj")
    assert not (store.root / "v2/store/aa/obj").exists()
    store.delete("v2/store/aa/obj")  # already gone: no error
    store.delete("v2/store/zz/never")  # nor when its directory is missing
    with pytest.raises(PathRefused, match="v2/store/aa/link: not deleted: is a symlink"):
        store.delete("v2/store/aa/link")
    with pytest.raises(PathRefused, match="not deleted: v2/store/bb is a symlink"):
        store.delete("v2/store/bb/obj")
    with pytest.raises(PathRefused, match="may leave the root"):
        store.delete("v2/../outside/obj")
    assert (store.root / "v2/store/aa/link").is_symlink()
    assert (outside / "obj").read_bytes() == b"precious"


def test_storage_publish_makes_the_staged_file_the_object(store: ArchiveStore) -> None:
    staged = store.staging_path("v1/depots/p/main.bin")
    assert staged.name == f".main.bin{PARTIAL_SUFFIX}" and staged.parent.is_dir()
    assert not staged.exists()  # the directory is made, the file is the caller's
    staged.write_bytes(b"blob bytes")
    store.publish("v1/depots/p/main.bin", staged, size=10)
    assert not staged.exists()
    with store.open_read("v1/depots/p/main.bin") as reader:
        assert reader.read() == b"blob bytes"


def test_storage_publish_refuses_a_wrong_size_or_a_symlinked_stage(
    store: ArchiveStore, outside: Path
) -> None:
    staged = store.staging_path("v1/depots/p/main.bin")
    staged.write_bytes(b"short")
    with pytest.raises(IntegrityError, match="staged 5 bytes, expected 10"):
        store.publish("v1/depots/p/main.bin", staged, size=10)
    staged.unlink()
    staged.symlink_to(outside / "obj")
    with pytest.raises(PathRefused, match=r"\.main\.bin\.galaxy-partial is not a plain file"):
        store.publish("v1/depots/p/main.bin", staged, size=8)
    assert not (store.root / "v1/depots/p/main.bin").exists()
    assert (outside / "obj").read_bytes() == b"precious"


def test_storage_staging_and_publish_never_pass_a_symlinked_directory(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    with pytest.raises(PathRefused, match="v2/store/bb/obj: not written: v2/store/bb is a symlink"):
        store.staging_path("v2/store/bb/obj")
    staged = store.staging_path("v2/store/aa/new")
    staged.write_bytes(b"12345678")
    with pytest.raises(PathRefused, match="v2/store/bb is a symlink"):
        store.publish("v2/store/bb/obj", staged, size=8)
    assert staged.exists() and sorted(p.name for p in outside.iterdir()) == ["obj"]


def test_storage_publish_is_atomic_for_readers(store: ArchiveStore) -> None:
    """A reader opening the object while it is republished sees the old bytes or the new ones,
    whole, and never finds it missing."""
    versions = [bytes([n]) * 100_000 for n in range(2)]
    path = "v2/store/aa/obj"
    store.write_verified(path, [versions[0]], expected_md5=None, expected_size=None)
    seen: list[bytes | str] = []
    is_done = threading.Event()

    def read_until_done() -> None:
        while not is_done.is_set():
            try:
                with store.open_read(path) as reader:
                    seen.append(reader.read())
            except FileNotFoundError:
                seen.append("missing")

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for number in range(200):
            staged = store.staging_path(path)
            staged.write_bytes(versions[number % 2])
            store.publish(path, staged, size=100_000)
    finally:
        is_done.set()
        reader.join()
    assert seen and set(seen) <= set(versions)


def test_storage_list_files_in_the_dbs_path_order_without_following_links(
    store: ArchiveStore, outside: Path
) -> None:
    for name in ("a-b", "a.b", "a/b", "a0", "a/c/d"):
        store.write_verified(f"v2/x/{name}", [b"."], expected_md5=None, expected_size=None)
    (store.root / "v2/x/l").symlink_to(outside, target_is_directory=True)
    listed = [entry.path for entry in store.list_files("v2/x", lambda: False)]
    # SQLite's binary order: '-' < '.' < '/' < '0', a directory's files where 'a/' sorts
    assert listed == ["v2/x/a-b", "v2/x/a.b", "v2/x/a/b", "v2/x/a/c/d", "v2/x/a0", "v2/x/l"]
    assert all(entry.is_listed for entry in store.list_files("v2", lambda: False))
    with pytest.raises(WalkStopped):
        list(store.list_files("v2", lambda: True))
    with pytest.raises(PathRefused, match="not listed"):
        list(store.list_files("../outside", lambda: False))


def test_storage_list_files_names_a_directory_it_cannot_list_and_goes_on(
    store: ArchiveStore,
) -> None:
    """A directory whose path is too long to open (ENAMETOOLONG: unlistable even for root,
    unlike a chmod 000 one) is one entry with is_listed False; the rest is listed."""
    name = "d" * 250
    fd = os.open(store.root / "v2", os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 251 characters: past PATH_MAX (4096)
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    entries = list(store.list_files("v2", lambda: False))
    unlisted = [entry.path for entry in entries if not entry.is_listed]
    assert len(unlisted) == 1 and unlisted[0].startswith("v2/" + name + "/")
    assert len(unlisted[0]) > 4096
    assert "v2/store/aa/obj" in [entry.path for entry in entries if entry.is_listed]


def test_storage_check_writable_refuses_what_a_repair_could_not_write(
    store: ArchiveStore, outside: Path
) -> None:
    _link_directory(store, outside)
    store.check_writable("v2/store/aa/obj")
    store.check_writable("v2/store/new/obj")  # its directory is made
    with pytest.raises(PathRefused, match="not written: v2/store/bb is a symlink"):
        store.check_writable("v2/store/bb/obj")
    store.staging_path("v2/store/aa/obj").symlink_to(outside / "obj")
    with pytest.raises(PathRefused, match=r"not written: \.obj\.galaxy-partial is a symlink"):
        store.check_writable("v2/store/aa/obj")


def test_storage_check_reads_the_complete_bytes_before_they_are_visible(tmp_path: Path) -> None:
    store = ArchiveStore(tmp_path)
    seen: list[tuple[int, bytes]] = []

    def check(reader: BinaryIO) -> None:
        seen.append((reader.tell(), reader.read()))
        assert not (tmp_path / "v2/m").exists()  # not visible yet

    store.write_verified("v2/m", [b"ab", b"cd"], expected_md5=None, expected_size=4, check=check)
    assert seen == [(0, b"abcd")]
