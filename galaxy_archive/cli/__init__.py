"""The command line: a click group and one module per command (thin adapters)."""

from galaxy_archive.cli.main import main

__all__ = ["main"]
