"""The command line: a click group and one module per command (thin adapters).

Commands in modules of their own are registered here, not in main: they use main's `_exits`
and `_app`, and an import back from main would be an import cycle.
"""

from galaxy_archive.cli.diff_cmd import diff
from galaxy_archive.cli.main import cli, main
from galaxy_archive.cli.restore_cmd import restore
from galaxy_archive.cli.serve_cmd import serve
from galaxy_archive.cli.show_cmd import show

cli.add_command(diff)
cli.add_command(show)
cli.add_command(restore)
cli.add_command(serve)

__all__ = ["main"]
