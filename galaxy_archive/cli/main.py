"""The command line: parse options, build the App, call one use case, print, exit.

No SQL, URLs or hashing here. Every GalaxyArchiveError becomes one line on stderr and its
exit code (errors.ExitCode); anything else is a bug: a scrubbed traceback and exit 2.

Each command imports its use case inside its function: a process loads only the stack of the
command it runs (a plain `verify` or `status` never loads requests, urllib3 or the sync
phases), which keeps the start-up of short and cron-run commands low.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from galaxy_archive import __version__
from galaxy_archive.app import App
from galaxy_archive.config import (
    GENERATIONS,
    OPERATING_SYSTEMS,
    default_config_path,
    load,
    parse_duration_s,
)
from galaxy_archive.errors import ConfigError, ExitCode, GalaxyArchiveError
from galaxy_archive.interrupts import stop_on_signals
from galaxy_archive.output import Progress, one_line, print_json, setup_logging
from galaxy_archive.redact import scrub
from galaxy_archive.state.db import database_fault

F = TypeVar("F", bound=Callable[..., Any])


def _exits(func: F) -> F:
    """Turn the command's result or error into the process exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = _call(func, *args, **kwargs)
        except GalaxyArchiveError as exc:
            message = one_line(scrub(str(exc)))  # it may quote a path from a hostile tree
            click.echo(f"galaxy-archive: {message}", err=True)
            code = exc.exit_code
            _json_error(code, message)
        except KeyboardInterrupt:
            click.echo("galaxy-archive: interrupted; the next run resumes", err=True)
            code = ExitCode.INTERRUPTED
            _json_error(code, "interrupted")
        except click.exceptions.Exit:
            raise
        except Exception:  # a bug: show it, but never a token or signed URL
            click.echo(scrub(traceback.format_exc()), err=True)
            code = ExitCode.USAGE
        sys.exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The command; SQLite giving up on archive.db (locked, damaged, not a database) becomes
    the StorageError naming it, wherever in the command it happened."""
    try:
        return func(*args, **kwargs)
    except sqlite3.Error as exc:
        ctx = click.get_current_context(silent=True)
        if ctx is None or not isinstance(ctx.obj, App):
            raise
        fault = database_fault(ctx.obj.config.database_path, exc)
        if fault is None:  # a query the code got wrong: a bug, shown as one
            raise
        raise fault from exc


def _json_error(code: ExitCode, message: str) -> None:
    """With --json, a command that fails still prints its one JSON document (for scripts)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, App) and ctx.obj.is_json:
        print_json({"command": ctx.info_name, "exit_code": int(code), "error": message})


