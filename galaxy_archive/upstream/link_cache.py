"""One secure link per (product, root, ...) per run, shared by every worker.

GOG blocks clients that ask for a link per chunk (protocol.md 5.5, LGOG 983592d), so a link is
fetched once, reused until shortly before it expires, and renewed early on a CDN 401/403. A
link GOG refuses (a product not owned, or a login it rejects) is not asked again in the run:
the thousands of chunks of an unowned DLC cost one request, not one each.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from galaxy_archive.errors import AuthError
from galaxy_archive.models.links import Link, parse_link
from galaxy_archive.upstream.galaxy_api import LinkRefused, LinkRequest


class LinkCache:
    def __init__(
        self,
        fetch: Callable[[LinkRequest], Any],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._links: dict[LinkRequest, Link] = {}
        self._refusals: dict[LinkRequest, LinkRefused | AuthError] = {}
        self._locks: dict[LinkRequest, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetch_count = 0

    def get(self, request: LinkRequest) -> Link:
        """A link valid for a while yet, fetching or renewing it when needed.

        Raises LinkRefused (or AuthError) again, without asking, once GOG refused it.
        """
        with self._guard:
            lock = self._locks.setdefault(request, threading.Lock())
        with lock:  # one fetch per request key, even with many workers asking at once
            refusal = self._refusals.get(request)
            if refusal is not None:
                raise copy.copy(refusal)  # a copy: each thread gets its own traceback
            link = self._links.get(request)
            if link is None or self._clock() >= link.renew_at():
                try:
                    doc = self._fetch(request)
                except (LinkRefused, AuthError) as exc:
                    self._refusals[request] = exc
                    raise
                what = f"link of {request.product_id or 'open_link'}"
                link = parse_link(doc, what, generation=request.generation, now=self._clock())
                self._links[request] = link
                self.fetch_count += 1
            return link

    def invalidate(self, request: LinkRequest, stale: Link) -> None:
        """The CDN rejected `stale` (401/403): the next get() fetches a new link.

        Only that exact link is dropped, so a worker that reports late does not throw away
        a link another worker has just renewed.
        """
        with self._guard:
            if self._links.get(request) is stale:
                del self._links[request]
