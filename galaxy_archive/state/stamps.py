"""How the state DB writes a moment: UTC, to the second, ISO 8601 ("2026-12-07T23:32:47Z")."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
