"""Opening the state DB of an archive that must exist already (the read-only commands)."""

from __future__ import annotations

from galaxy_archive.app import App
from galaxy_archive.errors import ConfigError
from galaxy_archive.state.db import StateDB


def open_existing_db(app: App) -> StateDB:
    """The archive's DB; a ConfigError (exit 2) when the root holds no archive, rather than an
    empty DB made where the user mistyped a path."""
    if not app.config.database_path.exists():
        raise ConfigError(f"no archive at {app.config.root} (no {app.config.database_path.name})")
    return app.open_db()
