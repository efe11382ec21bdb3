"""The click group, its global options and what every command shares: `_exits` (result or
error -> exit code), `_app` and `output_options` (--json/-q/-v accepted after the command too).

No SQL, URLs or hashing here. Every GalaxyArchiveError becomes one line on stderr and its
exit code (errors.ExitCode); anything else is a bug: a scrubbed traceback and exit 2. A reader
closing stdout early (`status --json | head -1`) ends the command quietly with exit 1.

The commands live in a module each (cli/*_cmd.py), registered in cli/__init__.py. Each imports
its use case inside its function: a process loads only the stack of the command it runs (a
plain `verify` or `status` never loads requests, urllib3 or the sync phases), which keeps the
start-up of short and cron-run commands low.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from galaxy_archive import __version__
from galaxy_archive.app import App
from galaxy_archive.config import default_config_path, load
from galaxy_archive.errors import ConfigError, ExitCode, GalaxyArchiveError
from galaxy_archive.output import one_line, print_json, setup_logging
from galaxy_archive.redact import scrub
from galaxy_archive.state.db import database_fault

F = TypeVar("F", bound=Callable[..., Any])

_LOG_FILE = "galaxy_archive.log_file"  # ctx.meta key: -q/-v after the command set logging again


def _exits(func: F) -> F:
    """Turn the command's result or error into the process exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = _call(func, *args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        except GalaxyArchiveError as exc:
            message = one_line(scrub(str(exc)))  # it may quote a path from a hostile tree
            click.echo(f"galaxy-archive: {message}", err=True)
            code = exc.exit_code
            _json_error(code, message)
        except BrokenPipeError:
            _quiet_stdout()
            code = ExitCode.PROBLEMS
        except KeyboardInterrupt:
            click.echo("galaxy-archive: interrupted; the next run resumes", err=True)
            code = ExitCode.INTERRUPTED
            _json_error(code, "interrupted")
        except click.exceptions.Exit:
            raise
        except Exception:  # a bug: show it, but never a token or signed URL
            click.echo(scrub(traceback.format_exc()), err=True)
            code = ExitCode.USAGE
        sys.exit(int(code or 0))

    return wrapper  # type: ignore[return-value]


def _quiet_stdout() -> None:
    """The reader went away (`| head -1`): point stdout at /dev/null so the interpreter's own
    flush at exit does not print a second error, as the Python docs recommend."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real file descriptor (a test runner's stdout)
        pass


def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The command; SQLite giving up on archive.db (locked, damaged, not a database) becomes
    the StorageError naming it, wherever in the command it happened."""
    try:
        return func(*args, **kwargs)
    except sqlite3.Error as exc:
        ctx = click.get_current_context(silent=True)
        if ctx is None or not isinstance(ctx.obj, App):
            raise
        fault = database_fault(ctx.obj.config.database_path, exc)
        if fault is None:  # a query the code got wrong: a bug, shown as one
            raise
        raise fault from exc


def _json_error(code: ExitCode, message: str) -> None:
    """With --json, a command that fails still prints its one JSON document (for scripts)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and isinstance(ctx.obj, App) and ctx.obj.is_json:
        print_json({"command": ctx.info_name, "exit_code": int(code), "error": message})


def _app(ctx: click.Context) -> App:
    app = ctx.obj
    assert isinstance(app, App)
    return app


def output_options(func: F) -> F:
    """--json, -q and -v after the command too (`galaxy-archive status --json` is what people
    type): each means what the global option means. Every command uses this decorator, above
    `_exits`, so a failing `status --json` still prints its JSON document."""

    @functools.wraps(func)
    def wrapper(
        *args: Any, json_after: bool, quiet_after: bool, verbose_after: int, **kw: Any
    ) -> Any:
        ctx = click.get_current_context()
        app = _app(ctx)
        app.is_json = app.is_json or json_after
        if quiet_after or verbose_after:
            app.verbosity = -1 if quiet_after else max(app.verbosity, verbose_after)
            _set_up_logging(app.verbosity, ctx.find_root().meta.get(_LOG_FILE))
        return func(*args, **kw)

    wrapper = click.option("-v", "--verbose", "verbose_after", count=True, help=_HELP_V)(wrapper)
    wrapper = click.option("-q", "--quiet", "quiet_after", is_flag=True, help=_HELP_Q)(wrapper)
    wrapper = click.option("--json", "json_after", is_flag=True, help=_HELP_JSON)(wrapper)
    return wrapper  # type: ignore[return-value]


_HELP_V = "More log output (-vv: debug)."
_HELP_Q = "Errors only (failed or corrupt objects and a failing run's summary are still shown)."
_HELP_JSON = "One JSON document on stdout; logs on stderr."


def _set_up_logging(verbosity: int, log_file: Path | None) -> None:
    try:
        setup_logging(verbosity, log_file)
    except OSError as exc:  # its directory is a file, or not writable: one line, not a traceback
        click.echo(f"galaxy-archive: cannot open the log file {log_file}: {exc.strerror}", err=True)
        sys.exit(int(ExitCode.USAGE))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="galaxy-archive")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="archive.toml (default: $GALAXY_ARCHIVE_CONFIG, then "
    "$XDG_CONFIG_HOME/galaxy-archive/archive.toml).",
)
@click.option(
    "--root", type=click.Path(path_type=Path), help="Archive root (overrides archive.root)."
)
@click.option("-v", "--verbose", count=True, help=_HELP_V)
@click.option("-q", "--quiet", is_flag=True, help=_HELP_Q)
@click.option("--json", "is_json", is_flag=True, help=_HELP_JSON)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also append the log (INFO and above) to this file (overrides log.file).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    root: Path | None,
    verbose: int,
    quiet: bool,
    is_json: bool,
    log_file: Path | None,
) -> None:
    """galaxy-archive: keep an offline, verifiable mirror of the GOG Galaxy CDN.

    --json, -q and -v may also follow the command.

    Example: galaxy-archive --root /srv/gog sync 1207658930
    """
    try:
        config = load(config_path or default_config_path(os.environ), root_override=root)
        if config.root.exists() and not config.root.is_dir():
            raise ConfigError(f"the archive root {config.root} is not a directory")
    except ConfigError as exc:
        click.echo(f"galaxy-archive: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    verbosity = -1 if quiet else verbose
    ctx.meta[_LOG_FILE] = log_file or config.log.file
    _set_up_logging(verbosity, ctx.meta[_LOG_FILE])
    ctx.obj = App(config=config, is_json=is_json, verbosity=verbosity)


def main() -> None:
    cli(prog_name="galaxy-archive")
