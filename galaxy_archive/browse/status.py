"""`status`: what the archive holds, read from the state DB only (no network, no disk walk)."""

from __future__ import annotations

from typing import Any

from galaxy_archive.models.object_state import ObjectState
from galaxy_archive.report import human_bytes
from galaxy_archive.state.db import StateDB
from galaxy_archive.state.dependency_records import DependencyRecords
from galaxy_archive.state.needs import build_completeness
from galaxy_archive.state.patch_records import PatchRecords

_BUILD_COLUMNS = (
    "build_id, os, generation, branch, version_name, date_published, legacy_build_id, "
    "first_seen, last_seen, is_listed, state, completed_at, error"
)


def collect_status(db: StateDB, product_ids: list[str] | None = None) -> dict[str, Any]:
    """The status document (also the --json output; its schema is in the README)."""
    where, params = "", []
    if product_ids:
        where = f"WHERE product_id IN ({','.join('?' * len(product_ids))})"
        params = list(product_ids)
    products = []
    for product in db.db.query(
        f"SELECT product_id, first_seen, last_synced, last_error, dlc_of FROM products {where} "
        "ORDER BY product_id",
        params,
    ):
        completeness = _completeness(db, product["product_id"])
        builds = [
            {
                **row,
                "is_listed": bool(row["is_listed"]),
                **completeness.get(row["build_id"], _NOTHING_KNOWN),
            }
            for row in db.db.query(
                f"SELECT {_BUILD_COLUMNS} FROM builds WHERE product_id = ? "
                "ORDER BY os, generation, date_published, build_id",
                [product["product_id"]],
            )
        ]
        products.append({**product, "builds": builds})
    by_state = db.objects_by_state()
    stored = sum(
        v["bytes"] for k, v in by_state.items() if k in (ObjectState.VERIFIED, ObjectState.PRESENT)
    )
    return {
        "command": "status",
        "products": products,
        "objects": by_state,
        "bytes_stored": stored,
        "last_sync": db.last_run("sync"),
        "last_verify": db.last_run("verify"),
        "patches": PatchRecords(db).summary(product_ids),
        "dependencies": DependencyRecords(db).summary(),
    }


_NOTHING_KNOWN = {
    "objects_needed": 0,
    "objects_verified": 0,
    "bytes_needed": 0,
    "bytes_verified": 0,
}


def _completeness(db: StateDB, product_id: str) -> dict[str, dict[str, int]]:
    """build id -> objects and bytes needed and verified (state/needs.py: only objects already
    known count, so a build whose repository manifest was never fetched shows 0/0)."""
    return {
        build_id: {
            "objects_needed": needed,
            "objects_verified": verified,
            "bytes_needed": size,
            "bytes_verified": verified_size,
        }
        for build_id, (needed, verified, size, verified_size) in build_completeness(
            db, product_id
        ).items()
    }


def format_status(doc: dict[str, Any]) -> str:
    lines = []
    for product in doc["products"]:
        dlc = f" (DLC of {product['dlc_of']})" if product.get("dlc_of") else ""
        lines.append(
            f"product {product['product_id']}{dlc}: last synced "
            f"{product['last_synced'] or 'never'}"
            + (f" (error: {product['last_error']})" if product["last_error"] else "")
        )
        if not product["builds"]:
            lines.append(
                "  no builds of its own (mirrored with its base game)" if dlc else "  no builds"
            )
        for build in product["builds"]:
            listed = "listed" if build["is_listed"] else "DELISTED"
            branch = build["branch"] or "default"
            lines.append(
                f"  {build['build_id']:>17} {build['os']:<7} gen{build['generation']} "
                f"{branch:<10} {build['version_name'] or '-':<16} {build['state']:<10} {listed:<8} "
                f"seen {build['first_seen'][:10]}..{build['last_seen'][:10]} "
                f"{build['objects_verified']}/{build['objects_needed']} objects"
            )
    states = (
        ", ".join(f"{state} {v['count']}" for state, v in sorted(doc["objects"].items())) or "none"
    )
    lines.append(f"objects: {states}; {human_bytes(doc['bytes_stored'])} stored")
    lines.extend(_patch_and_dependency_lines(doc))
    last_sync = doc["last_sync"]
    lines.append(
        "last sync: "
        + (f"{last_sync['ended_at']} (exit {last_sync['exit_code']})" if last_sync else "never")
    )
    last_verify = doc["last_verify"]
    lines.append(
        "last verify: "
        + (
            f"{last_verify['ended_at']} (exit {last_verify['exit_code']})"
            if last_verify
            else "never"
        )
    )
    return "\n".join(lines)


def _patch_and_dependency_lines(doc: dict[str, Any]) -> list[str]:
    patches, dependencies = doc["patches"], doc["dependencies"]
    outcomes = ", ".join(f"{k} {v}" for k, v in patches["by_outcome"].items()) or "none asked"
    lines = [f"patches: {patches['pairs']} pairs ({outcomes}), {patches['complete']} complete"]
    if dependencies["repository_versions"]:
        lines.append(
            f"dependencies: repository {dependencies['latest_build_id']} "
            f"({dependencies['repository_versions']} versions seen), "
            f"{dependencies['depots_archived']} depots archived of "
            f"{dependencies['dependencies']} dependencies listed"
        )
    else:
        lines.append("dependencies: none recorded")
    return lines
