"""A resource server's copy of the IdP's JWKS.

* Honours ``Cache-Control: max-age`` (clamped to ``[min_max_age, max_max_age]``) and
  revalidates with ``If-None-Match``.
* Meeting an unknown ``kid`` triggers a refetch, at most once per ``refetch_interval``
  (a flood of tokens with made-up kids costs one request per interval, not one each).
* If the IdP cannot be reached the last good key set keeps serving, but only for
  ``max_stale`` seconds past its expiry: a key the IdP pulled cannot live on forever.
* Each key is pinned to its ``alg`` (RFC 8725 §3.1): keys without a supported ``alg``,
  with a ``kty``/curve that does not fit it, RSA under 2048 bits, or ``use`` other than
  ``sig`` are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.jwk import ECKey, OKPKey, RSAKey

from idp.crypto import b64url_decode

log = logging.getLogger("idp.resource")

AnyKey = ECKey | RSAKey | OKPKey
SUPPORTED = {"ES256": ("EC", "P-256"), "RS256": ("RSA", None), "EdDSA": ("OKP", "Ed25519")}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def parse_max_age(cache_control: str | None) -> int | None:
    """max-age in seconds; 0 for no-store/no-cache; None when the header says nothing."""
    if not cache_control:
        return None
    if re.search(r"no-store|no-cache", cache_control, re.IGNORECASE):
        return 0
    m = _MAX_AGE.search(cache_control)
    return int(m.group(1)) if m else None


def import_jwk(jwk: dict[str, Any]) -> tuple[str, str, AnyKey] | None:
    """(kid, pinned alg, key) for a usable public signing key, else None."""
    kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
    if not isinstance(kid, str) or not kid or alg not in SUPPORTED or jwk.get("use", "sig") != "sig":
        return None
    want_kty, want_crv = SUPPORTED[alg]
    if kty != want_kty or (want_crv is not None and jwk.get("crv") != want_crv):
        return None
    if any(p in jwk for p in ("d", "p", "q", "dp", "dq", "qi")):
        return None  # a private key in a JWKS is a publishing mistake; do not use it
    try:
        if kty == "RSA" and len(b64url_decode(jwk["n"]).lstrip(b"\0")) * 8 < 2048:
            return None
        cls: Any = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[kty]
        key = cls.import_key(jwk)
    except Exception:
        return None
    return kid, alg, key


class JwksCache:
    def __init__(
        self,
        jwks_uri: str,
        http: httpx.AsyncClient,
        *,
        refetch_interval: float = 10.0,
        default_max_age: float = 300.0,
        min_max_age: float = 5.0,
        max_max_age: float = 86_400.0,
        max_stale: float = 3600.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._http = http
        self.refetch_interval = refetch_interval
        self._default_max_age = default_max_age
        self._min_max_age = min_max_age
        self._max_max_age = max_max_age
        self._max_stale = max_stale
        self._now = now
        self._keys: dict[str, tuple[str, AnyKey]] = {}
        self._etag: str | None = None
        self._expires = -float("inf")
        self._last_fetch = -float("inf")
        self._lock = asyncio.Lock()
        self.fetches = 0

    def cached(self, kid: str) -> tuple[str, AnyKey] | None:
        """The key for ``kid`` from memory (no I/O); None when unknown or the set is too stale to trust."""
        if self._now() > self._expires + self._max_stale:
            return None
        return self._keys.get(kid)

    def kids(self) -> list[str]:
        return list(self._keys)

    def evict(self, kid: str) -> None:
        """Forget a key now (the deny-list announced it compromised)."""
        self._keys.pop(kid, None)

    async def get(self, kid: str, *, force: bool = False) -> tuple[str, AnyKey] | None:
        """The key for ``kid``; refetches when the set has expired, or (rate-limited) when ``kid`` is unknown.

        ``force`` skips the rate limit (for SETs from the trusted deny-list stream, not for tokens)."""
        may_fetch = force or self._now() - self._last_fetch >= self.refetch_interval
        if self._now() >= self._expires and may_fetch:
            await self.refresh()
            may_fetch = force
        found = self.cached(kid)
        if found is None and may_fetch:
            await self.refresh(unconditional=True)
            found = self.cached(kid)
        return found

    async def refresh(self, *, unconditional: bool = False) -> None:
        generation = self.fetches
        async with self._lock:
            if self.fetches != generation:  # another task fetched while we waited (single flight)
                return
            self._last_fetch = self._now()
            headers = {"accept": "application/json"}
            if self._etag and not unconditional:
                headers["if-none-match"] = self._etag
            try:
                self.fetches += 1
                resp = await self._http.get(self.jwks_uri, headers=headers)
                if resp.status_code == 304:
                    self._set_expiry(resp)
                    return
                resp.raise_for_status()
                doc = resp.json()
                keys = doc.get("keys") if isinstance(doc, dict) else None
                if not isinstance(keys, list):
                    raise ValueError("JWKS without a keys array")
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch from %s failed (%s); keeping the cached keys", self.jwks_uri, exc)
                return
            fresh: dict[str, tuple[str, AnyKey]] = {}
            for jwk in keys:
                imported = import_jwk(jwk) if isinstance(jwk, dict) else None
                if imported is not None:
                    fresh[imported[0]] = (imported[1], imported[2])
            self._keys = fresh
            self._etag = resp.headers.get("etag")
            self._set_expiry(resp)

    def _set_expiry(self, resp: httpx.Response) -> None:
        max_age = parse_max_age(resp.headers.get("cache-control"))
        ttl = self._default_max_age if max_age is None else float(max_age)
        self._expires = self._now() + min(max(ttl, self._min_max_age), self._max_max_age)
