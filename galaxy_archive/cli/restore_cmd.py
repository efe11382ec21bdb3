"""`restore PRODUCT_ID [BUILD_ID DEST]`: rebuild an archived build's files offline. An adapter.

Parse the arguments, open the DB, call the use case (galaxy_archive.restore), print. No HTTP
session is ever built: restore reads the archive only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from galaxy_archive.cli.archive_db import open_existing_db
from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.output import Progress, print_json
from galaxy_archive.report import human_bytes


@click.command()
@click.argument("product_id")
@click.argument("build_id", required=False)
@click.argument("dest", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--lang", help="One language besides the neutral depots (default en-US); 'all'.")
@click.option("--dlc", "dlcs", multiple=True, help="Only this DLC (repeatable).")
@click.option("--no-dlc", is_flag=True, help="No DLC depots.")
@click.option("--offline-depot", is_flag=True, help="Also the build's offline depot.")
@click.option(
    "--with-dependencies", is_flag=True, help="Also the dependencies the build names (__redist)."
)
@click.option("--partial", is_flag=True, help="Restore what can be; exit 1 naming the rest.")
@click.option("--verify-only", is_flag=True, help="Check DEST against the build; write nothing.")
@click.pass_context
@output_options
@_exits
def restore(
    ctx: click.Context,
    product_id: str,
    build_id: str | None,
    dest: Path | None,
    lang: str | None,
    dlcs: tuple[str, ...],
    no_dlc: bool,
    offline_depot: bool,
    with_dependencies: bool,
    partial: bool,
    verify_only: bool,
) -> ExitCode:
    """Rebuild the installed files of an archived build in DEST, from the archive alone.

    Every file is checked (chunk MD5s, then the file's MD5) before it gets its final name;
    a second run writes only what is missing or wrong. With only PRODUCT_ID, list the builds.

    Examples:

      galaxy-archive restore 1207658930

      galaxy-archive restore 1207658930 48000000000000123 ~/Games/Quest --lang de-DE
    """
    from galaxy_archive.restore.listing import restorable_builds  # local: short commands
    from galaxy_archive.restore.planner import Selection
    from galaxy_archive.restore.run import Options
    from galaxy_archive.restore.run import restore as run_restore

    app = _app(ctx)
    if build_id is not None and dest is None:
        raise ConfigError("restore takes PRODUCT_ID, or PRODUCT_ID BUILD_ID DEST")
    if no_dlc and dlcs:
        raise ConfigError("--dlc and --no-dlc exclude each other")
    db = open_existing_db(app)
    try:
        if build_id is None or dest is None:
            return _list(restorable_builds(db, product_id), product_id, app.is_json)
        selection = Selection(
            lang, () if no_dlc else (dlcs or None), offline_depot, with_dependencies
        )
        progress = Progress(is_enabled=False if app.is_json or app.verbosity < 0 else None)
        options = Options(
            selection,
            partial,
            verify_only,
            on_file=_on_file(progress),
            on_start=progress.set_total,
        )
        try:
            result = run_restore(db, app.store(), product_id, build_id, dest, options)
        finally:
            progress.close()
    finally:
        db.close()
    doc = result.document()
    if app.is_json:
        print_json(doc)
    else:
        for problem in result.problems:
            click.echo(f"galaxy-archive: {problem}", err=True)
        for path in result.unnamed if app.verbosity > 0 else []:
            click.echo(f"not in the build (left alone): {path}")
        if app.verbosity >= 0 or not result.is_ok:  # -q: a failing restore still says so
            click.echo(_summary(doc, verify_only))
    return ExitCode.OK if result.is_ok else ExitCode.PROBLEMS


def _on_file(progress: Progress) -> Callable[[int], None]:
    def done(size: int) -> None:
        progress.add_bytes(size)
        progress.add_object()

    return done


def _summary(doc: dict[str, object], verify_only: bool) -> str:
    if verify_only:
        return (
            f"restore --verify-only: {doc['files']} files, {doc['already_correct']} correct, "
            f"{doc['missing_or_wrong']} missing or wrong, {doc['failed']} failed"
        )
    return (
        f"restore: {doc['files']} files, {doc['written']} written, "
        f"{doc['already_correct']} already correct, {doc['failed']} failed, "
        f"{human_bytes(int(str(doc['bytes_written'])))} written"
    )


def _list(builds: list[dict[str, object]], product_id: str, is_json: bool) -> ExitCode:
    if is_json:
        print_json({"command": "restore", "product_id": product_id, "builds": builds})
    elif not builds:
        click.echo(f"product {product_id}: no build in the archive")
    for build in [] if is_json else builds:
        listed = "listed" if build["is_listed"] else "delisted"
        click.echo(
            f"{build['build_id']}  {build['date_published'] or '-'}  "
            f"{build['version_name'] or '-'}  {build['os']}  gen {build['generation']}  "
            f"{listed}  {build['state']}"
        )
    return ExitCode.OK
