"""`gc`: delete what nothing the archive records needs. An adapter: parse the options, call
gc.collector.run_gc with a progress display, print the plan (--dry-run) and the summary."""

from __future__ import annotations

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.config import parse_duration_s
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.interrupts import stop_on_signals
from galaxy_archive.output import Progress, escape_name, print_json


@click.command()
@click.option(
    "--dry-run", is_flag=True, help="List what would be deleted, with bytes; delete nothing."
)
@click.option(
    "--max-delete",
    type=click.IntRange(0),
    help="Refuse to delete more than N objects (default: at most 1 % of them).",
)
@click.option(
    "--quarantine-older-than",
    help="Also delete files quarantined longer ago than this (e.g. 90d); default: keep them.",
)
@click.pass_context
@output_options
@_exits
def gc(
    ctx: click.Context, dry_run: bool, max_delete: int | None, quarantine_older_than: str | None
) -> ExitCode:
    """Delete objects no recorded build, patch or dependency needs, and stray files.

    Delisted builds and builds added by id count as needed.

    Example: galaxy-archive gc --dry-run
    """
    from galaxy_archive.gc.collector import GcOptions, run_gc  # local: see cli.main

    app = _app(ctx)
    older_than_s = None
    if quarantine_older_than is not None:
        try:
            older_than_s = parse_duration_s(quarantine_older_than)
        except ValueError as exc:
            raise ConfigError(f"--quarantine-older-than: {exc}") from None
    options = GcOptions(
        is_dry_run=dry_run, max_delete=max_delete, quarantine_older_than_s=older_than_s
    )
    progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
    with stop_on_signals(app.stop, app.abort):
        report = run_gc(app, options, progress=progress)
    if app.is_json:
        print_json(report.to_json())
        return report.exit_code
    if dry_run and app.verbosity >= 0:
        for doomed in report.planned:
            click.echo(f"{doomed.size:>12}  {doomed.why:<10}  {escape_name(doomed.path)}")
    if app.verbosity >= 0 or report.exit_code != ExitCode.OK:
        click.echo(report.summary_line())
    return report.exit_code
