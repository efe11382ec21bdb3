"""A store that fails to keep objects costs those objects, not the run: the run ends with
problems (exit 1, not interrupted), a store failing object after object has its remaining
tasks dropped instead of tried one by one, and the next run completes the tree.

The failing store is the local one with its writes of chunks refused (as a bucket gone or a
spool that cannot be written would refuse them); the network is the real fake Galaxy server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from galaxy_archive.app import App
from galaxy_archive.config import load
from galaxy_archive.errors import ExitCode, StorageError
from galaxy_archive.fetch.downloader import STORE_FAILURES_IN_A_ROW
from galaxy_archive.storage.interface import Check, StoredObject
from galaxy_archive.storage.local import ArchiveStore
from galaxy_archive.sync.context import SyncOptions
from galaxy_archive.sync.run import run_sync
from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, World, random_bytes

PID = "1207658930"
FILES = 40


class ChunkRefusingStore(ArchiveStore):
    """Keeps manifests, refuses every chunk, counting the refusals."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.refused = 0

    def write_verified(
        self,
        relative: str,
        pieces: Iterable[bytes],
        *,
        expected_md5: str | None,
        expected_size: int | None,
        check: Check | None = None,
    ) -> StoredObject:
        if relative.startswith("v2/store/"):
            self.refused += 1  # under the GIL; the workers only ever add one
            raise StorageError(f"{relative}: cannot upload on http://store.invalid: gone")
        return super().write_verified(
            relative, pieces, expected_md5=expected_md5, expected_size=expected_size, check=check
        )


def chunk_world() -> World:
    world = World(seed=31)
    files = {f"data\\f{i:02d}.bin": random_bytes(20_000, 200 + i) for i in range(FILES)}
    world.add_v2_build(PID, files=files, chunk_size=64 * 1024)
    return world


def v2_tree(world: World) -> dict[str, bytes]:
    tree = world.expected_tree(generations=(2,), include_patches=False, include_dependencies=False)
    return {path: body for path, body in tree.items() if path.startswith("v2/")}


def app_with(archive: Archive, store: ArchiveStore) -> App:
    app = App(config=load(archive.config_path))
    app._store = store  # the run's one store, as App.store() would have built it
    return app


def test_a_failing_store_costs_its_objects_exits_1_and_the_next_run_completes(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive]
) -> None:
    world = chunk_world()
    archive = make_archive(serve(world))
    root = Path(load(archive.config_path).root)
    refusing = ChunkRefusingStore(root)
    report = run_sync(app_with(archive, refusing), [PID], SyncOptions(generations=(2,)), workers=2)

    assert report.exit_code == ExitCode.PROBLEMS
    assert not report.is_interrupted
    # every chunk tried failed on its own; then the rest were dropped, not tried one by one
    chunks = sum(1 for path in v2_tree(world) if path.startswith("v2/store/"))
    assert STORE_FAILURES_IN_A_ROW <= refusing.refused < chunks
    assert report.failed == refusing.refused
    (error,) = [p.error for p in report.products.values()]
    assert error is not None and error.startswith(f"{refusing.refused} object(s) could not be")
    assert "the objects not yet tried were left for the next run" in error
    assert error.endswith("cannot upload on http://store.invalid: gone")

    again = run_sync(
        app_with(archive, ArchiveStore(root)), [PID], SyncOptions(generations=(2,)), workers=2
    )
    assert again.exit_code == ExitCode.OK, again.problems
    assert {k: v for k, v in archive.tree().items() if k.startswith("v2/")} == v2_tree(world)
