"""The state an object is in, as the DB records it (`objects.state`, migration 0001)."""

from __future__ import annotations

import enum


class ObjectState(enum.StrEnum):
    """What the archive knows of one object's bytes. A StrEnum: it is stored and compared as
    the text the DB's CHECK constraint lists, so SQL and Python spell it the same way."""

    MISSING = "missing"  # planned, not stored yet
    PRESENT = "present"  # stored, not yet proven (a row written before its check finished)
    VERIFIED = "verified"  # stored and its bytes proven against the recorded hash
    CORRUPT = "corrupt"  # stored bytes failed a check (verify); repair fetches it again
    ABSENT_UPSTREAM = "absent_upstream"  # every endpoint answered 404


class BuildState(enum.StrEnum):
    """Whether a build has every object it needs verified (`builds.state`)."""

    PENDING = "pending"
    COMPLETE = "complete"
    INCOMPLETE = "incomplete"
