"""`verify [PRODUCT_ID...]`: check what the archive holds, optionally repair it. An adapter:
parse the options, call verify.verifier.run_verify with a progress display, print the summary.
"""

from __future__ import annotations

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.config import parse_duration_s
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.interrupts import stop_on_signals
from galaxy_archive.output import Progress, print_json


def _duration(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None


@click.command()
@click.argument("product_ids", nargs=-1)
@click.option("--quick", is_flag=True, help="Presence and size only; reads no file.")
@click.option("--deep", is_flag=True, help="Also inflate every chunk and parse every manifest.")
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
@output_options
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
    from galaxy_archive.verify.verifier import run_verify  # local: see cli.main

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
    progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
    with stop_on_signals(app.stop, app.abort):
        report = run_verify(app, options, progress=progress)
    if app.is_json:
        print_json(report.to_json())
    elif app.verbosity >= 0:
        click.echo(report.summary_line())
    return report.exit_code
