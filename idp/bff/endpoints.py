"""The BFF's own endpoints under ``/bff``: login, callback, user, logout, back-channel logout.

Each answers JSON with ``Cache-Control: no-store`` (or a redirect); no answer script can read carries a token
(sign-out, :mod:`idp.bff.logout`, hands the ID token to idp in a top-level navigation's redirect).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from idp.bff import logout as bff_logout
from idp.bff.backchannel import LogoutTokenInvalid, LogoutTokenVerifier, end_sessions
from idp.bff.context import SEEN, Bff
from idp.bff.cookies import clear_login_cookie, clear_session_cookie, set_login_cookie, set_session_cookie
from idp.bff.errors import NO_STORE, json_error
from idp.bff.login import LoginTooLarge, LoginTransactions, TooManyLogins
from idp.bff.oidc import SignInFailed
from idp.bff.returnto import safe_return_to
from idp.bff.sealing import new_session_id
from idp.bff.session import BffSession, TokenSet
from idp.peer import client_ip
from idp.resource.jwks import JwksCache

log = logging.getLogger("idp.bff")

# What /bff/user may show the SPA: who, and how they signed in. Never a token, never the sid (it is idp's
# handle on the session, used only by back-channel logout), nor nonce / at_hash.
SHOWN_CLAIMS = (
    "sub", "name", "given_name", "family_name", "middle_name", "nickname", "preferred_username", "picture",
    "email", "email_verified", "locale", "zoneinfo", "updated_at", "auth_time", "acr", "amr",
)  # fmt: skip
MAX_BACKCHANNEL_BODY = 16_384  # bytes: a logout token is well under 2 KiB


def routes(bff: Bff) -> list[Route]:
    settings = bff.settings
    logins = LoginTransactions(
        bff.store, bff.crypto, bff.clock, ttl=settings.login_ttl, per_ip=settings.login_pending_per_ip
    )
    start_again = "no sign-in under way in this browser (it took too long, or was finished already): start again"

    async def logout_tokens() -> LogoutTokenVerifier:
        """Made on first use: idp need not be up when the BFF starts."""
        verifier = bff.state.get("logout_tokens")
        if verifier is None:
            try:
                metadata = await bff.oidc.metadata()
            except Exception as exc:
                raise LogoutTokenInvalid("idp's keys are not available") from exc
            jwks = JwksCache(metadata["jwks_uri"], bff.http)
            verifier = LogoutTokenVerifier(
                issuer=bff.oidc.issuer, client_id=settings.client_id, jwks=jwks, store=bff.store, clock=bff.clock
            )
            bff.state["logout_tokens"] = verifier
        assert isinstance(verifier, LogoutTokenVerifier)
        return verifier

    async def login(request: Request) -> Response:
        return_to = safe_return_to(request.query_params.get("returnTo"))
        await logins.finish(request.cookies.get(settings.login_cookie_name))  # an earlier round trip ends here
        request.scope["session"] = {}  # Authlib writes state, nonce and verifier here (idp.bff.oidc)
        try:
            response = await bff.oidc.authorize_redirect(request, settings.redirect_uri)
        except SignInFailed as exc:
            return json_error(502, exc.error, exc.description)
        except Exception as exc:
            log.warning("BFF sign-in could not start: %s", type(exc).__name__)
            return json_error(502, "temporarily_unavailable", "idp could not be reached")
        flow = {
            name: {**entry, "data": {k: v for k, v in entry.get("data", {}).items() if k != "url"}}
            for name, entry in request.scope["session"].items()
        }  # Authlib's per-state data without the authorization URL it also keeps (the record stays small)
        try:
            login_id = await logins.begin(flow, return_to, ip=client_ip(request))
        except TooManyLogins as exc:
            return json_error(429, "temporarily_unavailable", "too many sign-ins are under way from this network: "
                              "try again in a few minutes", **{"retry-after": str(exc.retry_after)})  # fmt: skip
        except LoginTooLarge:
            return json_error(400, "invalid_request", "the sign-in request is too large")
        set_login_cookie(response, settings, login_id)
        response.headers.update(NO_STORE)
        return response

    async def callback(request: Request) -> Response:
        record = await logins.finish(request.cookies.get(settings.login_cookie_name))
        if record is None:
            refused = json_error(400, "invalid_request", start_again)
            if request.cookies.get(settings.login_cookie_name):
                clear_login_cookie(refused, settings)
            return refused
        request.scope["session"] = dict(record.flow)
        try:
            token = await bff.oidc.finish(request)
        except SignInFailed as exc:
            failed = json_error(400, exc.error, exc.description)
            clear_login_cookie(failed, settings)
            return failed
        session = await new_session(bff, token)
        old_key = bff.session_key(request)
        if old_key is not None:
            await bff.store.delete(old_key)  # no fixation: a sign-in always ends the session it found
        session_id = new_session_id()
        session = bff_logout.with_handle(bff.crypto, dataclasses.replace(session, key=bff.crypto.store_key(session_id)))
        await bff.store.create(session)
        response = RedirectResponse(safe_return_to(record.return_to), status_code=303, headers=NO_STORE)
        set_session_cookie(response, settings, session_id, int(session.expires_at - bff.clock.now()))
        clear_login_cookie(response, settings)
        return response

    async def user(request: Request) -> Response:
        session = await bff.session_of(request)
        if session is None:
            response = json_error(401, "unauthenticated", "no session", vary="cookie")
            if request.cookies.get(settings.cookie_name):
                clear_session_cookie(response, settings)
            return response
        return JSONResponse(
            {
                "sub": session.sub,
                "claims": {k: v for k, v in session.claims.items() if k in SHOWN_CLAIMS},
                "expires_at": int(session.expires_at),
                "idle_expires_at": int(bff.idle_expires_at(session)),
                "logout_url": bff_logout.logout_url(bff.crypto, session),  # a navigation target; no token in it
            },
            headers={**NO_STORE, "vary": "cookie"},
        )

    async def logout(request: Request) -> Response:
        if request.method == "POST":
            return await bff_logout.logout_link(bff, request)
        return await bff_logout.sign_out(bff, request)

    async def backchannel(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return json_error(400, "invalid_request", "BCL §2.5: a form with logout_token")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BACKCHANNEL_BODY:
                return json_error(413, "invalid_request", "the request is too large for a logout token")
        try:
            form = parse_qs(body.decode("ascii"), max_num_fields=10, strict_parsing=bool(body))
            token = form.get("logout_token", [None])
            if len(token) != 1:
                raise ValueError("one logout_token")
            verified = await (await logout_tokens()).verify(token[0])
        except LogoutTokenInvalid as exc:
            return json_error(400, "invalid_request", str(exc))
        except ValueError:  # not ASCII, not a form, too many fields, the parameter twice
            return json_error(400, "invalid_request", "malformed form")
        ended = await end_sessions(bff.store, verified)
        log.info("back-channel logout ended %d BFF session(s)", ended)
        return Response(status_code=200, headers=NO_STORE)

    return [
        Route("/bff/login", login, methods=["GET"]),
        Route("/bff/callback", callback, methods=["GET"]),
        Route("/bff/user", user, methods=["GET"]),
        Route(bff_logout.PATH, logout, methods=["GET", "POST"]),
        Route("/bff/backchannel", backchannel, methods=["POST"]),
    ]


async def new_session(bff: Bff, token: dict[str, Any]) -> BffSession:
    """The session a checked token response makes (its key is set by the caller)."""
    now = bff.clock.now()
    id_claims = dict(token["userinfo"])
    claims = {k: v for k, v in id_claims.items() if k in SHOWN_CLAIMS}
    try:
        info = await bff.oidc.userinfo(token)
    except Exception as exc:  # the ID token's claims are enough to go on
        log.info("BFF sign-in: userinfo unavailable (%s)", type(exc).__name__)
        info = {}
    if info.get("sub") == id_claims["sub"]:  # OIDC Core §5.3.2: only the same person's claims are used
        claims.update({k: v for k, v in info.items() if k in SHOWN_CLAIMS})
    expires_in = token.get("expires_in")
    access_expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else now + 300
    sid = id_claims.get("sid")
    return BffSession(
        key="",
        sub=str(id_claims["sub"]),
        sid=sid if isinstance(sid, str) and sid else None,
        claims=claims,
        tokens=TokenSet(
            access_token=str(token["access_token"]),
            access_expires_at=access_expires_at,
            refresh_token=token.get("refresh_token"),
            id_token=str(token["id_token"]),
            scope=str(token.get("scope", "")),
        ),
        created_at=now,
        expires_at=now + bff.settings.session_lifetime,
        extra={SEEN: now},
    )
