"""The authorization endpoint's decisions (RFC 6749 §4.1.1-4.1.2, OIDC Core §3.1.2), synchronous.

Order matters: ``client_id`` and ``redirect_uri`` are checked first, and a problem
with either is shown on our own page, never redirected (RFC 6749 §4.1.2.1). Once
both are known good, every other error is redirected with ``error``,
``error_description``, ``state`` and ``iss`` (RFC 9207). Then the person: no or
too old a login session, ``prompt=login``, or a session of someone other than
``id_token_hint`` names sends the browser to the hosted login page; missing
consent (third-party clients), or a public client's loopback or private-use
redirect URI not yet approved in this session (RFC 8252 §8.6), to the consent
page. Both come back through :meth:`Authorizer.resume`.

Only the parameters in :data:`BOUNDS` are read and parked, each within its bound;
anything else is ignored (RFC 6749 §3.1), so an anonymous request cannot make us
store more than :data:`idp.interaction.MAX_RECORD` bytes, and one client IP at
most ``authorize_pending_per_ip`` such records at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from idp.clients.model import Client
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
from idp.interaction import (
    MAX_CLIENT_ID,
    MAX_STATE,
    MAX_URI,
    PendingAuthorization,
    RecordTooLarge,
    SessionInfo,
    TooManyPending,
)
from idp.oauth import policy
from idp.oauth.forms import Pairs, duplicates, values
from idp.oauth.grants import pkce
from idp.services import Services
from idp.sessions.assurance import acr_for, parse_acr_values, preferred_met
from idp.sessions.consents import needs_session_approval
from idp.tokens.codes import CodeData
from idp.tokens.id_token_hint import MAX_HINT, verify_hint

MAX_NONCE = 512
JKT = re.compile(r"[A-Za-z0-9_-]{43}")
# The parameters the flow uses, each with its longest accepted value; longer is invalid_request.
BOUNDS: dict[str, int] = {
    "client_id": MAX_CLIENT_ID,
    "redirect_uri": MAX_URI,
    "response_type": 64,
    "response_mode": 64,
    "scope": 2048,
    "state": MAX_STATE,
    "nonce": MAX_NONCE,
    "code_challenge": 128,  # RFC 7636 §4.2: 43-128 characters
    "code_challenge_method": 16,
    "prompt": 64,
    "max_age": 16,
    "login_hint": 256,
    "resource": 2048,
    "id_token_hint": MAX_HINT,
    "dpop_jkt": 43,  # RFC 9449 §10: a SHA-256 JWK thumbprint, base64url
    "acr_values": 512,
}
PARKED = frozenset(BOUNDS) - {"id_token_hint"}  # the hint is parked as its verified subject only


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
    error: str = "invalid_request"
    headers: dict[str, str] = field(default_factory=dict)


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
    hint_sub: str | None = None  # the verified id_token_hint's subject
    dpop_jkt: str | None = None  # RFC 9449 §10: the code may be redeemed only with a proof by this key
    acr_values: tuple[str, ...] = ()  # OIDC Core §3.1.2.1: in order of preference


def _page(message: str) -> AuthorizeError:
    return AuthorizeError(InvalidRedirectUri(message))


def validate(c: Services, pairs: Pairs) -> AuthzRequest:
    """Blocking (client lookup). Raises AuthorizeError."""
    dup = duplicates(pairs)
    seen: dict[str, str] = {}
    for k, v in pairs:
        seen.setdefault(k, v)
    params = {k: v for k, v in seen.items() if k in BOUNDS}  # RFC 6749 §3.1: unrecognized ones are ignored
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
    if state is not None and len(state) > MAX_STATE:
        state = None  # refused below; not reflected back
    try:
        if "request" in seen:
            raise RequestNotSupported("request objects are not supported")
        if "request_uri" in seen:
            raise RequestUriNotSupported("request_uri is not supported")
        return _validate_rest(c, client, redirect_uri, pairs, params, dup, state)
    except OAuthError as exc:
        raise AuthorizeError(exc, redirect_uri=redirect_uri, state=state) from None


def _validate_rest(
    c: Services,
    client: Client,
    redirect_uri: str,
    pairs: Pairs,
    params: dict[str, str],
    dup: list[str],
    state: str | None,
) -> AuthzRequest:
    if dup:
        raise InvalidRequest(f"parameter {dup[0][:40]!r} is repeated")  # RFC 6749 §3.1
    for name, value in [*params.items(), *(("resource", r) for r in values(pairs, "resource"))]:
        if len(value) > BOUNDS[name]:
            raise InvalidRequest(f"{name} is too long")
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
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):  # RFC 9449 §10: a JWK SHA-256 thumbprint
        raise InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
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
    hint_sub = _hinted_subject(c, client, params.pop("id_token_hint", None))
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
        hint_sub=hint_sub,
        dpop_jkt=dpop_jkt,
        acr_values=parse_acr_values(params.get("acr_values")),
    )


def _hinted_subject(c: Services, client: Client, hint: str | None) -> str | None:
    """OIDC Core §3.1.2.1: ``id_token_hint`` is an ID token we issued (expired is fine), judged as at logout."""
    if hint is None:
        return None
    verified = verify_hint(c.keyring, hint, issuer=c.settings.issuer, now=c.clock.now())
    if verified is None:
        raise InvalidRequest("id_token_hint is not an ID token issued by this server")
    if client.client_id not in verified.audiences:
        raise InvalidRequest("id_token_hint was not issued to this client")
    return verified.sub


def redirect_to(uri: str, params: list[tuple[str, str]], status: int) -> Outcome:
    sep = "&" if urlsplit(uri).query else "?"
    return Outcome(status, location=uri + sep + urlencode(params))


def error_outcome(c: Services, exc: AuthorizeError, status: int = 302) -> Outcome:
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
    def __init__(self, c: Services) -> None:
        self.c = c

    def _session(self, cookie: str | None) -> SessionInfo | None:
        return self.c.login_sessions.from_cookie(cookie) if cookie else None

    def start(self, pairs: Pairs, cookie: str | None, *, ip: str, status: int = 302) -> Outcome:
        """GET or POST /authorize; ``ip`` is the client address (the per-IP cap on parked requests). Blocking."""
        try:
            req = validate(self.c, pairs)
            return self._decide(req, self._session(cookie), None, status, ip)
        except AuthorizeError as exc:
            return error_outcome(self.c, exc, status)
        except TooManyPending as exc:
            return Outcome(
                429, title="Too many sign-in requests", message="Too many sign-ins are waiting from your network. "
                "Try again in a few minutes.", error="temporarily_unavailable",
                headers={"retry-after": str(exc.retry_after)},
            )  # fmt: skip

    def resume(self, interaction_id: str, cookie: str | None) -> Outcome:
        """GET /authorize/resume: the login or consent page finished. Blocking."""
        pending = self.c.interactions.finish(interaction_id)  # atomic: a resumed request cannot be replayed
        if pending is None:
            return Outcome(400, title="This sign-in request has expired", message="Please start again.")
        try:
            return self._resume(pending, cookie)
        finally:
            self.c.interactions.settle(pending)  # consumed, unless parked again: its per-address place is free

    def _resume(self, pending: PendingAuthorization, cookie: str | None) -> Outcome:
        try:
            req = validate(self.c, list(pending.params.items()))
            req.hint_sub = pending.hint_sub
            session = self._session(cookie)
            expected = pending.login_sid or pending.extra.get("sid")
            if expected and (session is None or session.sid != expected):
                # The session that signed in (or consented) for this request must be the one finishing it.
                error: OAuthError = LoginRequired("the sign-in did not complete in this browser")
                raise AuthorizeError(error, redirect_uri=req.redirect_uri, state=req.state)
            if pending.consent == "denied":
                raise AuthorizeError(AccessDenied("the user denied the request"), redirect_uri=req.redirect_uri,
                                     state=req.state)  # fmt: skip
            return self._decide(req, session, pending, 302, "")
        except AuthorizeError as exc:
            return error_outcome(self.c, exc)

    def _decide(
        self,
        req: AuthzRequest,
        session: SessionInfo | None,
        pending: PendingAuthorization | None,
        status: int,
        ip: str,
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
        # OIDC Core §3.1.2.1: id_token_hint names the person; a session of someone else does not answer for them.
        someone_else = req.hint_sub is not None and session is not None and session.user_id != req.hint_sub
        if fresh and someone_else:
            error = LoginRequired("the person who signed in is not the one id_token_hint names")
            raise AuthorizeError(error, redirect_uri=req.redirect_uri, state=req.state)
        needs_login = session is None or (not fresh and ("login" in req.prompts or too_old or someone_else))
        second = self._second_factor(req, session) if session is not None and not needs_login else None
        if second == "enrol":  # the policy requires a factor this person lacks: a sign-in enrols one
            needs_login = not fresh
        if needs_login:
            if "none" in req.prompts:  # OIDC Core §3.1.2.6
                raise AuthorizeError(LoginRequired(), redirect_uri=req.redirect_uri, state=req.state)
            return self._interaction("login", req, None, pending, status, ip)
        assert session is not None
        if second == "challenge":  # OIDC Core §3.1.2.1 acr_values, or the policy: a second factor for this session
            if "none" in req.prompts:  # OIDC Core §3.1.2.6: it cannot be asked for without showing a page
                error = LoginRequired("a second factor is needed")
                raise AuthorizeError(error, redirect_uri=req.redirect_uri, state=req.state)
            return self._interaction("login/factor", req, session, pending, status, ip)
        # The consent page granted exactly the scopes it showed (pending.scopes); when the request resolves to
        # others now (the client's registration changed meanwhile), that answer is not for these.
        answered = pending is not None and pending.consent == "granted" and set(pending.scopes) == set(req.scopes)
        needs_consent = False
        if not req.client.first_party and not answered:
            consents = self.c.consents
            covered = consents is not None and consents.covers(session.user_id, req.client.client_id, req.scopes)
            needs_consent = "consent" in req.prompts or not covered
        # RFC 8252 §8.6: a public client's loopback or private-use redirect may be any local program; the
        # person approves this exact URI once per session, however often they consented before.
        unproven = (
            not answered
            and needs_session_approval(req.client, req.redirect_uri)
            and not self.c.approvals.approved(session.sid, req.client.client_id, req.redirect_uri)
        )
        if needs_consent or unproven:
            if "none" in req.prompts:  # OIDC Core §3.1.2.6
                raise AuthorizeError(ConsentRequired(), redirect_uri=req.redirect_uri, state=req.state)
            return self._interaction("consent", req, session, pending, status, ip)
        return self._issue(req, session, status)

    def _second_factor(self, req: AuthzRequest, session: SessionInfo) -> str | None:
        """``challenge`` when this session must pass a second factor first (the most preferred of the request's
        ``acr_values`` is not met, or the policy requires one of this person), ``enrol`` when the policy
        requires one the person does not have; None otherwise. ``acr_values`` the person cannot reach (no
        factor) are voluntary (OIDC Core §5.5.1.1): the code carries the ``acr`` actually met."""
        required = False
        if "mfa" not in session.amr and self.c.factors.policy.mode in ("required", "flagged"):
            user = self.c.directory.store.get(session.user_id)
            required = user is not None and self.c.factors.required_for(user.flags)
        if not required and preferred_met(req.acr_values, session.amr):
            return None
        if self.c.factors.has_second_factor(session.user_id):
            return "challenge"
        return "enrol" if required else None

    def _interaction(
        self,
        kind: str,
        req: AuthzRequest,
        session: SessionInfo | None,
        pending: PendingAuthorization | None,
        status: int,
        ip: str,
    ) -> Outcome:
        if pending is None:
            try:
                pending = self.c.interactions.create(
                    req.client.client_id, req.params, req.scopes, ip=ip, hint_sub=req.hint_sub
                )
            except RecordTooLarge:
                error = InvalidRequest("the request is too large")
                raise AuthorizeError(error, redirect_uri=req.redirect_uri, state=req.state) from None
        else:  # asked again (login, then consent; or consent for scopes that changed): for the request as it is now
            pending.scopes, pending.consent = list(req.scopes), None
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
            acr=acr_for(session.amr, req.acr_values),  # OIDC Core §2: the first requested value met
            amr=list(session.amr),
            resource=req.resource,
            dpop_jkt=req.dpop_jkt,
        )
        code = self.c.codes.issue(data)
        params = [("code", code)]
        if req.state is not None:
            params.append(("state", req.state))
        params.append(("iss", self.c.settings.issuer))  # RFC 9207 §2
        return redirect_to(req.redirect_uri, params, status)
