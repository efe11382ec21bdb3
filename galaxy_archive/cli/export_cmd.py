"""`export PRODUCT_ID -o FILE.tar.zst`: one product's closure as a file. An adapter: parse,
call transfer.export.run_export with a progress display, print the summary and the index MD5.
"""

from __future__ import annotations

from pathlib import Path

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.output import Progress, print_json


@click.command()
@click.argument("product_id")
@click.option("--build", "build_ids", multiple=True, help="Only this build (repeatable).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The file to write (FILE.tar.zst); replaced only once complete.",
)
@click.pass_context
@output_options
@_exits
def export(
    ctx: click.Context, product_id: str, build_ids: tuple[str, ...], output: Path
) -> ExitCode:
    """Write a product's builds, their DLC, patches and DB rows as one verifiable file.

    The index MD5 printed at the end identifies the file's contents: write it down beside it.

    Example: galaxy-archive export 1207658930 -o quest.tar.zst
    """
    from galaxy_archive.transfer.export import run_export  # local: see cli.main

    app = _app(ctx)
    for value in (product_id, *build_ids):
        if not value.isdigit():
            raise ConfigError(f"{value!r} is not a numeric id")
    if not output.parent.is_dir():
        raise ConfigError(f"{output.parent}: no such directory")
    progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
    report = run_export(app, product_id, build_ids, output, progress=progress)
    if app.is_json:
        print_json(report.to_json())
    elif app.verbosity >= 0:
        click.echo(report.summary_line())
    return report.exit_code
