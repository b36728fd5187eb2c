"""Step-up at the resource server (RFC 9470): a route that needs a stronger or fresher sign-in.

    @requires_auth(acr=("urn:idp:acr:mfa",), max_age=900)
    async def transfer(request): ...

    @requires_auth(amr=("mfa",))
    async def delete_account(request): ...

The token's ``acr`` must be one of ``acr`` (when given), its ``amr`` must hold every method of ``amr``, and
its ``auth_time`` must be at most ``max_age`` seconds old. Otherwise the answer is 401 with
``WWW-Authenticate: Bearer error="insufficient_user_authentication"`` and the ``acr_values`` / ``max_age``
the client should send to the authorization server's ``/authorize`` to get a token that passes (RFC 9470
§3). A token without ``auth_time`` fails a ``max_age`` requirement (RFC 9470 §4: the server cannot know).
The ``acr`` values are the IdP's (``urn:idp:acr:sfa``, ``urn:idp:acr:mfa``; its discovery document's
``acr_values_supported``); this module does not import the IdP to know them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from idp.resource.errors import AuthError
from idp.resource.middleware import error_parts, principal_of
from idp.resource.verifier import Principal

INSUFFICIENT = "insufficient_user_authentication"  # RFC 9470 §3


class AuthRequirement:
    """What a route needs of the person's authentication; :meth:`check` raises :class:`AuthError`."""

    def __init__(
        self,
        *,
        acr: Iterable[str] = (),
        amr: Iterable[str] = (),
        max_age: int | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.acr = tuple(acr)
        self.amr = frozenset(amr)
        if max_age is not None and max_age < 0:
            raise ValueError("max_age must not be negative")
        self.max_age = max_age
        self._now = now

    def check(self, principal: Principal) -> None:
        claims = principal.claims
        acr, amr, auth_time = claims.get("acr"), claims.get("amr"), claims.get("auth_time")
        problems = []
        if self.acr and acr not in self.acr:
            problems.append("a stronger authentication level is required")
        methods = set(amr) if isinstance(amr, list) and all(isinstance(m, str) for m in amr) else set()
        if self.amr and not self.amr <= methods:
            problems.append("another authentication method is required")
        age = self._now() - float(auth_time) if isinstance(auth_time, int | float) else None
        too_old = self.max_age is not None and (age is None or age > self.max_age)
        if too_old:
            problems.append("a more recent authentication is required")
        if problems:
            raise AuthError(
                401, INSUFFICIENT, "; ".join(problems),  # RFC 9470 §3
                acr_values=" ".join(self.acr) or None, max_age=self.max_age if too_old else None,
                scheme="Bearer" if principal.jkt is None else "DPoP",  # RFC 9449 §7.1: a bound token's scheme
            )  # fmt: skip


def requires_auth(
    *,
    acr: Iterable[str] = (),
    amr: Iterable[str] = (),
    max_age: int | None = None,
    realm: str = "api",
    now: Callable[[], float] = time.time,
) -> Callable[[Any], Any]:
    """Decorate a Starlette endpoint behind :class:`idp.resource.BearerAuthMiddleware` with a step-up rule."""
    requirement = AuthRequirement(acr=acr, amr=amr, max_age=max_age, now=now)

    def decorator(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(endpoint)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            from starlette.responses import Response

            request = next(a for a in args if hasattr(a, "scope"))
            principal = principal_of(request)
            try:
                if principal is None:
                    raise AuthError(401, None)
                requirement.check(principal)
            except AuthError as exc:
                status, headers, body = error_parts(exc, realm)
                return Response(body, status, headers={k.decode(): v.decode() for k, v in headers})
            return await endpoint(*args, **kwargs)

        return wrapper

    return decorator
