"""Terminal output: logging for TTY vs cron, a progress line, JSON documents on stdout."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from galaxy_archive.redact import scrub
from galaxy_archive.report import human_bytes


def escape_name(name: str) -> str:
    """A file name as one line of printable text, reversibly.

    A backslash, a control or other non-printable character (newline, escape, a bidi override)
    and an undecodable byte (a lone surrogate from os.fsdecode) become backslash escapes of
    its bytes, as in a Python bytes literal (`\\n`, `\\xff`, `\\\\`):
    `codecs.escape_decode(shown.encode())[0]` gives the name's bytes back.
    """
    if name.isprintable() and "\\" not in name:
        return name
    return "".join(_escaped(char, is_name=True) for char in name)


def one_line(text: str) -> str:
    """Free text (a log message) as one printable line: like escape_name, but a backslash is
    left as it is (messages quote manifest paths such as `bin\\game.exe`); a name in it that
    must read back exactly is escaped with escape_name first."""
    if text.isprintable():
        return text
    return "".join(_escaped(char, is_name=False) for char in text)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str, *, is_name: bool) -> str:
    if char == "\\":
        return "\\\\" if is_name else char
    if char.isprintable():
        return char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the undecodable byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    raw = char.encode("utf-8", "surrogatepass")  # any other lone surrogate too
    return "".join(f"\\x{byte:02x}" for byte in raw)


class _ScrubFilter(logging.Filter):
    """Last line of defence: urllib3 logs request paths (which carry CDN tokens) on retries;
    and a message is one line, whatever names it quotes (a newline in a file name cannot
    forge a log line, an undecodable byte cannot break the log file's encoding)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = one_line(scrub(record.getMessage()))
        record.args = None
        return True


def setup_logging(verbosity: int, log_file: Path | None = None) -> None:
    """-q: errors only; default: warnings (INFO too on a TTY); -v: INFO; -vv: DEBUG."""
    if verbosity < 0:
        level = logging.ERROR
    elif verbosity >= 2:
        level = logging.DEBUG
    elif verbosity == 1 or sys.stderr.isatty():
        level = logging.INFO
    else:
        level = logging.WARNING
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level)
    stderr_handler = logging.StreamHandler(sys.stderr)
    # The root level drops to INFO for a log file; stderr keeps the level asked for (-q: errors
    # only, so cron mails nothing on a good night).
    stderr_handler.setLevel(level)
    handlers: list[logging.Handler] = [stderr_handler]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        # backslashreplace: whatever a message still holds, the line is written, not lost.
        file_handler = logging.FileHandler(log_file, encoding="utf-8", errors="backslashreplace")
        file_handler.setLevel(min(level, logging.INFO))
        handlers.append(file_handler)
        root.setLevel(min(level, logging.INFO))
    for handler in handlers:
        handler.addFilter(_ScrubFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    # urllib3 logs every request line at DEBUG, tokens included; keep it to warnings.
    logging.getLogger("urllib3").setLevel(max(level, logging.WARNING))


def print_json(document: dict[str, Any], stream: TextIO | None = None) -> None:
    """The document as JSON that strict parsers accept: a string holding a lone surrogate (an
    undecodable byte of a file name, or a hostile manifest's escape) is written escaped."""
    out = stream or sys.stdout
    json.dump(_valid_unicode(document), out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def _valid_unicode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return escape_name(value)
        return value
    if isinstance(value, dict):
        return {key: _valid_unicode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_valid_unicode(item) for item in value]
    return value


class Progress:
    """A one-line progress display on stderr when it is a terminal; silent otherwise."""

    def __init__(self, *, is_enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._is_enabled = self._stream.isatty() if is_enabled is None else is_enabled
        self._lock = threading.Lock()
        self._objects = 0
        self._bytes = 0
        self._last_draw = 0.0
        self._started = time.monotonic()
        self._total_objects: int | None = None

    def set_total(self, objects: int) -> None:
        """Known number of objects: the line becomes a bar with a percentage."""
        self._total_objects = objects

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes += count
        self._draw()

    def add_object(self) -> None:
        with self._lock:
            self._objects += 1
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self._is_enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        rate = self._bytes / max(now - self._started, 1e-6)
        done = f"{self._objects} objects"
        if self._total_objects:
            share = min(self._objects / self._total_objects, 1.0)
            bar = "#" * int(share * 20)
            done = f"[{bar:<20}] {share:4.0%} {self._objects}/{self._total_objects} objects"
        self._stream.write(f"\r{done}, {human_bytes(self._bytes)} ({human_bytes(rate)}/s)   ")
        self._stream.flush()

    def close(self) -> None:
        if self._is_enabled and (self._objects or self._bytes):
            self._draw(force=True)
            self._stream.write("\n")
