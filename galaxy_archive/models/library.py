"""Which products a sync mirrors, and which owned ids are DLC. Pure: values in, values out.

The owned list (protocol.md §9) names base games and DLC alike. A DLC has no builds of its
own: its depots are part of its base game's builds, whose repository manifests list it under
`products`. Mirroring it as a product of its own would only ask four empty builds lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ProductPlan:
    first: tuple[str, ...]  # synced in this order
    # Ids recorded as DLC by an earlier run: synced after `first`, and only if no product
    # synced in `first` names them (which makes the common case cost no request at all).
    deferred: tuple[str, ...]


def plan_products(
    requested: Sequence[str], owned: Sequence[str], known_dlc: Mapping[str, str]
) -> ProductPlan:
    """Requested ids first (in their order), then the owned ones; known DLC deferred."""
    ordered = list(dict.fromkeys([*requested, *owned]))
    explicit = set(requested)
    deferred = tuple(p for p in ordered if p in known_dlc and p not in explicit)
    first = tuple(p for p in ordered if p not in deferred)
    return ProductPlan(first, deferred)


def dlc_bases(
    without_builds: Iterable[str], named_by: Mapping[str, Iterable[str]]
) -> dict[str, str]:
    """DLC id -> its base product, for ids without builds that a synced product names.

    When several products name the same id (bundles), the lowest base id wins, so the answer
    does not depend on the order products were synced in.
    """
    bases: dict[str, str] = {}
    for base in sorted(named_by, key=_numeric):
        for member in named_by[base]:
            bases.setdefault(member, base)
    return {p: bases[p] for p in without_builds if p in bases and bases[p] != p}


def _numeric(product_id: str) -> tuple[int, str]:
    return (int(product_id), product_id) if product_id.isdigit() else (0, product_id)
