"""`show HASH` and `show PRODUCT_ID BUILD_ID`: read what the archive keeps. Read-only, offline.

An adapter: parse the arguments, open the DB, call browse.show, print. The use case is
imported inside the command (see cli.main: short commands load little).
"""

from __future__ import annotations

import sys

import click

from galaxy_archive.cli.archive_db import open_existing_db
from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.output import print_json


@click.command()
@click.argument("target", nargs=-1, required=True)
@click.option("--files", "with_files", is_flag=True, help="A build: list every file.")
@click.option("--raw", is_flag=True, help="A manifest: write its stored bytes unchanged.")
@click.pass_context
@output_options
@_exits
def show(ctx: click.Context, target: tuple[str, ...], with_files: bool, raw: bool) -> ExitCode:
    """Show a stored manifest (by id, or a V1 manifest by its path) or an archived build.

    A manifest is decoded and printed as JSON with its kind and the builds that reference it;
    one that is not stored, or whose bytes no longer hash to its id, exits 1.

    Examples:

      galaxy-archive show 3f1a0c2e9d8b7a6f5e4d3c2b1a098765

      galaxy-archive show v1/manifests/1207658930/windows/37123456/repository.json --raw

      galaxy-archive show 1207658930 48000000000000123 --files
    """
    from galaxy_archive.browse.show import (  # local: see the module docstring
        require_ids,
        show_build,
        show_manifest,
    )
    from galaxy_archive.browse.text import build_lines, manifest_lines

    app = _app(ctx)
    if len(target) not in (1, 2):
        raise ConfigError("show takes a manifest id or path, or a product id and a build id")
    if len(target) == 1 and with_files:
        raise ConfigError("--files lists a build's files: give a product id and a build id")
    if len(target) == 2 and raw:
        raise ConfigError("--raw writes a manifest's bytes: give a manifest id or path")
    if raw and app.is_json:
        raise ConfigError("--raw and --json exclude each other")
    db = open_existing_db(app)
    try:
        if len(target) == 1:
            shown = show_manifest(db, app.store(), target[0])
            if raw:
                sys.stdout.buffer.write(shown.body)
                sys.stdout.buffer.flush()
                return ExitCode.OK
            doc = shown.document()
            lines = manifest_lines(doc)
        else:
            require_ids(*target)
            doc = show_build(db, app.store(), target[0], target[1], with_files=with_files)
            lines = build_lines(doc)
        if app.is_json:
            print_json(doc)
        else:
            for line in lines:
                click.echo(line)
    finally:
        db.close()
    return ExitCode.OK
