"""`diff PRODUCT_ID OLD_BUILD NEW_BUILD`: what changed between two archived builds.

An adapter: parse the arguments, open the DB, call browse.diff, print. The use case is imported
inside the command (see cli.main: short commands load little).
"""

from __future__ import annotations

import click

from galaxy_archive.cli.archive_db import open_existing_db
from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ExitCode
from galaxy_archive.output import print_json


@click.command()
@click.argument("product_id")
@click.argument("old_build")
@click.argument("new_build")
@click.pass_context
@output_options
@_exits
def diff(ctx: click.Context, product_id: str, old_build: str, new_build: str) -> ExitCode:
    """List the files added, removed, changed (by MD5) and moved between two archived builds
    of one product and OS (V1 and V2 alike, by path), the bytes an update needs and, where
    the archive holds the patch for the pair, its size and the changed files it covers.

    Example: galaxy-archive diff 1207658930 48000000000000123 48000000000000456 --json
    """
    from galaxy_archive.browse.diff import diff_document  # local: see the module docstring
    from galaxy_archive.browse.show import require_ids
    from galaxy_archive.browse.text import diff_lines

    app = _app(ctx)
    require_ids(product_id, old_build, new_build)
    db = open_existing_db(app)
    try:
        doc = diff_document(db, app.store(), product_id, old_build, new_build)
    finally:
        db.close()
    if app.is_json:
        print_json(doc)
    else:
        for line in diff_lines(doc):
            click.echo(line)
    return ExitCode.OK
