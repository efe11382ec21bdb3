"""Terminal output: logging for TTY vs cron, a progress line, JSON documents on stdout."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from galaxy_archive.redact import scrub


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


# The use cases log their summary at the end for the log file; on the terminal the command
# prints it (stdout): shown once, not twice.
_RUN_END_PREFIXES = ("sync ended (exit", "verify ended (exit", "gc ended (exit")


class _NotTheSummary(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_RUN_END_PREFIXES)


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
    stderr_handler.addFilter(_NotTheSummary())
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
    """The progress display on stderr when it is a terminal (tqdm); silent otherwise (cron).

    On a terminal: a bar of the bytes (or, when no byte total is known, the objects) done of
    the total planned so far, with the objects done of those planned, the rate and the ETA.
    Log lines are written above the bar, never through it (tqdm's logging redirect, which
    keeps our handler's filters; its level is kept here). Thread-safe: workers call add_*.
    """

    def __init__(self, *, is_enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._is_enabled = self._stream.isatty() if is_enabled is None else is_enabled
        self._lock = threading.Lock()
        self._objects = 0
        self._total_objects = 0
        self._total_bytes = 0
        self._bar: Any = None
        self._redirect: Any = None

    def set_total(self, objects: int, size: int = 0) -> None:
        """The whole run's plan, known at its start (verify)."""
        with self._lock:
            self._total_objects, self._total_bytes = objects, size
        self._refresh(bytes_done=0)

    def add_planned(self, objects: int, size: int, done: int = 0) -> None:
        """More work planned (sync plans as it goes: each product, phase and build), `done`
        of the objects archived already: the count ends where the summary's counts add up."""
        with self._lock:
            self._total_objects += objects
            self._total_bytes += size
            self._objects += done
        self._refresh(bytes_done=0)

    def add_bytes(self, count: int) -> None:
        self._refresh(bytes_done=count)

    def add_object(self) -> None:
        with self._lock:
            self._objects += 1
        self._refresh(bytes_done=0)

    def _refresh(self, *, bytes_done: int) -> None:
        if not self._is_enabled:
            return
        with self._lock:
            bar = self._bar or self._open()
            by_bytes = self._total_bytes > 0
            total = self._total_bytes if by_bytes else self._total_objects
            bar.total = max(total, bar.n) or None  # a manifest of unknown size: past the plan
            bar.unit, bar.unit_scale = ("B", True) if by_bytes else (" objects", False)
            bar.set_postfix_str(f"{self._objects}/{self._total_objects} objects", refresh=False)
            if not by_bytes:
                bar.n, bytes_done = self._objects, 0
            bar.update(bytes_done)  # redraws at most every mininterval; close() draws the last

    def _open(self) -> Any:
        """The bar and the logging redirect, made on first use (a run with nothing to show
        leaves the terminal alone); tqdm imported here, so cron never loads it."""
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        # shutil's size, not tqdm's own: a terminal that reports 0x0 (script(1), some serial
        # consoles) would make tqdm hide the bar as if it were off the screen.
        size = shutil.get_terminal_size()
        self._bar = tqdm(
            total=None,
            file=self._stream,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            ncols=size.columns,
            nrows=size.lines,
            mininterval=0.2,
        )
        levels = [h.level for h in logging.getLogger().handlers if _is_console(h)]
        self._redirect = logging_redirect_tqdm()
        self._redirect.__enter__()
        for handler in logging.getLogger().handlers:
            if type(handler).__name__ == "_TqdmLoggingHandler" and levels:
                handler.setLevel(levels[0])  # the redirect drops it: -q must stay errors only
        return self._bar

    def close(self) -> None:
        """Draw the last state and give the terminal back (the summary is printed after)."""
        with self._lock:
            if self._bar is not None:
                self._bar.refresh()
                self._bar.close()
                self._redirect.__exit__(None, None, None)
                self._bar = None


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and handler.stream in (
        sys.stdout,
        sys.stderr,
    )
