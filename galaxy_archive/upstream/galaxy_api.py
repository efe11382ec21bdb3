"""Content-system endpoints (protocol.md §2, §5, §7-9): URLs from the configured bases.

Returns raw answers and decoded JSON; interpreting them is `manifests`' and `links`' job.
No host name appears here: every URL starts from an `[endpoints]` value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from galaxy_archive.config import Endpoints
from galaxy_archive.errors import AuthError, ManifestError, UpstreamError
from galaxy_archive.models.layout import galaxy_path
from galaxy_archive.models.manifests import is_blank
from galaxy_archive.upstream.auth import Authenticator
from galaxy_archive.upstream.http_client import HttpClient, Reply, bearer

JSON_ATTEMPTS = 4  # a cut-off or garbled API answer is asked again this often


class LinkRefused(UpstreamError):
    """GOG refused a secure link (HTTP 403), e.g. for a DLC the account does not own.

    Only that product's objects fail (exit 1); asking again in the same run changes nothing.
    """


@dataclass(frozen=True)
class LinkRequest:
    """Which secure or open link: one is fetched per distinct request and reused."""

    product_id: str | None  # None: open_link (unsigned, e.g. dependencies)
    generation: int = 2
    path: str = "/"
    root: str | None = None  # "/patches/store" for patch chunks
    link_type: str | None = None  # "depot" for generation-1 blobs


class GalaxyApi:
    def __init__(self, http: HttpClient, endpoints: Endpoints, auth: Authenticator) -> None:
        self.http = http
        self.endpoints = endpoints
        self.auth = auth

    # --- URLs on the CDN (unsigned) --------------------------------------------------------

    def cdn_url(self, area: str, md5: str) -> str:
        """`area` is e.g. 'v2/meta', 'v2/offline', 'v2/patches/meta'."""
        return f"{self.endpoints.cdn}/content-system/{area}/{galaxy_path(md5)}"

    def v1_manifest_url(
        self, product_id: str, os_name: str, legacy_build_id: int, name: str
    ) -> str:
        return (
            f"{self.endpoints.cdn}/content-system/v1/manifests/{product_id}/{os_name}/"
            f"{legacy_build_id}/{name}"
        )

    # --- API calls -------------------------------------------------------------------------

    def builds_list(
        self, product_id: str, os_name: str, generation: int, password: str | None = None
    ) -> Reply:
        """The raw builds list; the bearer token is optional here but sent (protocol.md 1.6).

        A 200 whose body is not JSON (cut off in transit) is asked again before it is
        returned, so the caller can tell a broken transfer from a broken answer. A blank body
        is an answer ("no builds for this OS", protocol.md 2.1), not asked again.
        """
        query: dict[str, str] = {"generation": str(generation)}
        if password:
            query["password"] = password
        url = (
            f"{self.endpoints.content_system}/products/{product_id}/os/{os_name}/builds?"
            f"{urlencode(query)}"
        )
        what = f"builds list of {product_id}/{os_name}/gen{generation}"
        return self._until_json(lambda: self._authorized_get(url, what), accept_blank=True)

    def link(self, request: LinkRequest) -> Any:
        """A secure_link (signed, needs the token) or open_link answer, decoded."""
        query: dict[str, str] = {"_version": "2", "generation": str(request.generation)}
        if request.link_type:
            query["type"] = request.link_type
        query["path"] = request.path
        if request.root:
            query["root"] = request.root
        if request.product_id is None:
            url = f"{self.endpoints.content_system}/open_link?{urlencode(query)}"
            reply = self._until_json(lambda: self.http.get(url, what="open link"))
            return _json_answer(reply, "open link")
        what = f"secure link of product {request.product_id}"
        url = (
            f"{self.endpoints.content_system}/products/{request.product_id}/secure_link?"
            f"{urlencode(query)}"
        )
        reply = self._until_json(lambda: self._authorized_get(url, what))
        if reply.status == 401:  # still, after the one refresh: the login is not accepted
            raise AuthError(f"{what}: refused (HTTP 401); run `galaxy-archive login` again")
        if reply.status == 403:
            raise LinkRefused(
                f"{what}: refused (HTTP 403); is the product owned by this account?", 403
            )
        return _json_answer(reply, what)

    def patches_index(self, product_id: str, from_build: str, to_build: str) -> Reply:
        """The raw patches index answer (plain JSON, no token needed; protocol.md 7.1)."""
        query = urlencode({"_version": "4", "from_build_id": from_build, "to_build_id": to_build})
        url = f"{self.endpoints.content_system}/products/{product_id}/patches?{query}"
        what = f"patch index {product_id} {from_build}->{to_build}"
        return self._until_json(lambda: self.http.get(url, what=what))

    def dependencies_repository(self) -> Reply:
        """The raw `/dependencies/repository` answer (no token needed; protocol.md §8)."""
        url = f"{self.endpoints.content_system}/dependencies/repository?generation=2"
        return self._until_json(lambda: self.http.get(url, what="dependencies repository"))

    def owned_products(self) -> list[str]:
        """Every product id the account owns, DLC included (protocol.md §9)."""
        url = f"{self.endpoints.embed}/user/data/games"
        reply = self._until_json(lambda: self._authorized_get(url, "owned games"))
        doc = _json_answer(reply, "owned games")
        owned = doc.get("owned") if isinstance(doc, dict) else None
        if not isinstance(owned, list):
            raise ManifestError("owned games: no 'owned' list in the answer")
        return [str(p) for p in owned if isinstance(p, int | str) and str(p).isdigit()]

    def _until_json(self, get: Callable[[], Reply], *, accept_blank: bool = False) -> Reply:
        """Repeat a GET whose body broke off or is not JSON (a few times, then give up).

        :param accept_blank: an empty or whitespace-only body is a final answer too.
        """
        for attempt in range(JSON_ATTEMPTS):
            try:
                reply = get()
            except UpstreamError:
                if attempt + 1 == JSON_ATTEMPTS:
                    raise
                continue
            if reply.status != 200 or attempt + 1 == JSON_ATTEMPTS:
                return reply
            if _is_json(reply.body) or (accept_blank and is_blank(reply.body)):
                return reply
        raise AssertionError("unreachable")

    def _authorized_get(self, url: str, what: str) -> Reply:
        """GET with the bearer token; on a 401 refresh the token once and try again."""
        token = self.auth.access_token()
        reply = self.http.get(url, what=what, headers=bearer(token))
        if reply.status == 401:
            token = self.auth.refresh_after_rejection(token)
            reply = self.http.get(url, what=what, headers=bearer(token))
        return reply


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _json_answer(reply: Reply, what: str) -> Any:
    if reply.status != 200:
        raise UpstreamError(f"{what}: HTTP {reply.status}", reply.status)
    try:
        return json.loads(reply.body)
    except ValueError:
        raise ManifestError(f"{what}: the answer is not JSON") from None


LinkFetcher = Callable[[LinkRequest], Any]
