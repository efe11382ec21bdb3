"""`sync [PRODUCT_ID...]`: mirror products into the archive. An adapter: parse the options,
call sync.run.run_sync under the signal handlers with a progress display, print the summary.
"""

from __future__ import annotations

from typing import TextIO

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.config import GENERATIONS, OPERATING_SYSTEMS
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.interrupts import stop_on_signals
from galaxy_archive.output import Progress, print_json


@click.command()
@click.argument("product_ids", nargs=-1)
@click.option(
    "--os",
    "os_names",
    multiple=True,
    type=click.Choice(OPERATING_SYSTEMS),
    help="Only these OSes (repeatable; default: sync.os).",
)
@click.option(
    "--generation",
    "generations",
    multiple=True,
    type=click.Choice([str(g) for g in GENERATIONS]),
    help="Only these generations (repeatable; default: sync.generations).",
)
@click.option("--build", "build_ids", multiple=True, help="Only these build ids (repeatable).")
@click.option(
    "--manifest",
    "manifest_ids",
    multiple=True,
    help="Also archive the generation-2 build of this repository manifest id, listed or not "
    "(repeatable).",
)
@click.option(
    "--manifest-file",
    type=click.File("r"),
    help="Repository manifest ids to add, one per line ('#' starts a comment).",
)
@click.option(
    "--v1",
    "v1_locations",
    multiple=True,
    metavar="OS/LEGACY_ID",
    callback=lambda ctx, param, values: tuple(_v1_location(v) for v in values),
    help="Also archive the generation-1 build at this OS and legacy build id (e.g. "
    "windows/37794096), listed or not; one PRODUCT_ID only (repeatable).",
)
@click.option("--no-dlc", is_flag=True, help="Skip DLC depots.")
@click.option("--no-patches", is_flag=True, help="Skip patches between builds (sync.patches).")
@click.option(
    "--no-dependencies", is_flag=True, help="Skip dependencies (sync.dependencies = false)."
)
@click.option("--branch", help="Only builds of this branch.")
@click.option("--password", help="Password that unlocks private branches.")
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Parallel downloads (default: sync.workers)."
)
@click.option("--dry-run", is_flag=True, help="Fetch manifests only; print what would be fetched.")
@click.option(
    "--owned", is_flag=True, help="Also sync every product the account owns (DLC with its game)."
)
@click.pass_context
@output_options
@_exits
def sync(
    ctx: click.Context,
    product_ids: tuple[str, ...],
    os_names: tuple[str, ...],
    generations: tuple[str, ...],
    build_ids: tuple[str, ...],
    manifest_ids: tuple[str, ...],
    manifest_file: TextIO | None,
    v1_locations: tuple[tuple[str, int], ...],
    no_dlc: bool,
    no_patches: bool,
    no_dependencies: bool,
    branch: str | None,
    password: str | None,
    workers: int | None,
    dry_run: bool,
    owned: bool,
) -> ExitCode:
    """Mirror products' builds, manifests and chunks into the archive.

    Without ids: the products in sync.products, plus every owned product when sync.owned is
    true or --owned is given. Holds the archive lock (a second run exits 4); SIGINT/SIGTERM
    stop cleanly with exit 130. Never prompts.

    Example: galaxy-archive sync 1207658930 --os windows --workers 8
    """
    from galaxy_archive.models.dependencies import DependencyMode  # local: see cli.main
    from galaxy_archive.sync.context import SyncOptions
    from galaxy_archive.sync.run import run_sync

    app = _app(ctx)
    sync_config = app.config.sync
    products = list(dict.fromkeys(product_ids or sync_config.products))
    include_owned = owned or (not product_ids and sync_config.owned)
    if not products and not include_owned:
        raise ConfigError(
            "no product ids given, sync.products is empty and sync.owned is false (or pass --owned)"
        )
    for product_id in products:
        if not product_id.isdigit():
            raise ConfigError(f"{product_id!r} is not a product id")
    if v1_locations and (len(products) != 1 or include_owned):
        # a location names no product: it is the one product named
        raise click.UsageError("--v1 needs exactly one PRODUCT_ID (the build's product)")
    options = SyncOptions(
        os=os_names or sync_config.os,
        generations=tuple(int(g) for g in generations) or sync_config.generations,
        build_ids=build_ids,
        branch=branch,
        password=password,
        include_dlc=sync_config.dlc and not no_dlc,
        is_dry_run=dry_run,
        include_patches=sync_config.patches and not no_patches,
        patch_recheck_s=sync_config.patch_recheck_s,
        dependencies=DependencyMode("none" if no_dependencies else sync_config.dependencies),
        v1_range_size=sync_config.v1_range_size,
        manifest_ids=(*manifest_ids, *_ids_in(manifest_file)),
        v1_locations=v1_locations,
    )
    progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
    with stop_on_signals(app.stop, app.abort):
        report = run_sync(
            app,
            products,
            options,
            workers=workers or sync_config.workers,
            progress=progress,
            include_owned=include_owned,
        )
    if app.is_json:
        print_json(report.to_json())
    elif app.verbosity >= 0 or report.exit_code != ExitCode.OK:  # -q: a failing run still says so
        click.echo(report.summary_line())
        if report.is_dry_run:
            for line in report.dry_run_lines():
                click.echo(line)
    return report.exit_code


def _ids_in(listing: TextIO | None) -> list[str]:
    """The ids of a --manifest-file: one per line, blank lines and '#' comments skipped."""
    if listing is None:
        return []
    lines = (line.split("#", 1)[0].strip() for line in listing)
    return [line for line in lines if line]


def _v1_location(value: str) -> tuple[str, int]:
    """`OS/LEGACY_ID` (e.g. windows/37794096) -> (os, legacy build id); else a usage error."""
    os_name, _, legacy = value.strip().partition("/")
    if os_name not in OPERATING_SYSTEMS or not _is_number(legacy):
        raise click.BadParameter(
            f"{value!r} is not OS/LEGACY_ID (OS one of {', '.join(OPERATING_SYSTEMS)}, "
            "LEGACY_ID digits; e.g. windows/37794096)",
            param_hint="'--v1'",
        )
    return os_name, int(legacy)


def _is_number(text: str) -> bool:
    # ASCII digits only, and few enough to fit the DB's 64-bit integers
    return text.isascii() and text.isdigit() and len(text) <= 18
