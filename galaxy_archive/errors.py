"""Exit codes and the error tree. The only place exit codes live."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    PROBLEMS = 1  # finished, but some objects failed, are corrupt or could not be fetched
    USAGE = 2  # usage or configuration error
    NOT_LOGGED_IN = 3  # not logged in, or the login could not be refreshed
    LOCKED = 4  # another run holds the archive's lock
    INTERRUPTED = 130  # SIGINT / SIGTERM


class GalaxyArchiveError(Exception):
    """Base of every error the tool reports to the user; carries its exit code."""

    exit_code: ExitCode = ExitCode.PROBLEMS


class ConfigError(GalaxyArchiveError):
    exit_code = ExitCode.USAGE


class AuthError(GalaxyArchiveError):
    exit_code = ExitCode.NOT_LOGGED_IN


class LockHeldError(GalaxyArchiveError):
    exit_code = ExitCode.LOCKED


class Interrupted(GalaxyArchiveError):
    exit_code = ExitCode.INTERRUPTED


class UpstreamError(GalaxyArchiveError):
    """An HTTP exchange failed after retries. ``status`` is None for transport errors."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundUpstream(UpstreamError):
    """Every endpoint answered 404 for the object."""


class ManifestError(GalaxyArchiveError):
    """A manifest or API answer is malformed or hostile."""


class UnsafeReference(ManifestError):
    """A value of the right type whose form is unsafe or malformed as a reference: an id that
    is not an MD5 or a number, a path that leaves its directory, a name that is not one safe
    path component. Inside a manifest's list it costs that entry, not the manifest (README,
    "Bad input"); anywhere else it rejects what holds it, like any ManifestError."""


class IntegrityError(GalaxyArchiveError):
    """Bytes do not match their recorded size or hash."""


class DigestMismatch(IntegrityError):
    """A complete body of the right size whose MD5 is not the expected one (a meta file's
    bytes may still be kept, flagged: see meta_flags)."""


class StorageError(GalaxyArchiveError):
    """The archive tree cannot be written as required."""


class PathRefused(StorageError):
    """One object's place in the tree cannot be written (it would leave the tree, pass a
    symlink or a file, or its directory cannot be made): that object fails, the run goes on."""
