"""`serve`: the archive as a GOG for the LAN. An adapter: options in, serve.server called.

The use case is imported inside the command (see cli.main's docstring: short commands load
little).
"""

from __future__ import annotations

from pathlib import Path

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ExitCode


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port, printed when ready).",
)
@click.option(
    "--public-url",
    help="The base URL handed out in links (a LAN name, a reverse "
    "proxy); default: the scheme and Host each request came in on.",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PEM certificate (chain): serve HTTPS.",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="PEM private key of --tls-cert.",
)
@click.option("--hide-delisted", is_flag=True, help="Leave builds GOG no longer lists out.")
@click.pass_context
@output_options
@_exits
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    public_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    hide_delisted: bool,
) -> ExitCode:
    """Serve the archive read-only over HTTP(S) in GOG's own URL shapes.

    Another galaxy-archive (every [endpoints] URL set to this server), lgogdownloader or
    heroic-gogdl (GOG host names pointed here by DNS or /etc/hosts, with --tls-cert) then
    install every build the archive holds. Only verified objects are served. Stops cleanly
    on SIGINT or SIGTERM.

    Example:

      galaxy-archive --root /srv/gog serve --host 0.0.0.0 --port 8080
    """
    from galaxy_archive.serve.server import (  # local: see the module docstring
        Answers,
        ServeOptions,
        serve_until_signal,
    )
    from galaxy_archive.state.serve_reads import open_read_only

    app = _app(ctx)
    options = ServeOptions(host, port, public_url, tls_cert, tls_key, hide_delisted)
    reads = open_read_only(app.config.database_path)
    try:
        handler = Answers(app.store(), reads, options, clock=app.clock)
        serve_until_signal(
            handler, lambda url: click.echo(f"galaxy-archive: serving on {url}", err=True)
        )
    finally:
        reads.close()
    return ExitCode.OK