def _app(ctx: click.Context) -> App:
    app = ctx.obj
    assert isinstance(app, App)
    return app


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galaxy-archive")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="archive.toml (default: $GALAXY_ARCHIVE_CONFIG, then "
    "$XDG_CONFIG_HOME/galaxy-archive/archive.toml).",
)
@click.option(
    "--root", type=click.Path(path_type=Path), help="Archive root (overrides archive.root)."
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.option(
    "--json", "is_json", is_flag=True, help="One JSON document on stdout; logs on stderr."
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also append the log (INFO and above) to this file (overrides log.file).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    root: Path | None,
    verbose: int,
    quiet: bool,
    is_json: bool,
    log_file: Path | None,
) -> None:
    """galaxy-archive: keep an offline, verifiable mirror of the GOG Galaxy CDN.

    Example: galaxy-archive --root /srv/gog sync 1207658930
    """
    try:
        config = load(config_path or default_config_path(os.environ), root_override=root)
    except ConfigError as exc:
        click.echo(f"galaxy-archive: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity, log_file or config.log.file)
    ctx.obj = App(config=config, is_json=is_json, verbosity=verbosity)


@cli.command()
@click.option("--code", help="The code from the login redirect.")
@click.option("--redirect-url", help="The whole URL the browser landed on after logging in.")
@click.pass_context
@_exits
def login(ctx: click.Context, code: str | None, redirect_url: str | None) -> ExitCode:
    """Log in to GOG and store the tokens (mode 0600).

    Open the printed URL, log in, then pass the address the browser lands on:

      galaxy-archive login --redirect-url 'https://…/on_login_success?origin=client&code=…'
    """
    from galaxy_archive.upstream.auth import code_from_redirect  # local: see the module docstring

    app = _app(ctx)
    auth = app.authenticator(app.http(1))
    click.echo(f"Log in at: {auth.login_url()}", err=True)
    if redirect_url:
        code = code_from_redirect(redirect_url)
    if not code:
        if not sys.stdin.isatty():
            raise ConfigError("no --code or --redirect-url given (and stdin is not a terminal)")
        code = code_from_redirect(click.prompt("Paste the URL you landed on", err=True))
    tokens = auth.exchange_code(code)
    click.echo(f"logged in as user {tokens.user_id or '?'}", err=True)
    return ExitCode.OK


@cli.command()
@click.pass_context
@_exits
def logout(ctx: click.Context) -> ExitCode:
    """Delete the stored tokens."""
    app = _app(ctx)
    from galaxy_archive.upstream.auth import TokenStore

    removed = TokenStore(app.config.auth.token_file).delete()
    click.echo("logged out" if removed else "was not logged in", err=True)
    return ExitCode.OK


@cli.command()
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
@_exits
def sync(
    ctx: click.Context,
    product_ids: tuple[str, ...],
    os_names: tuple[str, ...],
    generations: tuple[str, ...],
    build_ids: tuple[str, ...],
    manifest_ids: tuple[str, ...],
    manifest_file: TextIO | None,
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
    from galaxy_archive.models.dependencies import DependencyMode  # local: see the module docstring
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
    )
    progress = Progress(is_enabled=None if not app.is_json else False)
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
    elif app.verbosity >= 0:
        click.echo(report.summary_line())
        if report.is_dry_run:
            for product in report.products.values():
                click.echo(
                    f"  product {product.product_id}: {product.planned_objects} objects, "
                    f"{product.planned_bytes} bytes"
                )
    return report.exit_code


def _ids_in(listing: TextIO | None) -> list[str]:
    """The ids of a --manifest-file: one per line, blank lines and '#' comments skipped."""
    if listing is None:
        return []
    lines = (line.split("#", 1)[0].strip() for line in listing)
    return [line for line in lines if line]


def _duration(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


@cli.command()
@click.argument("product_ids", nargs=-1)
@click.option("--quick", is_flag=True, help="Presence and size only; reads no file.")
@click.option(
    "--deep", is_flag=True, help="Also inflate chunks, parse manifests, check V1 files by offset."
)
@click.option(
    "--max-age", help="Only objects not verified within this long (e.g. 30d), oldest first."
)
@click.option("--time-budget", help="Start no new object after this long (e.g. 2h).")
@click.option(
    "--repair", is_flag=True, help="Fetch missing and corrupt objects again (needs a login)."
)
@click.option(
    "--workers", type=click.IntRange(1, 64), help="Checking threads (default: one per core)."
)
@click.pass_context
@_exits
def verify(
    ctx: click.Context,
    product_ids: tuple[str, ...],
    quick: bool,
    deep: bool,
    max_age: str | None,
    time_budget: str | None,
    repair: bool,
    workers: int | None,
) -> ExitCode:
    """Check stored objects against their recorded sizes and MD5s; record what was proved.

    Corrupt files are moved to <root>/quarantine/ by --repair, never deleted.

    Example (nightly, from cron): galaxy-archive verify --max-age 30d --time-budget 2h
    """
    from galaxy_archive.models.verify_plan import VerifyLevel, VerifyOptions
    from galaxy_archive.verify.verifier import run_verify  # local: see the module docstring

    app = _app(ctx)
    if quick and deep:
        raise ConfigError("--quick and --deep exclude each other")
    for product_id in product_ids:
        if not product_id.isdigit():
            raise ConfigError(f"{product_id!r} is not a product id")
    options = VerifyOptions(
        level=VerifyLevel.QUICK if quick else VerifyLevel.DEEP if deep else VerifyLevel.FULL,
        product_ids=tuple(dict.fromkeys(product_ids)),
        max_age_s=_duration("--max-age", max_age),
        time_budget_s=_duration("--time-budget", time_budget),
        is_repair=repair,
        workers=workers or 0,
    )
    progress = Progress(is_enabled=None if not app.is_json else False)
    with stop_on_signals(app.stop, app.abort):
        report = run_verify(app, options, progress=progress)
    if app.is_json:
        print_json(report.to_json())
    elif app.verbosity >= 0:
        click.echo(report.summary_line())
    return report.exit_code


@cli.command()
@click.argument("product_ids", nargs=-1)
@click.pass_context
@_exits
def status(ctx: click.Context, product_ids: tuple[str, ...]) -> ExitCode:
    """Show products, builds (listed or not, complete or not), objects and last runs.

    Example: galaxy-archive status --json
    """
    from galaxy_archive.browse.status import (  # local: module docstring
        collect_status,
        format_status,
    )

    app = _app(ctx)
    if not app.config.database_path.exists():
        raise ConfigError(f"no archive at {app.config.root} (no {app.config.database_path.name})")
    db = app.open_db()
    try:
        doc = collect_status(db, list(product_ids) or None)
    finally:
        db.close()
    if app.is_json:
        print_json(doc)
    else:
        click.echo(format_status(doc))
    return ExitCode.OK


def main() -> None:
    cli(prog_name="galaxy-archive")
