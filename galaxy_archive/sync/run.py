"""The `sync` use case: the archive lock, a run record, the temp sweep after a crash, then
the products (and the owned library), then the dependencies. The per-product work is
`sync.Syncer`'s; this module only wires a run together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from galaxy_archive.app import App
from galaxy_archive.errors import ManifestError, UpstreamError
from galaxy_archive.models.library import dlc_bases, plan_products
from galaxy_archive.output import Progress
from galaxy_archive.report import SyncReport
from galaxy_archive.runs import RecordedRun
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.lock import archive_lock
from galaxy_archive.sync.context import SyncOptions
from galaxy_archive.sync.syncer import Syncer
from galaxy_archive.upstream.galaxy_api import GalaxyApi
from galaxy_archive.upstream.http_client import HttpClient

log = logging.getLogger(__name__)


def run_sync(
    app: App,
    product_ids: Sequence[str],
    options: SyncOptions,
    *,
    workers: int,
    progress: Progress | None = None,
    include_owned: bool = False,
) -> SyncReport:
    """The `sync` use case, under the archive lock: a run record, the temp sweep after a
    crash, then the products (plus the owned library when `include_owned`).

    The lock comes first: a second run exits 4 before anything else, and two runs never
    refresh the (rotating) login token at the same time.
    """
    with archive_lock(app.config.root, command="sync", clock=app.clock):
        return _locked_sync(app, product_ids, options, workers, progress, include_owned)


def _locked_sync(
    app: App,
    product_ids: Sequence[str],
    options: SyncOptions,
    workers: int,
    progress: Progress | None,
    include_owned: bool,
) -> SyncReport:
    progress = progress or Progress(is_enabled=False)
    http = app.http(workers)
    api = app.api(http)
    api.auth.access_token()  # not logged in: exit 3 before touching the DB
    db = app.open_db()
    try:
        run = RecordedRun.start(db, "sync", pid=app.pid, clock=app.clock, locked_store=app.store())
        with run.ended_on_error(keeps_work=False):  # half-done work is redone next time
            report = _sync_with(
                app, http, api, db, options, workers, progress, product_ids, include_owned
            )
        run.end(int(report.exit_code), report.to_json(), report.summary_line())
        return report
    finally:
        progress.close()
        db.close()


def _sync_with(
    app: App,
    http: HttpClient,
    api: GalaxyApi,
    db: StateDB,
    options: SyncOptions,
    workers: int,
    progress: Progress,
    product_ids: Sequence[str],
    include_owned: bool,
) -> SyncReport:
    downloader = app.downloader(http, api, workers, on_bytes=progress.add_bytes)
    syncer = Syncer(
        api=api,
        db=db,
        store=app.store(),
        downloader=downloader,
        options=options,
        clock=app.clock,
        stop=app.stop,
        disk_free=app.disk_free,
        free_space_at=app.config.root,
    )
    syncer.on_result = lambda _result: progress.add_object()
    syncer.context.on_planned = progress.add_planned
    report = _sync_library(syncer, product_ids, include_owned)
    syncer.sync_dependencies()
    return report


def _sync_library(syncer: Syncer, product_ids: Sequence[str], include_owned: bool) -> SyncReport:
    """Sync the products and, when asked, the owned library, mirroring DLC under its base game.

    The owned list names DLC ids too, but a DLC has no builds of its own: its depots are in
    the base game's builds, whose repository manifests list it in `products`. So ids already
    known as DLC go last and are skipped when a product synced before names them; any id whose
    builds lists turned out empty and that a synced product names is recorded as that
    product's DLC (not an error). An id with no builds that nobody names just has no builds.
    """
    db, report = syncer.db, syncer.report
    owned: list[str] = []
    if include_owned:
        try:
            owned = syncer.api.owned_products()
        except (ManifestError, UpstreamError) as exc:
            report.problem(f"owned products: {exc}; syncing the configured products only")
    plan = plan_products(product_ids, owned, db.known_dlc())
    syncer.sync_products(plan.first)
    named = syncer.named_products
    covered = {p for members in named.values() for p in members}
    syncer.sync_products([p for p in plan.deferred if p not in covered])
    if syncer.stop.is_set():  # unvisited ids have no builds yet only because we stopped
        return report
    without_builds = [
        p
        for p in [*plan.first, *plan.deferred]
        if p in covered and (p not in report.products or report.product(p).builds_seen == 0)
    ]
    for dlc_id, base_id in dlc_bases(without_builds, named).items():
        product = report.product(dlc_id)
        if product.error is None:
            product.dlc_of = base_id
            db.touch_product(dlc_id, syncer.clock())
            db.set_dlc_of(dlc_id, base_id)
    _report_unknown(syncer, [p for p in product_ids if p not in owned])
    return report


def _report_unknown(syncer: Syncer, asked: Sequence[str]) -> None:
    """An id asked for by name that GOG lists no build of, that no product names as its DLC
    and that has no builds archived is an error naming it (a typo, say), not a product."""
    report = syncer.report
    for product_id in asked:
        product = report.product(product_id)
        if product.builds_seen or product.error or product.dlc_of:
            continue
        if syncer.db.forget_product(product_id):
            del report.products[product_id]
            oses = ", ".join(syncer.options.os)
            report.problem(f"product {product_id}: GOG lists no builds of it for {oses}")
