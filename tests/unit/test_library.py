"""Which products a bare sync mirrors; which owned ids are DLC (pure)."""

from __future__ import annotations

from galaxy_archive.models.library import dlc_bases, plan_products


def test_library_plan_puts_requested_first_and_known_dlc_last() -> None:
    plan = plan_products(["5", "1"], ["1", "2", "3", "4"], {"3": "2", "5": "9"})
    assert plan.first == ("5", "1", "2", "4")  # requested ids stay, even when known as DLC
    assert plan.deferred == ("3",)


def test_library_plan_without_owned_is_the_requested_ids_once() -> None:
    plan = plan_products(["7", "7", "8"], [], {})
    assert plan.first == ("7", "8") and plan.deferred == ()


def test_library_dlc_bases_needs_a_product_naming_the_id() -> None:
    named = {"100": {"101", "102"}, "200": {"201"}}
    assert dlc_bases(["101", "201", "300"], named) == {"101": "100", "201": "200"}


def test_library_dlc_bases_is_independent_of_sync_order() -> None:
    # A bundle names the same DLC as its game: the lowest id wins, whatever the order.
    assert dlc_bases(["5"], {"30": {"5"}, "4": {"5"}}) == {"5": "4"}
    assert dlc_bases(["5"], {"4": {"5"}, "30": {"5"}}) == {"5": "4"}


def test_library_a_product_is_never_its_own_dlc() -> None:
    assert dlc_bases(["1"], {"1": {"1"}}) == {}
