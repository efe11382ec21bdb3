"""The patch phase of `sync` (protocol.md §7): index answers, root and depot manifests, deltas.

Per product, after its builds: every pair of consecutive generation-2 builds recorded in the
DB (listed or not) is asked about once; what GOG answered is recorded with its raw body; the
patch root manifest and the patch depot manifests go to v2/patches/meta, the delta chunks to
v2/patches/store through the product's secure link with root /patches/store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from galaxy_archive.errors import ManifestError, StorageError, UpstreamError
from galaxy_archive.fetch.sources import patch_chunk_sources, patch_meta_sources
from galaxy_archive.fetch.tasks import FetchTask
from galaxy_archive.models.decoding import decode_meta, read_bounded
from galaxy_archive.models.layout import ObjectKind, cas_path
from galaxy_archive.models.manifests import (
    DepotManifest,
    DepotRef,
    parse_depot_manifest,
    parse_repository_v2,
)
from galaxy_archive.models.object_state import BuildState, ObjectState
from galaxy_archive.models.patches import (
    BuildPoint,
    PatchIndexAnswer,
    PatchOutcome,
    PatchPair,
    PatchRoot,
    is_due,
    parse_patch_index,
    plan_pairs,
    read_patch_root,
    root_mismatch,
    select_patch_depots,
)
from galaxy_archive.state.db import NewObject, ObjectRow
from galaxy_archive.state.patch_records import PatchRecords, PatchRow, pair_key
from galaxy_archive.storage.interface import Check
from galaxy_archive.sync.context import SyncContext
from galaxy_archive.sync.phase import Phase, chunk_references, parse_check


def read_patch_depot(reader: BinaryIO, what: str) -> DepotManifest:
    return parse_depot_manifest(decode_meta(read_bounded(reader, what), what), what)


@dataclass
class _Active:
    """A pair whose patch root is known, during one run."""

    pair: PatchPair
    patch_id: str
    link: str | None
    root: PatchRoot | None = None
    depots: tuple[int, ...] = ()  # patch depot manifest object ids
    is_blocked: bool = False  # its depots could not be chosen this run


class PatchPhase(Phase):
    """Archive the patches of one product's pairs; one instance per product and run."""

    def __init__(self, context: SyncContext) -> None:
        super().__init__(context)
        self.records = PatchRecords(context.db)
        # Roots whose bytes matched their id but are no valid patch root (set by the check,
        # from worker threads: one dict assignment each).
        self._invalid_roots: dict[str, str] = {}

    def run(self, product_id: str) -> None:
        pairs = self._pairs(product_id)
        if not pairs:
            return
        active = self._ask(product_id, pairs)
        self.db.conn.commit()
        self._fetch_roots(product_id, active)
        for item in active:
            self._read_root(item)
        self._fetch_depot_manifests(product_id, active)
        self._index_depots(product_id, active)
        self._fetch_chunks(product_id, [item.pair for item in active])
        if not self.options.is_dry_run:
            self._update_states(pairs, active)
        self.db.conn.commit()

    # --- which pairs, and asking the index -------------------------------------------------

    def _pairs(self, product_id: str) -> list[PatchPair]:
        """Pairs over every recorded gen-2 build of the selected OSes and branch; a pair is
        considered when its target build is selected (--build)."""
        options = self.options
        builds = [
            BuildPoint(row["build_id"], row["os"], row["branch"], row["date_published"] or "")
            for row in self.db.builds(product_id)
            if row["generation"] == 2 and row["os"] in options.os
        ]
        return [
            pair
            for pair in plan_pairs(product_id, builds)
            if (options.branch is None or pair.branch == options.branch)
            and (not options.build_ids or pair.to_build_id in options.build_ids)
        ]

    def _ask(self, product_id: str, pairs: Sequence[PatchPair]) -> list[_Active]:
        """Ask the index about each pair that is due; return the pairs with a patch root."""
        rows = self.records.rows(product_id)
        now = self.clock()
        active: list[_Active] = []
        for pair in pairs:
            if self.context.stop.is_set():  # stopping: ask nothing more; the next run goes on
                break
            row = rows.get(pair_key(pair))
            if row is None or is_due(
                row.outcome, row.asked_at_s, now, self.options.patch_recheck_s
            ):
                row = self._ask_pair(pair, now)
            if row.outcome in (PatchOutcome.NO_PATCH, PatchOutcome.ERROR):
                self.report.count_patch(str(row.outcome))
            elif row.patch_id is not None:
                active.append(_Active(pair, row.patch_id, row.link))
        return active

    def _ask_pair(self, pair: PatchPair, now: float) -> PatchRow:
        status: int | None = None
        body = b""
        try:
            reply = self.api.patches_index(pair.product_id, pair.from_build_id, pair.to_build_id)
        except UpstreamError as exc:
            answer = PatchIndexAnswer(PatchOutcome.ERROR, error=str(exc))
        else:
            status, body = reply.status, reply.body
            answer = parse_patch_index(reply.status, reply.body, pair)
        self.report.count_patch("asked")
        if answer.error:
            self.report.problem(answer.error)
        return self.records.record_answer(pair, status, body, answer, now)

    # --- the root manifests ----------------------------------------------------------------

    def _fetch_roots(self, product_id: str, active: Sequence[_Active]) -> None:
        paths = {item.patch_id: cas_path(ObjectKind.PATCH_META, item.patch_id) for item in active}
        ids = self.db.ensure_objects(
            [
                NewObject(ObjectKind.PATCH_META, path, md5, product_id=product_id)
                for md5, path in paths.items()
            ],
            self.clock(),
        )
        self.db.add_object_products((object_id, product_id) for object_id in ids.values())
        tasks: dict[str, FetchTask | None] = {}
        for item in active:
            path = paths[item.patch_id]
            self.records.set_root(item.pair, ids[path])
            if item.patch_id not in tasks:
                tasks[item.patch_id] = self._root_task(product_id, item, path)
        self.context.fetch(tasks.values())

    def _root_task(self, product_id: str, item: _Active, path: str) -> FetchTask | None:
        what = f"patch root {item.patch_id} ({item.pair.what})"
        links = (item.link,) if item.link else ()
        sources = patch_meta_sources(self.api, item.patch_id, *links)
        check = self._root_check(item.pair, item.patch_id, what)
        row = self.context.recorded(path)
        return self.context.task_unless_verified(row, sources, what, product_id, check=check)

    def _root_check(self, pair: PatchPair, patch_id: str, what: str) -> Check:
        """The downloader's check of a root: it must parse; why it did not is remembered."""

        def check(reader: BinaryIO) -> None:
            try:
                parse_root_for(read_bounded(reader, what), pair, what)
            except ManifestError as exc:
                self._invalid_roots[patch_id] = str(exc)
                raise

        return check

    def _read_root(self, item: _Active) -> None:
        """Decide what the (stored) root means: empty, unsupported, invalid or a patch."""
        pair = item.pair
        what = f"patch root {item.patch_id} ({pair.what})"
        invalid = self._invalid_roots.get(item.patch_id)
        path = cas_path(ObjectKind.PATCH_META, item.patch_id)
        if invalid is None and self.context.is_verified(path):
            try:
                with self.store.open_read(path) as reader:
                    item.root = parse_root_for(read_bounded(reader, what), pair, what)
            except ManifestError as exc:
                invalid = str(exc)
            except (StorageError, OSError) as exc:
                invalid = f"{what}: {exc}"
            if invalid is not None:
                self.report.problem(invalid)
            elif item.root is not None:
                self.context.report_skipped(item.root.skipped)
        # (A root the downloader's check refused was reported by the downloader.)
        if invalid is not None:
            self.records.set_result(pair, PatchOutcome.INVALID, None, invalid)
            self.report.count_patch(str(PatchOutcome.INVALID))
            return
        root = item.root
        if root is None:  # not fetched this run; the downloader reported why
            self.report.count_patch(str(PatchOutcome.PATCH))
            return
        if root.is_empty:
            self.records.set_result(pair, PatchOutcome.EMPTY, None, None)
            self.report.count_patch(str(PatchOutcome.EMPTY))
        elif not root.is_supported:
            message = (
                f"{what}: algorithm {str(root.algorithm)[:40]!r} is not supported "
                "(only xdelta3); its depots are not archived"
            )
            self.report.problem(message)
            self.records.set_result(pair, PatchOutcome.UNSUPPORTED, root.algorithm, message)
            self.report.count_patch(str(PatchOutcome.UNSUPPORTED))
        else:
            self.records.set_result(pair, PatchOutcome.PATCH, root.algorithm, None)
            self.report.count_patch(str(PatchOutcome.PATCH))

    # --- patch depot manifests and their chunks --------------------------------------------

    def _fetch_depot_manifests(self, product_id: str, active: Sequence[_Active]) -> None:
        tasks: dict[int, FetchTask | None] = {}
        for item in active:
            if item.root is None or item.root.is_empty or not item.root.is_supported:
                continue
            depots = self._choose_depots(item)
            if depots is None:
                continue
            paths = {d.manifest: cas_path(ObjectKind.PATCH_META, d.manifest) for d in depots}
            ids = self.db.ensure_objects(
                [
                    NewObject(
                        ObjectKind.PATCH_META,
                        paths[d.manifest],
                        d.manifest,
                        product_id=d.product_id,
                    )
                    for d in depots
                ],
                self.clock(),
            )
            chosen = []
            for depot in depots:
                object_id = ids[paths[depot.manifest]]
                chosen.append(object_id)
                self.records.record_depot(item.pair, object_id, depot)
                self.db.add_object_products([(object_id, depot.product_id)])
                if object_id not in tasks:
                    row = self.context.recorded(paths[depot.manifest])
                    tasks[object_id] = self._depot_manifest_task(row, depot, item.pair)
            item.depots = tuple(chosen)
        self.context.fetch(tasks.values())

    def _depot_manifest_task(
        self, row: ObjectRow, depot: DepotRef, pair: PatchPair
    ) -> FetchTask | None:
        what = f"patch depot manifest {depot.manifest} ({pair.what})"
        sources = patch_meta_sources(self.api, depot.manifest)
        check = parse_check(read_patch_depot, what)
        return self.context.task_unless_verified(row, sources, what, depot.product_id, check=check)

    def _choose_depots(self, item: _Active) -> list[DepotRef] | None:
        """The root's depots for the product and (unless --no-dlc) the target's DLC."""
        assert item.root is not None
        pair = item.pair
        dlc_ids: tuple[str, ...] | None = None
        if self.options.include_dlc:
            dlc_ids = self._target_products(pair)
            if dlc_ids is None:
                message = f"{pair.what}: build {pair.to_build_id}'s repository is not archived"
                self.records.set_result(pair, PatchOutcome.PATCH, item.root.algorithm, message)
                item.is_blocked = True
                return None
        return select_patch_depots(item.root, pair.product_id, dlc_ids)

    def _target_products(self, pair: PatchPair) -> tuple[str, ...] | None:
        """The product ids the target build's repository manifest lists (DLC included)."""
        row = self.db.conn.execute(
            "SELECT o.path FROM builds b JOIN objects o ON o.id = b.repository_object_id "
            "WHERE b.product_id = ? AND b.build_id = ? AND o.state = ?",
            (pair.product_id, pair.to_build_id, ObjectState.VERIFIED),
        ).fetchone()
        if row is None:
            return None
        what = f"repository manifest of build {pair.to_build_id}"
        try:
            with self.store.open_read(row[0]) as reader:
                data = decode_meta(read_bounded(reader, what), what)
            return parse_repository_v2(data, what).product_ids
        except (ManifestError, StorageError, OSError):
            return None

    def _index_depots(self, product_id: str, active: Sequence[_Active]) -> None:
        """Record each newly fetched patch depot manifest's chunks."""
        now = self.clock()
        for object_id in dict.fromkeys(o for item in active for o in item.depots):
            if self.db.is_indexed(object_id):
                continue
            row = self.db.conn.execute(
                "SELECT o.path, o.md5, o.state, pd.depot_product_id FROM objects o "
                "JOIN patch_depots pd ON pd.manifest_object_id = o.id WHERE o.id = ? LIMIT 1",
                (object_id,),
            ).fetchone()
            path, md5, state, depot_product = row
            if state != ObjectState.VERIFIED:
                continue
            what = f"patch depot manifest {md5} (product {depot_product})"
            manifest = self.context.read_stored(path, read_patch_depot, what)
            if manifest is None:
                continue
            self.context.report_skipped(manifest.skipped)
            roles = chunk_references(manifest, ObjectKind.PATCH_STORE, depot_product)
            ids = self.db.ensure_objects([obj for _, obj in roles], now)
            # Indexed and linked to the depot's product in one transaction.
            references = [(ids[obj.path], role) for role, obj in roles]
            self.db.index_manifest(object_id, references, [], now)
            self.db.add_object_products((i, depot_product) for i in ids.values())
        self.db.conn.commit()

    def _fetch_chunks(self, product_id: str, pairs: Sequence[PatchPair]) -> None:
        pending = self.records.pending_chunks(product_id, pairs)
        if self.options.is_dry_run:
            product = self.report.product(product_id)
            product.planned_objects += len(pending)
            product.planned_bytes += sum(row.size or 0 for row, _ in pending)
            return
        self.context.fetch(
            self.context.task_unless_verified(
                row,
                patch_chunk_sources(row.md5 or "", depot_product),
                f"patch chunk {row.md5} (product {depot_product})",
                depot_product,
            )
            for row, depot_product in pending
        )

    def _update_states(self, pairs: Sequence[PatchPair], active: Sequence[_Active]) -> None:
        now = self.clock()
        results = {pair_key(item.pair): item for item in active}
        for pair in pairs:
            item = results.get(pair_key(pair))
            if item is None:  # no patch, or the index could not be asked: already recorded
                continue
            root = item.root
            is_usable = root is not None and (root.is_empty or root.is_supported)
            is_complete = (
                is_usable and not item.is_blocked and self.records.missing_objects(pair) == 0
            )
            state = BuildState.COMPLETE if is_complete else BuildState.INCOMPLETE
            self.records.set_state(pair, state, now)
            if is_complete and root is not None and not root.is_empty:
                self.report.count_patch("complete")


def parse_root_for(body: bytes, pair: PatchPair, what: str) -> PatchRoot:
    """A root manifest that must belong to `pair` (its ids, when it states them, agree)."""
    root = read_patch_root(body, what)
    mismatch = root_mismatch(root, pair)
    if mismatch is not None:
        raise ManifestError(f"{what}: {mismatch}")
    return root
