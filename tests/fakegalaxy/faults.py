"""Injectable HTTP faults for the fake Galaxy server.

A :class:`FaultPlan` decides, per request, whether to misbehave and how. Three sources, checked
in this order: deterministic rules added with :meth:`FaultPlan.once` / :meth:`FaultPlan.always`,
then a seeded random draw (``rate`` among ``kinds``, for paths containing ``paths``).

Kinds:

* status kinds, answered instead of handling the request: ``"500"``, ``"503"``, ``"429"``
  (with ``Retry-After: 1``), ``"401"`` (GOG's "OAuth2 authentication required", whatever the
  token);
* body kinds, applied to a 200/206 GET with at least 2 body bytes: ``"reset"`` (headers and
  part of the body, then a TCP RST), ``"truncate"`` (full Content-Length, part of the body, then
  a clean close), ``"short"`` (a consistent response whose Content-Length is the cut length),
  ``"corrupt"`` (one byte flipped);
* range kinds, applied to a 206 answer: ``"range_as_200"`` (ignore Range, send all with 200),
  ``"short_206"`` (a consistent 206 for the first half of the range), ``"wrong_content_range"``
  (a 206 for a range shifted from the one asked for, with its honest Content-Range).

A fault picked for a request it cannot apply to (a body kind on a 404, a range kind without
Range) is released and not counted; a one-shot rule then waits for the next matching request.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

STATUS_KINDS = frozenset({"500", "503", "429", "401"})
BODY_KINDS = frozenset({"reset", "truncate", "short", "corrupt"})
RANGE_KINDS = frozenset({"range_as_200", "short_206", "wrong_content_range"})
ALL_KINDS = STATUS_KINDS | BODY_KINDS | RANGE_KINDS


def _check_kind(kind: str) -> str:
    if kind not in ALL_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(ALL_KINDS)}")
    return kind


@dataclass
class _Rule:
    substring: str
    kind: str
    is_once: bool
    is_spent: bool = False
    is_in_flight: bool = False


@dataclass(frozen=True)
class Fault:
    """A fault picked for one request; ``rule`` is None for a random one."""

    kind: str
    path: str
    rule: _Rule | None = None


@dataclass(frozen=True)
class InjectedFault:
    """A record of a fault that was actually applied."""

    path: str
    kind: str


class FaultPlan:
    """Thread-safe fault schedule with a seeded RNG.

    Configure with attributes (``rate``, ``kinds``, ``paths``, ``max_faults``) or
    :meth:`configure`. ``max_faults`` caps the random faults only; rules always fire.
    """

    def __init__(self, seed: int = 0) -> None:
        self.rate: float = 0.0
        self.kinds: list[str] = ["503"]
        self.paths: str | None = None
        self.max_faults: int | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._random_count = 0
        self.injected: list[InjectedFault] = []

    def configure(
        self,
        *,
        rate: float,
        kinds: list[str] | None = None,
        paths: str | None = None,
        max_faults: int | None = None,
        seed: int | None = None,
    ) -> FaultPlan:
        """Set the random fault schedule in one call (validates the kinds); returns self."""
        with self._lock:
            self.rate = rate
            if kinds is not None:
                self.kinds = [_check_kind(k) for k in kinds]
            self.paths = paths
            self.max_faults = max_faults
            if seed is not None:
                self._rng = random.Random(seed)
        return self

    def once(self, path_substring: str, kind: str) -> None:
        """Inject ``kind`` into the next request whose path contains ``path_substring``."""
        with self._lock:
            self._rules.append(_Rule(path_substring, _check_kind(kind), is_once=True))

    def always(self, path_substring: str, kind: str) -> None:
        """Inject ``kind`` into every request whose path contains ``path_substring``."""
        with self._lock:
            self._rules.append(_Rule(path_substring, _check_kind(kind), is_once=False))

    def clear(self) -> None:
        """Drop every rule and switch random faults off (the count is kept)."""
        with self._lock:
            self._rules.clear()
            self.rate = 0.0

    @property
    def count(self) -> int:
        """How many faults were applied so far."""
        with self._lock:
            return len(self.injected)

    def pick(self, path: str) -> Fault | None:
        """Choose a fault for a request to ``path`` (the full request path, without query)."""
        with self._lock:
            for rule in self._rules:
                if rule.is_spent or rule.is_in_flight or rule.substring not in path:
                    continue
                if rule.is_once:
                    rule.is_in_flight = True
                return Fault(rule.kind, path, rule)
            if self.rate <= 0 or not self.kinds:
                return None
            if self.paths is not None and self.paths not in path:
                return None
            if self.max_faults is not None and self._random_count >= self.max_faults:
                return None
            if self._rng.random() >= self.rate:
                return None
            return Fault(_check_kind(self._rng.choice(self.kinds)), path)

    def commit(self, fault: Fault) -> None:
        """Record that ``fault`` was applied."""
        with self._lock:
            self.injected.append(InjectedFault(fault.path, fault.kind))
            if fault.rule is None:
                self._random_count += 1
            elif fault.rule.is_once:
                fault.rule.is_spent = True
                fault.rule.is_in_flight = False

    def release(self, fault: Fault) -> None:
        """``fault`` could not be applied to its request: let a one-shot rule wait for another."""
        with self._lock:
            if fault.rule is not None and fault.rule.is_once:
                fault.rule.is_in_flight = False
