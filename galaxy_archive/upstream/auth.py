"""GOG OAuth (protocol.md §1): login URL, code exchange, refresh, the token file.

Tokens are secrets: they live only in the token file (mode 0600, written atomically) and in
Authorization headers. Nothing here logs them or puts them in an exception message.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from galaxy_archive.config import AuthSection
from galaxy_archive.errors import AuthError, UpstreamError
from galaxy_archive.upstream.http_client import HttpClient

REFRESH_MARGIN_S = 300.0  # refresh five minutes before expiry
NOT_LOGGED_IN = "not logged in: run `galaxy-archive login` first"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: float
    user_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "user_id": self.user_id,
        }


def _tokens_from_answer(doc: Any, now: float) -> Tokens:
    if not isinstance(doc, dict):
        raise AuthError("the token endpoint answered something that is not a token set")
    access, refresh = doc.get("access_token"), doc.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise AuthError("the token endpoint answered without access_token/refresh_token")
    expires_in = doc.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
    return Tokens(access, refresh, now + lifetime, str(doc.get("user_id") or ""))


class TokenStore:
    """The token file: JSON, mode 0600, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Tokens | None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return Tokens(
                str(doc["access_token"]),
                str(doc["refresh_token"]),
                float(doc["expires_at"]),
                str(doc.get("user_id", "")),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise AuthError(
                f"token file {self.path} is damaged: run `galaxy-archive login`"
            ) from None

    def save(self, tokens: Tokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(tokens.to_json(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o600)
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def delete(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False


def code_from_redirect(url: str) -> str:
    """The `code` parameter of the URL the browser lands on after login."""
    codes = parse_qs(urlsplit(url.strip()).query).get("code")
    if not codes or not codes[0]:
        raise AuthError("that URL has no `code` parameter; paste the whole address bar")
    return codes[0]


class Authenticator:
    """Hands out a valid access token, refreshing it before expiry and once on demand."""

    def __init__(
        self,
        http: HttpClient,
        *,
        auth_url: str,
        client: AuthSection,
        store: TokenStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._auth_url = auth_url
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: Tokens | None = None
        self._client = client
        self.redirect_uri = client.redirect_uri

    def login_url(self) -> str:
        query = urlencode(
            {
                "client_id": self._client.client_id,
                "redirect_uri": self.redirect_uri,
                "response_type": "code",
                "layout": "client2",
            }
        )
        return f"{self._auth_url}/auth?{query}"

    def exchange_code(self, code: str) -> Tokens:
        tokens = self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri},
            "login code",
        )
        self._store.save(tokens)
        with self._lock:
            self._tokens = tokens
        return tokens

    def access_token(self) -> str:
        """A token valid for a while yet; raises AuthError when not logged in."""
        with self._lock:
            tokens = self._current()
            if tokens.expires_at - REFRESH_MARGIN_S <= self._clock():
                tokens = self._refresh(tokens)
            return tokens.access_token

    def refresh_after_rejection(self, rejected_token: str) -> str:
        """Called once after a 401: refresh unless another thread already did."""
        with self._lock:
            tokens = self._current()
            if tokens.access_token == rejected_token:
                tokens = self._refresh(tokens)
            return tokens.access_token

    def user_id(self) -> str:
        with self._lock:
            return self._current().user_id

    def _current(self) -> Tokens:
        if self._tokens is None:
            self._tokens = self._store.load()
        if self._tokens is None:
            raise AuthError(NOT_LOGGED_IN)
        return self._tokens

    def _refresh(self, tokens: Tokens) -> Tokens:
        # The answer is a whole new token set; the refresh token may rotate (protocol.md 1.4).
        fresh = self._token_request(
            {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}, "token refresh"
        )
        self._store.save(fresh)
        self._tokens = fresh
        return fresh

    def _token_request(self, params: dict[str, str], what: str) -> Tokens:
        query = urlencode(
            {
                "client_id": self._client.client_id,
                "client_secret": self._client.client_secret,
                **params,
            }
        )
        reply = self._http.get(f"{self._auth_url}/token?{query}", what=what)
        if 400 <= reply.status < 500:
            raise AuthError(
                f"{what} refused by the auth server (HTTP {reply.status}): "
                "run `galaxy-archive login` again"
            )
        if reply.status != 200:
            raise UpstreamError(f"{what}: auth server answered HTTP {reply.status}", reply.status)
        try:
            doc = json.loads(reply.body)
        except ValueError:
            raise AuthError(f"{what}: the auth server's answer is not JSON") from None
        return _tokens_from_answer(doc, self._clock())
