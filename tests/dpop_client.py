"""A DPoP client for httpx (RFC 9449), on the joserfc proofs of :mod:`tests.dpopkit`: copy both into an app.

    key = DPoPKey("ES256")                      # or "EdDSA"; keep it for as long as its tokens live
    tokens = httpx.post(f"{issuer}/token", data=..., auth=DPoPAuth(key)).json()   # token_type: DPoP
    api = httpx.Client(auth=DPoPAuth(key, tokens["access_token"]))
    api.get("https://api.example.com/orders")   # Authorization: DPoP <token>, DPoP: <proof>

Each request gets its own proof: ``htm`` its method, ``htu`` its URL without query and fragment
(§4.2), a fresh ``jti``, ``iat`` now, and ``ath`` (the token's SHA-256) when a token goes with
it. A server that demands a nonce answers ``use_dpop_nonce`` with a ``DPoP-Nonce`` header (the
token endpoint in its JSON body, §8; a resource server in ``WWW-Authenticate``, §9):
:class:`DPoPAuth` retries the request once with that nonce, and remembers the latest nonce per
origin for the next requests.
"""

from __future__ import annotations

from collections.abc import Generator
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.dpopkit import DPoPKey

__all__ = ["DPoPAuth", "DPoPKey", "htu_of"]


def htu_of(url: str) -> str:
    """``htu``: the URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class DPoPAuth(httpx.Auth):
    """httpx auth: a DPoP proof on every request, and ``Authorization: DPoP`` when a token is given.

    Without a token it is for the token endpoint: the proof alone asks for a bound token.
    """

    requires_response_body = True  # the token endpoint says use_dpop_nonce in its JSON body

    def __init__(self, key: DPoPKey, access_token: str | None = None, *, nonces: dict[str, str] | None = None) -> None:
        self.key = key
        self.access_token = access_token
        self.nonces: dict[str, str] = {} if nonces is None else nonces  # the latest DPoP-Nonce per origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        response = yield self._signed(request, origin)
        fresh = response.headers.get("dpop-nonce")
        if fresh:
            self.nonces[origin] = fresh
        if fresh and response.status_code in (400, 401) and _asks_for_nonce(response):
            yield self._signed(request, origin)  # RFC 9449 §8.2, §9: once more, with the nonce just handed out

    def _signed(self, request: httpx.Request, origin: str) -> httpx.Request:
        request.headers["DPoP"] = self.key.proof(
            request.method, htu_of(str(request.url)), access_token=self.access_token, nonce=self.nonces.get(origin)
        )
        if self.access_token is not None:
            request.headers["Authorization"] = f"DPoP {self.access_token}"  # RFC 9449 §7.1
        return request


def _asks_for_nonce(response: httpx.Response) -> bool:
    if 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", ""):
        return True  # a resource server or userinfo (RFC 9449 §9)
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"  # the token endpoint (§8)
