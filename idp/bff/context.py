"""What the BFF's parts share for one app: settings, store, clock, the OIDC client, and the request's session.

The proxy, CSRF and refresh parts receive this object (:func:`idp.bff.app.create_bff_app` hands it to
:func:`idp.bff.proxy.routes`) and read the session with :meth:`Bff.session_of`; they write it only through
``store.replace`` (compare-and-set) while holding ``store.lease`` on its key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from starlette.requests import Request

from idp.bff.config import BffSettings, Upstream
from idp.bff.csrf import CsrfGuard
from idp.bff.oidc import OidcClient
from idp.bff.sealing import SessionCrypto
from idp.bff.session import BffSession, SessionStore
from idp.clock import Clock

SEEN = "seen"  # extra: when the session was last used (epoch seconds), for the idle timeout
TOUCH_EVERY = 60.0  # seconds: a session's last use is written at most this often
TOUCH_LEASE = 5.0  # seconds the touch holds the lease (it reads and writes one record)


@dataclass
class Bff:
    settings: BffSettings
    store: SessionStore
    crypto: SessionCrypto
    clock: Clock
    oidc: OidcClient
    http: httpx.AsyncClient  # for JWKS and the upstreams; idp's transport in tests
    upstreams: tuple[Upstream, ...] = ()
    state: dict[str, Any] = field(default_factory=dict)  # room for the other parts' per-app objects
    csrf: CsrfGuard = field(init=False)  # the one check of the proxy and of POST /bff/logout

    def __post_init__(self) -> None:
        self.csrf = CsrfGuard(self.settings.origin)

    def session_key(self, request: Request) -> str | None:
        """The store key of the request's session cookie (its digest), None without one."""
        session_id = request.cookies.get(self.settings.cookie_name)
        if not session_id or len(session_id) > 256:
            return None
        return self.crypto.store_key(session_id)

    def idle_expires_at(self, session: BffSession) -> float:
        seen = session.extra.get(SEEN, session.created_at)
        return min(float(seen) + self.settings.idle_timeout, session.expires_at)

    async def session_of(self, request: Request, *, touch: bool = True) -> BffSession | None:
        """The live session the request's cookie names; None when absent, expired or idle too long (then it
        is deleted). ``touch`` records the use (at most once a minute, under the lease)."""
        key = self.session_key(request)
        if key is None:
            return None
        session = await self.store.get(key)
        if session is None:
            return None
        now = self.clock.now()
        if now >= self.idle_expires_at(session):
            await self.store.delete(key)
            return None
        if touch and now - float(session.extra.get(SEEN, session.created_at)) >= TOUCH_EVERY:
            session = await self._touch(session, now)
        return session

    async def _touch(self, session: BffSession, now: float) -> BffSession:
        owner = secrets.token_hex(8)
        if not await self.store.lease(session.key, owner, TOUCH_LEASE):
            return session  # a refresh is under way; it will not mind a later touch
        try:
            current = await self.store.get(session.key)
            if current is None:
                return session
            touched = replace(current, extra={**current.extra, SEEN: now}, version=current.version + 1)
            if await self.store.replace(touched, expected_version=current.version):
                return touched
            return current
        finally:
            await self.store.release(session.key, owner)
