"""Mirror of a mirror: an archive synced from `serve` equals the archive it serves (issue 14)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Archive
from tests.fakegalaxy import FakeGalaxy, random_bytes
from tests.fakegalaxy.sample import SAMPLE_PRODUCT_ID, SECOND_PRODUCT_ID, sample_world
from tests.integration.serving import ServeProcess, archive_against

PASSWORD = "s3cret"


def test_an_archive_synced_from_serve_equals_the_served_one_file_for_file(
    serve: Callable[..., FakeGalaxy], make_archive: Callable[..., Archive], tmp_path: Path
) -> None:
    world = sample_world()
    private = world.add_v2_build(
        SAMPLE_PRODUCT_ID,
        files={"beta\\new.pak": random_bytes(80_000, 77)},
        branch="beta",
        private_password=PASSWORD,
        version_name="1.2-beta",
    )
    world.owned.update({int(SAMPLE_PRODUCT_ID), int(SECOND_PRODUCT_ID)})
    fake = serve(world)
    archive_a = make_archive(fake, name="a")
    products = (SAMPLE_PRODUCT_ID, SECOND_PRODUCT_ID)
    first = archive_a.run("sync", *products, "--password", PASSWORD)
    assert first.exit_code == 0, first.output
    assert archive_a.db_rows("SELECT 1 FROM builds WHERE build_id = ?", private.build_id)
    fake.stop()  # from here on, GOG is gone: only the archive answers

    server = ServeProcess(archive_a.config_path)
    try:
        archive_b = archive_against(server.url, tmp_path, "b")
        login = archive_b.run("login", "--code", "anything")
        assert login.exit_code == 0, login.output
        synced = archive_b.run("sync", *products, "--password", PASSWORD)
        assert synced.exit_code == 0, synced.output
        tree_a, tree_b = archive_a.tree(), archive_b.tree()
        assert sorted(tree_b) == sorted(tree_a)
        assert tree_b == tree_a
        assert any(path.startswith("v1/depots/") for path in tree_b)  # V1 blobs came too
        verified = archive_b.run("verify")
        assert verified.exit_code == 0, verified.output
        again = archive_b.run("--json", "sync", *products, "--password", PASSWORD)
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["fetched"] == 0
    finally:
        assert server.stop() == 0, server.stderr
