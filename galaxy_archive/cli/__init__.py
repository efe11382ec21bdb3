"""The command line: a click group (cli.main) and one module per command, each a thin
adapter (parse options, build the App, call one use case, print, return the exit code).

Commands are registered here, one line each, not in main: they import main's `_exits`,
`_app` and `output_options`, and an import back from main would be an import cycle.
"""

from galaxy_archive.cli.diff_cmd import diff
from galaxy_archive.cli.export_cmd import export
from galaxy_archive.cli.gc_cmd import gc
from galaxy_archive.cli.import_cmd import import_
from galaxy_archive.cli.login_cmd import login, logout
from galaxy_archive.cli.main import cli, main
from galaxy_archive.cli.restore_cmd import restore
from galaxy_archive.cli.serve_cmd import serve
from galaxy_archive.cli.show_cmd import show
from galaxy_archive.cli.status_cmd import status
from galaxy_archive.cli.sync_cmd import sync
from galaxy_archive.cli.verify_cmd import verify

cli.add_command(login)
cli.add_command(logout)
cli.add_command(sync)
cli.add_command(verify)
cli.add_command(status)
cli.add_command(show)
cli.add_command(restore)
cli.add_command(serve)
cli.add_command(diff)
cli.add_command(gc)
cli.add_command(export)
cli.add_command(import_)

__all__ = ["main"]
