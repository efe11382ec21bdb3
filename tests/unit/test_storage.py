import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galaxy_archive.errors import IntegrityError
from galaxy_archive.storage.local import TEMP_SUFFIX, ArchiveStore, md5_of_file


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
