"""`import FILE.tar.zst`: load an export, trusting nothing in it. An adapter: call
transfer.importer.run_import with a progress display, print the summary and every refusal.
"""

from __future__ import annotations

from pathlib import Path

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ExitCode
from galaxy_archive.interrupts import stop_on_signals
from galaxy_archive.output import Progress, escape_name, print_json


@click.command(name="import")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
@output_options
@_exits
def import_(ctx: click.Context, source: Path) -> ExitCode:
    """Load a file written by `export` into this archive (fresh or not).

    Every member is checked against the file's index while it streams and lands only once its
    MD5 matched; a member that does not is named and skipped (exit 1). Running it again adds
    nothing; a killed import is completed by the next one.

    Example: galaxy-archive import quest.tar.zst
    """
    from galaxy_archive.transfer.importer import run_import  # local: see cli.main

    app = _app(ctx)
    progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
    with stop_on_signals(app.stop, app.abort):
        report = run_import(app, source, progress=progress)
    if app.is_json:
        print_json(report.to_json())
        return report.exit_code
    for name, reason in sorted(report.refused.items()):
        click.echo(f"refused {escape_name(name)}: {reason}", err=True)
    for name in sorted(report.missing):
        click.echo(f"missing {escape_name(name)}: listed in the index, not in the file", err=True)
    if app.verbosity >= 0 or report.exit_code:
        click.echo(report.summary_line())
    return report.exit_code
