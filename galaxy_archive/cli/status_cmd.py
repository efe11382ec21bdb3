"""`status [PRODUCT_ID...]`: what the archive holds. Read-only, offline; a read-only archive
(a backup disk) is read too. An adapter: open the DB, call browse.status, print.
"""

from __future__ import annotations

import click

from galaxy_archive.cli.archive_db import open_existing_db
from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.output import print_json


@click.command()
@click.argument("product_ids", nargs=-1)
@click.pass_context
@output_options
@_exits
def status(ctx: click.Context, product_ids: tuple[str, ...]) -> ExitCode:
    """Show products, builds (listed or not, complete or not), objects and last runs.

    A product id the archive does not hold exits 2, as with verify.

    Example: galaxy-archive status --json
    """
    from galaxy_archive.browse.status import (  # local: see cli.main
        collect_status,
        format_status,
    )

    app = _app(ctx)
    db = open_existing_db(app)
    try:
        doc = collect_status(db, list(product_ids) or None)
    finally:
        db.close()
    shown = {product["product_id"] for product in doc["products"]}
    unknown = [p for p in dict.fromkeys(product_ids) if p not in shown]
    if unknown:
        raise ConfigError(f"no product {', '.join(unknown)} in this archive")
    if app.is_json:
        print_json(doc)
    else:
        click.echo(format_status(doc))
    return ExitCode.OK
