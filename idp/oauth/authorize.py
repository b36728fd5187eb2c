"""The authorization endpoint's decisions (RFC 6749 §4.1.1-4.1.2, OIDC Core §3.1.2), synchronous.

Order matters: ``client_id`` and ``redirect_uri`` are checked first, and a problem
with either is shown on our own page, never redirected (RFC 6749 §4.1.2.1). Once
both are known good, every other error is redirected with ``error``,
``error_description``, ``state`` and ``iss`` (RFC 9207). Then the person: no or
too old a login session, or ``prompt=login``, sends the browser to the hosted
login page; missing consent (third-party clients) to the consent page. Both
come back through :meth:`Authorizer.resume`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from idp.clients.model import Client
from idp.container import Container
from idp.errors import (
    AccessDenied,
    ConsentRequired,
    InvalidRedirectUri,
    InvalidRequest,
    LoginRequired,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from idp.interaction import PendingAuthorization, SessionInfo
from idp.oauth import policy
from idp.oauth.forms import Pairs, duplicates, values
from idp.oauth.grants import pkce
from idp.tokens.codes import CodeData
from idp.tokens.id_token import acr_for

MAX_NONCE = 512
MAX_STATE = 2048


class RequestNotSupported(OAuthError):
    error = "request_not_supported"  # OIDC Core §6.1: request objects are not supported


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class AuthorizeError(Exception):
    """An error for the client: redirected when ``redirect_uri`` is known good, else shown on our page."""

    def __init__(self, error: OAuthError, *, redirect_uri: str | None = None, state: str | None = None) -> None:
        super().__init__(error.description or error.error)
        self.error = error
        self.redirect_uri = redirect_uri if error.allow_redirect else None
        self.state = state


@dataclass
class Outcome:
    status: int
    location: str | None = None
    title: str = ""
    message: str = ""


@dataclass
class AuthzRequest:
    client: Client
    redirect_uri: str
    params: dict[str, str]
    scopes: list[str]
    state: str | None
    prompts: set[str] = field(default_factory=set)
    max_age: int | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    nonce: str | None = None
    resource: str | None = None


def _page(message: str) -> AuthorizeError:
    return AuthorizeError(InvalidRedirectUri(message))


def validate(c: Container, pairs: Pairs) -> AuthzRequest:
    """Blocking (client lookup). Raises AuthorizeError."""
    dup = duplicates(pairs)
    params: dict[str, str] = {}
    for k, v in pairs:
        params.setdefault(k, v)
    if "client_id" in dup or "redirect_uri" in dup:
        raise _page("The request repeats client_id or redirect_uri.")
    client_id = params.get("client_id")
    if not client_id:
        raise _page("The request has no client_id.")
    client = c.clients.get_active(client_id) if len(client_id) <= 64 else None
    if client is None:
        raise _page("The application that sent you here is not registered.")  # RFC 6749 §4.1.2.1
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise _page("The request has no redirect_uri.")  # OIDC Core §3.1.2.1: REQUIRED
    if not client.redirect_uri_allowed(redirect_uri):  # RFC 9700 §4.1.3: exact match (loopback port for native)
        raise _page("The redirect_uri is not registered for this application.")  # RFC 6749 §4.1.2.1: no redirect
    state = params.get("state") if "state" not in dup else None
    try:
        return _validate_rest(c, client, redirect_uri, pairs, params, dup, state)
    except OAuthError as exc:
        raise AuthorizeError(exc, redirect_uri=redirect_uri, state=state) from None


def _validate_rest(
    c: Container,
    client: Client,
    redirect_uri: str,
    pairs: Pairs,
    params: dict[str, str],
    dup: list[str],
    state: str | None,
) -> AuthzRequest:
    if dup:
        raise InvalidRequest(f"parameter {dup[0][:40]!r} is repeated")  # RFC 6749 §3.1
    if state is not None and len(state) > MAX_STATE:
        raise InvalidRequest("state is too long")
    if "request" in params:
        raise RequestNotSupported("request objects are not supported")
    if "request_uri" in params:
        raise RequestUriNotSupported("request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("missing response_type")
    if response_type != "code":  # RFC 9700 §2.1.2, OAuth 2.1: no implicit, no hybrid
        raise UnsupportedResponseType("only response_type=code is supported")
    if not client.allows_grant("authorization_code"):
        raise UnauthorizedClient("the client is not registered for the authorization code flow")
    if params.get("response_mode", "query") != "query":
        raise InvalidRequest("only response_mode=query is supported")
    scopes = policy.resolve_scope(client, params.get("scope"))
    challenge, method = pkce.check_challenge(client, params)  # RFC 9700 §2.1.1
    nonce = params.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise InvalidRequest("nonce is too long")
    prompts = set(params.get("prompt", "").split())
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")  # OIDC Core §3.1.2.1
    max_age = None
    if "max_age" in params:
        try:
            max_age = int(params["max_age"])
        except ValueError:
            raise InvalidRequest("max_age must be a number of seconds") from None
        if max_age < 0:
            raise InvalidRequest("max_age must not be negative")
    resources = values(pairs, "resource")
    policy.resolve_audience(client, resources, c.settings.audience)  # RFC 8707 §2: invalid_target early
    return AuthzRequest(
        client=client,
        redirect_uri=redirect_uri,
        params=params,
        scopes=scopes,
        state=state,
        prompts=prompts,
        max_age=max_age,
        code_challenge=challenge,
        code_challenge_method=method,
        nonce=nonce,
        resource=resources[0] if resources else None,
    )


def redirect_to(uri: str, params: list[tuple[str, str]], status: int) -> Outcome:
    sep = "&" if urlsplit(uri).query else "?"
    return Outcome(status, location=uri + sep + urlencode(params))


def error_outcome(c: Container, exc: AuthorizeError, status: int = 302) -> Outcome:
    if exc.redirect_uri is None:
        return Outcome(400, title="This sign-in request cannot be completed", message=str(exc))
    params = [("error", exc.error.error)]
    if exc.error.description:
        params.append(("error_description", exc.error.description))
    if exc.state is not None:
        params.append(("state", exc.state))  # RFC 6749 §4.1.2.1: state echoed unmodified
    params.append(("iss", c.settings.issuer))  # RFC 9207 §2: on error responses too
    return redirect_to(exc.redirect_uri, params, status)


class Authorizer:
    def __init__(self, c: Container) -> None:
        self.c = c

    def _session(self, cookie: str | None) -> SessionInfo | None:
        sessions = self.c.login_sessions
        return sessions.from_cookie(cookie) if sessions is not None and cookie else None

    def start(self, pairs: Pairs, cookie: str | None, *, status: int = 302) -> Outcome:
        """GET or POST /authorize. Blocking."""
        try:
            req = validate(self.c, pairs)
            return self._decide(req, self._session(cookie), None, status)
        except AuthorizeError as exc:
            return error_outcome(self.c, exc, status)

    def resume(self, interaction_id: str, cookie: str | None) -> Outcome:
        """GET /authorize/resume: the login or consent page finished. Blocking."""
        pending = self.c.interactions.finish(interaction_id)  # atomic: a resumed request cannot be replayed
        if pending is None:
            return Outcome(400, title="This sign-in request has expired", message="Please start again.")
        try:
            req = validate(self.c, list(pending.params.items()))
            session = self._session(cookie)
            expected = pending.login_sid or pending.extra.get("sid")
            if expected and (session is None or session.sid != expected):
                # The session that signed in (or consented) for this request must be the one finishing it.
                error: OAuthError = LoginRequired("the sign-in did not complete in this browser")
                raise AuthorizeError(error, redirect_uri=req.redirect_uri, state=req.state)
            if pending.consent == "denied":
                raise AuthorizeError(AccessDenied("the user denied the request"), redirect_uri=req.redirect_uri,
                                     state=req.state)  # fmt: skip
            return self._decide(req, session, pending, 302)
        except AuthorizeError as exc:
            return error_outcome(self.c, exc)

    def _decide(
        self, req: AuthzRequest, session: SessionInfo | None, pending: PendingAuthorization | None, status: int
    ) -> Outcome:
        now = self.c.clock.now()
        fresh = (
            pending is not None
            and pending.login_at is not None
            and session is not None
            and pending.login_sid == session.sid
        )
        # OIDC Core §3.1.2.1: re-authenticate when auth_time is older than max_age; max_age=0 is prompt=login.
        too_old = req.max_age is not None and (
            req.max_age == 0 or now - (session.auth_time if session else 0) > req.max_age
        )
        needs_login = session is None or (not fresh and ("login" in req.prompts or too_old))
        if needs_login:
            if "none" in req.prompts:  # OIDC Core §3.1.2.6
                raise AuthorizeError(LoginRequired(), redirect_uri=req.redirect_uri, state=req.state)
            return self._interaction("login", req, None, pending, status)
        assert session is not None
        if not req.client.first_party and not (pending is not None and pending.consent == "granted"):
            consents = self.c.consents
            covered = consents is not None and consents.covers(session.user_id, req.client.client_id, req.scopes)
            if "consent" in req.prompts or not covered:
                if "none" in req.prompts:
                    raise AuthorizeError(ConsentRequired(), redirect_uri=req.redirect_uri, state=req.state)
                return self._interaction("consent", req, session, pending, status)
        return self._issue(req, session, status)

    def _interaction(
        self,
        kind: str,
        req: AuthzRequest,
        session: SessionInfo | None,
        pending: PendingAuthorization | None,
        status: int,
    ) -> Outcome:
        if pending is None:
            pending = self.c.interactions.create(req.client.client_id, req.params, req.scopes)
        if session is not None:
            pending.extra.update(sid=session.sid, user_id=session.user_id)
        self.c.interactions.save(pending)
        return Outcome(status, location=f"{self.c.settings.issuer}/{kind}?interaction={pending.id}")

    def _issue(self, req: AuthzRequest, session: SessionInfo, status: int) -> Outcome:
        data = CodeData(
            client_id=req.client.client_id,
            redirect_uri=req.redirect_uri,  # RFC 6749 §4.1.3: bound, compared at the token endpoint
            user_id=session.user_id,
            scope=" ".join(req.scopes),
            auth_time=session.auth_time,
            code_challenge=req.code_challenge,
            code_challenge_method=req.code_challenge_method,
            nonce=req.nonce,
            sid=session.sid,
            acr=acr_for(session.amr),
            amr=list(session.amr),
            resource=req.resource,
        )
        code = self.c.extras["codes"].issue(data)
        params = [("code", code)]
        if req.state is not None:
            params.append(("state", req.state))
        params.append(("iss", self.c.settings.issuer))  # RFC 9207 §2
        return redirect_to(req.redirect_uri, params, status)
