"""`login` and `logout`: the GOG tokens (mode 0600). Adapters: the messages go to stderr and,
with --json, one document to stdout (`{"command", "exit_code", "user_id"}` /
`{"command", "exit_code", "was_logged_in"}`), like every other command.
"""

from __future__ import annotations

import sys

import click

from galaxy_archive.cli.main import _app, _exits, output_options
from galaxy_archive.errors import ConfigError, ExitCode
from galaxy_archive.output import print_json


@click.command()
@click.option("--code", help="The code from the login redirect.")
@click.option("--redirect-url", help="The whole URL the browser landed on after logging in.")
@click.pass_context
@output_options
@_exits
def login(ctx: click.Context, code: str | None, redirect_url: str | None) -> ExitCode:
    """Log in to GOG and store the tokens (mode 0600).

    Open the printed URL, log in, then pass the address the browser lands on:

      galaxy-archive login --redirect-url 'https://…/on_login_success?origin=client&code=…'
    """
    from galaxy_archive.upstream.auth import code_from_redirect  # local: see cli.main

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
    if app.is_json:
        print_json({"command": "login", "exit_code": 0, "user_id": tokens.user_id})
    return ExitCode.OK


@click.command()
@click.pass_context
@output_options
@_exits
def logout(ctx: click.Context) -> ExitCode:
    """Delete the stored tokens.

    Example: galaxy-archive logout
    """
    from galaxy_archive.upstream.auth import TokenStore  # local: see cli.main

    app = _app(ctx)
    removed = TokenStore(app.config.auth.token_file).delete()
    click.echo("logged out" if removed else "was not logged in", err=True)
    if app.is_json:
        print_json({"command": "logout", "exit_code": 0, "was_logged_in": removed})
    return ExitCode.OK
