"""The authorization endpoint's decisions, called directly (no HTTP): what each request gets back, exactly.

Pages (400, never redirected) for a bad ``client_id`` or ``redirect_uri``; every other error redirected with
exactly ``error``, ``error_description`` (when there is one), ``state`` (when valid) and ``iss``; each
parameter's bound; prompt, max_age and id_token_hint; what is parked for the login and consent pages and how
/authorize/resume finishes it; the RFC 8252 §8.6 approval of a native client's loopback redirect.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from idp import interaction
from idp.clients.model import Client
from idp.errors import InvalidClient, InvalidRedirectUri
from idp.oauth.authorize import BOUNDS, AuthorizeError, Authorizer, Outcome, error_outcome
from idp.services import Services
from idp.users.directory import User
from tests.oauthkit import ISSUER, auth_params, make_user, native_client, pkce_pair, query, web_client

IP = "192.0.2.10"
PAGE_TITLE = "This sign-in request cannot be completed"
LOOPBACK = "http://127.0.0.1:51234/callback"


@pytest.fixture
def web(container: Services) -> Client:
    return web_client(container)[0]


@pytest.fixture
def alice(container: Services) -> User:
    return make_user(container, "alice")


def _pairs(app: Client, **extra: str) -> list[tuple[str, str]]:
    return list(auth_params(app, pkce_pair()[1], **extra).items())


def _start(c: Services, pairs: list[tuple[str, str]], cookie: str | None = None, status: int = 302) -> Outcome:
    return Authorizer(c).start(pairs, cookie, ip=IP, status=status)


def _login(c: Services, user: User, amr: tuple[str, ...] = ("pwd",)) -> tuple[str, str]:
    """A login session for ``user``: (cookie, sid)."""
    cookie, session = c.login_sessions.login(user.id, amr=amr)
    return cookie, session.sid


def _answer(out: Outcome, redirect: str = "https://rp.example/cb") -> list[tuple[str, str]]:
    """The redirect's parameters, in order; asserts it goes to ``redirect``."""
    assert out.location is not None, out
    parts = urlsplit(out.location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == redirect, out.location
    return parse_qsl(parts.query, keep_blank_values=True)


def _interaction(out: Outcome, kind: str) -> str:
    assert out.status == 302 and out.location is not None, out
    assert out.location.startswith(f"{ISSUER}/{kind}?interaction="), out.location
    return query(out.location)["interaction"]


def _signed_in_on_page(c: Services, interaction_id: str, user: User) -> str:
    """What the login page does when ``user`` signs in for a parked request; returns the new session's cookie."""
    cookie, session = c.login_sessions.login(user.id)
    pending = c.interactions.get(interaction_id)
    assert pending is not None
    pending.login_sid, pending.login_at = session.sid, session.auth_time
    c.interactions.save(pending)
    return cookie


def _hint(c: Services, app: Client, user: User) -> str:
    c.keyring.tick()  # signing keys, as at startup
    return str(c.id_tokens.issue(client_id=app.client_id, sub=user.id, auth_time=c.clock.now()))


# --- our own page: client_id and redirect_uri --------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no client_id", "The request has no client_id."),
        ("unknown client", "The application that sent you here is not registered."),
        ("client_id twice", "The request repeats client_id or redirect_uri."),
        ("redirect_uri twice", "The request repeats client_id or redirect_uri."),
        ("no redirect_uri", "The request has no redirect_uri."),
        ("other redirect_uri", "The redirect_uri is not registered for this application."),
    ],
)
def test_client_and_redirect_problems_are_our_page(container: Services, web: Client, case: str, message: str) -> None:
    pairs = _pairs(web)
    params = dict(pairs)
    if case == "no client_id":
        pairs = [p for p in pairs if p[0] != "client_id"]
    elif case == "unknown client":
        pairs = [(k, "nobody" if k == "client_id" else v) for k, v in pairs]
    elif case == "client_id twice":
        pairs.append(("client_id", params["client_id"]))
    elif case == "redirect_uri twice":
        pairs.append(("redirect_uri", params["redirect_uri"]))
    elif case == "no redirect_uri":
        pairs = [p for p in pairs if p[0] != "redirect_uri"]
    else:
        pairs = [(k, "https://evil.example/cb" if k == "redirect_uri" else v) for k, v in pairs]
    out = _start(container, [*pairs, ("response_type", "token")])  # a redirectable error comes second
    assert (out.status, out.location, out.title, out.message) == (400, None, PAGE_TITLE, message)


# --- redirected errors --------------------------------------------------------------------------------------


def test_a_redirected_error_carries_exactly_error_description_state_iss(container: Services, web: Client) -> None:
    pairs = [p for p in _pairs(web, state="s/1 +x") if p[0] != "response_type"]
    out = _start(container, pairs)
    assert out.status == 302
    assert _answer(out) == [
        ("error", "invalid_request"),
        ("error_description", "missing response_type"),
        ("state", "s/1 +x"),  # RFC 6749 §4.1.2.1: echoed unmodified
        ("iss", ISSUER),  # RFC 9207 §2
    ]
    assert _start(container, pairs, status=303).status == 303  # after a POST (RFC 9700 §4.12)


def test_an_error_without_description_or_state_carries_neither(container: Services, web: Client) -> None:
    pairs = [p for p in _pairs(web, prompt="none") if p[0] != "state"]
    assert _answer(_start(container, pairs)) == [("error", "login_required"), ("iss", ISSUER)]


@pytest.mark.parametrize("error", [InvalidRedirectUri("bad redirect_uri"), InvalidClient("bad client")])
def test_an_error_about_the_client_or_redirect_is_never_redirected(container: Services, error: Exception) -> None:
    """RFC 6749 §4.1.2.1: whatever redirect_uri came with it, such an error is shown on our page."""
    assert isinstance(error, InvalidRedirectUri | InvalidClient)
    out = error_outcome(container, AuthorizeError(error, redirect_uri="https://rp.example/cb", state="st"))
    assert (out.status, out.location, out.message) == (400, None, error.description)


def test_the_registered_query_is_kept(container: Services) -> None:
    app, _ = web_client(container, redirect_uris=["https://rp.example/cb?tenant=7"])
    out = _start(container, _pairs(app, response_type="token"))
    assert out.location is not None and out.location.startswith("https://rp.example/cb?tenant=7&error=")


@pytest.mark.parametrize(
    ("extra", "error", "description"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "only response_type=code is supported"),
        ({"response_mode": "fragment"}, "invalid_request", "only response_mode=query is supported"),
        ({"request": "eyJ.x.y"}, "request_not_supported", "request objects are not supported"),
        ({"request_uri": "https://rp.example/r"}, "request_uri_not_supported", "request_uri is not supported"),
        ({"prompt": "none consent"}, "invalid_request", "prompt=none cannot be combined with other values"),
        ({"max_age": "soon"}, "invalid_request", "max_age must be a number of seconds"),
        ({"max_age": "-1"}, "invalid_request", "max_age must not be negative"),
        ({"resource": "https://evil.example"}, "invalid_target", "the resource is not allowed for this client"),
        ({"id_token_hint": "a.b.c"}, "invalid_request", "id_token_hint is not an ID token issued by this server"),
    ],
)
def test_invalid_requests_are_redirected(
    container: Services, web: Client, extra: dict[str, str], error: str, description: str
) -> None:
    pairs = _pairs(web, state="st", **extra)
    assert _answer(_start(container, pairs)) == [
        ("error", error),
        ("error_description", description),
        ("state", "st"),
        ("iss", ISSUER),
    ]


def test_a_client_without_the_code_grant(container: Services) -> None:
    app, _ = web_client(container, grant_types=["client_credentials"], redirect_uris=["https://rp.example/cb"])
    q = dict(_answer(_start(container, _pairs(app))))
    assert (q["error"], q["error_description"]) == (
        "unauthorized_client", "the client is not registered for the authorization code flow")  # fmt: skip


def test_a_repeated_parameter_is_named(container: Services, web: Client) -> None:
    pairs = _pairs(web, state="st")
    q = dict(_answer(_start(container, [*pairs, ("scope", "openid")])))
    assert (q["error"], q["error_description"], q["state"]) == (
        "invalid_request",
        "parameter 'scope' is repeated",
        "st",
    )
    q = dict(_answer(_start(container, [*pairs, ("state", "other")])))
    assert q["error"] == "invalid_request" and "state" not in q  # which one would be echoed?
    long_name = "n" * 60
    q = dict(_answer(_start(container, [*pairs, (long_name, "1"), (long_name, "2")])))
    assert q["error_description"] == f"parameter {'n' * 40!r} is repeated"  # bounded in the answer


def test_several_resources_are_not_repeated_parameters(container: Services, web: Client) -> None:
    audience = container.settings.audience
    q = dict(_answer(_start(container, [*_pairs(web), ("resource", audience), ("resource", audience)])))
    assert q["error"] == "invalid_target", q  # RFC 8707 §2: allowed on the wire, one per token here


# --- bounds -------------------------------------------------------------------------------------------------

BOUNDED = ["response_type", "response_mode", "scope", "state", "nonce", "code_challenge", "code_challenge_method",
           "prompt", "max_age", "login_hint", "resource", "id_token_hint"]  # fmt: skip


@pytest.mark.parametrize("name", BOUNDED)
def test_each_parameter_is_bounded_exactly(container: Services, web: Client, name: str) -> None:
    char = "1" if name == "max_age" else "a"
    at = query(_start(container, _pairs(web, **{name: char * BOUNDS[name]})).location or "")
    assert at.get("error_description") != f"{name} is too long", at
    over = dict(_answer(_start(container, _pairs(web, **{name: char * (BOUNDS[name] + 1)}))))
    assert (over["error"], over["error_description"]) == ("invalid_request", f"{name} is too long"), over


def test_the_bounds(container: Services) -> None:
    assert {k: BOUNDS[k] for k in BOUNDED} == {
        "response_type": 64, "response_mode": 64, "scope": 2048, "state": 2048, "nonce": 512,
        "code_challenge": 128, "code_challenge_method": 16, "prompt": 64, "max_age": 16, "login_hint": 256,
        "resource": 2048, "id_token_hint": 8192,
    }  # fmt: skip


def test_every_resource_is_bounded(container: Services, web: Client) -> None:
    pairs = [*_pairs(web), ("resource", container.settings.audience), ("resource", "r" * 2049)]
    assert dict(_answer(_start(container, pairs)))["error_description"] == "resource is too long"


def test_a_state_at_its_bound_is_echoed_one_over_is_not(container: Services, web: Client) -> None:
    for state, echoed in (("s" * 2048, True), ("s" * 2049, False)):
        q = dict(_answer(_start(container, _pairs(web, state=state, response_type="token"))))
        assert ("state" in q) is echoed and q["iss"] == ISSUER
        assert q["error"] == ("unsupported_response_type" if echoed else "invalid_request")


# --- success: the code and what it carries ------------------------------------------------------------------


def test_the_code_carries_the_request(container: Services, web: Client, alice: User) -> None:
    cookie, sid = _login(container, alice, amr=("pwd", "otp"))
    session = container.login_sessions.from_cookie(cookie)
    assert session is not None
    _, challenge = pkce_pair()
    audience = container.settings.audience
    pairs = list(auth_params(web, challenge, scope="openid email", nonce="n-1", state="st").items())
    out = _start(container, [*pairs, ("resource", audience), ("response_mode", "query")], cookie)
    answer = _answer(out)
    assert out.status == 302 and [k for k, _ in answer] == ["code", "state", "iss"]
    assert dict(answer)["state"] == "st" and dict(answer)["iss"] == ISSUER
    data, _ = container.codes.redeem(dict(answer)["code"])
    assert (data.client_id, data.redirect_uri, data.user_id, data.scope) == (
        web.client_id, "https://rp.example/cb", alice.id, "openid email")  # fmt: skip
    assert (data.code_challenge, data.code_challenge_method, data.nonce, data.resource) == (
        challenge, "S256", "n-1", audience)  # fmt: skip
    assert (data.sid, data.auth_time, data.amr) == (sid, session.auth_time, ["pwd", "otp", "mfa"])
    assert data.acr == "urn:idp:acr:mfa"
    no_state = [p for p in _pairs(web) if p[0] != "state"]
    assert [k for k, _ in _answer(_start(container, no_state, cookie))] == ["code", "iss"]
    assert _start(container, _pairs(web), cookie, status=303).status == 303


def test_without_pkce_or_resource_the_code_has_none(container: Services, alice: User) -> None:
    app, _ = web_client(container, require_pkce=False)
    cookie, _ = _login(container, alice)
    pairs = list(auth_params(app, None, scope="openid", nonce="n").items())
    data, _ = container.codes.redeem(dict(_answer(_start(container, pairs, cookie)))["code"])
    assert (data.code_challenge, data.code_challenge_method, data.resource) == (None, None, None)
    assert data.acr == "urn:idp:acr:sfa"


# --- prompt and max_age -------------------------------------------------------------------------------------


def test_no_session_parks_the_request_for_the_login_page(container: Services, web: Client) -> None:
    pairs = _pairs(web, nonce="n", login_hint="alice", ui_locales="fr")
    pending = container.interactions.get(_interaction(_start(container, pairs), "login"))
    assert pending is not None and pending.client_id == web.client_id
    assert pending.params == {k: v for k, v in pairs if k != "ui_locales"}  # only what the flow reads
    assert pending.scopes == ["openid", "profile"] and pending.hint_sub is None and pending.extra == {}


def test_prompt_login_and_max_age(container: Services, web: Client, alice: User) -> None:
    cookie, _ = _login(container, alice)
    assert dict(_answer(_start(container, _pairs(web, prompt="none"), cookie))).get("code")
    _interaction(_start(container, _pairs(web, prompt="login"), cookie), "login")
    _interaction(_start(container, _pairs(web, max_age="0"), cookie), "login")  # OIDC Core: max_age=0 is login
    assert "code" in dict(_answer(_start(container, _pairs(web, max_age="1"), cookie)))
    container.clock.advance(60)
    assert "code" in dict(_answer(_start(container, _pairs(web, max_age="60"), cookie)))  # exactly max_age: ok
    _interaction(_start(container, _pairs(web, max_age="59"), cookie), "login")
    q = dict(_answer(_start(container, _pairs(web, max_age="59", prompt="none"), cookie)))
    assert q["error"] == "login_required"


# --- /authorize/resume --------------------------------------------------------------------------------------


def test_resume_of_an_unknown_request(container: Services) -> None:
    out = Authorizer(container).resume("nope", None)
    assert (out.status, out.location, out.error) == (400, None, "invalid_request")
    assert (out.title, out.message) == ("This sign-in request has expired", "Please start again.")


def test_resume_after_the_login_page(container: Services, web: Client, alice: User) -> None:
    for extra in ({}, {"prompt": "login"}, {"max_age": "0"}):  # a fresh login answers prompt=login and max_age=0
        iid = _interaction(_start(container, _pairs(web, state="st", **extra)), "login")
        cookie = _signed_in_on_page(container, iid, alice)
        out = Authorizer(container).resume(iid, cookie)
        assert out.status == 302 and [k for k, _ in _answer(out)] == ["code", "state", "iss"], out


def test_resume_in_another_browser_is_login_required(container: Services, web: Client, alice: User) -> None:
    iid = _interaction(_start(container, _pairs(web, state="st")), "login")
    _signed_in_on_page(container, iid, alice)
    other, _ = _login(container, make_user(container, "mallory"))
    for cookie in (other, None):
        pending = container.interactions.get(iid)
        out = Authorizer(container).resume(iid, cookie)
        assert out.status == 302 and _answer(out) == [
            ("error", "login_required"),
            ("error_description", "the sign-in did not complete in this browser"),
            ("state", "st"),
            ("iss", ISSUER),
        ]
        assert pending is not None
        container.interactions.save(pending)  # finish took it; put it back for the next case


def test_consent_then_resume(container: Services, alice: User) -> None:
    rp, _ = web_client(container, first_party=False)
    cookie, sid = _login(container, alice)
    iid = _interaction(_start(container, _pairs(rp, state="st"), cookie), "consent")
    pending = container.interactions.get(iid)
    assert pending is not None and pending.extra == {"sid": sid, "user_id": alice.id}
    # Another browser cannot finish what this session consented to (no login_sid: the session recorded).
    other, _ = _login(container, make_user(container, "mallory"))
    assert dict(_answer(Authorizer(container).resume(iid, other)))["error"] == "login_required"
    container.interactions.save(pending)
    # Granted for other scopes than the request resolves to now: asked again, for these.
    pending.consent, pending.scopes = "granted", ["openid"]
    container.interactions.save(pending)
    assert _interaction(Authorizer(container).resume(iid, cookie), "consent") == iid
    again = container.interactions.get(iid)
    assert again is not None and again.consent is None and again.scopes == ["openid", "profile"]
    # Granted for exactly these: the code.
    again.consent = "granted"
    container.interactions.save(again)
    assert "code" in dict(_answer(Authorizer(container).resume(iid, cookie)))


def test_denied_on_the_consent_page(container: Services, alice: User) -> None:
    rp, _ = web_client(container, first_party=False)
    cookie, _ = _login(container, alice)
    iid = _interaction(_start(container, _pairs(rp, state="st"), cookie), "consent")
    pending = container.interactions.get(iid)
    assert pending is not None
    pending.consent = "denied"
    container.interactions.save(pending)
    assert _answer(Authorizer(container).resume(iid, cookie)) == [
        ("error", "access_denied"),
        ("error_description", "the user denied the request"),
        ("state", "st"),
        ("iss", ISSUER),
    ]


def test_login_then_consent_is_one_request(container: Services, alice: User) -> None:
    rp, _ = web_client(container, first_party=False)
    iid = _interaction(_start(container, _pairs(rp)), "login")
    cookie = _signed_in_on_page(container, iid, alice)
    assert _interaction(Authorizer(container).resume(iid, cookie), "consent") == iid
    pending = container.interactions.get(iid)
    assert pending is not None and pending.extra["user_id"] == alice.id


def test_remembered_consent_and_prompt_consent(container: Services, alice: User) -> None:
    rp, _ = web_client(container, first_party=False)
    cookie, _ = _login(container, alice)
    assert dict(_answer(_start(container, _pairs(rp, prompt="none"), cookie)))["error"] == "consent_required"
    container.consents.grant(alice.id, rp.client_id, ["openid", "profile"])
    assert "code" in dict(_answer(_start(container, _pairs(rp, prompt="none"), cookie)))
    _interaction(_start(container, _pairs(rp, prompt="consent"), cookie), "consent")
    _interaction(_start(container, _pairs(rp, scope="openid email"), cookie), "consent")  # not covered


# --- id_token_hint ------------------------------------------------------------------------------------------


def test_the_hinted_person_only(container: Services, web: Client, alice: User) -> None:
    bob = make_user(container, "bob")
    hint = _hint(container, web, alice)
    bobs, _ = _login(container, bob)
    q = dict(_answer(_start(container, _pairs(web, id_token_hint=hint, prompt="none"), bobs)))
    assert q["error"] == "login_required", q
    alices, _ = _login(container, alice)
    assert "code" in dict(_answer(_start(container, _pairs(web, id_token_hint=hint, prompt="none"), alices)))
    # Without prompt=none: the login page, with the hint parked as its subject only.
    iid = _interaction(_start(container, _pairs(web, id_token_hint=hint, state="st"), bobs), "login")
    pending = container.interactions.get(iid)
    assert pending is not None and pending.hint_sub == alice.id and "id_token_hint" not in pending.params
    # Signing in as bob on that page does not answer for alice; signing in as alice does.
    out = Authorizer(container).resume(iid, _signed_in_on_page(container, iid, bob))
    assert _answer(out) == [
        ("error", "login_required"),
        ("error_description", "the person who signed in is not the one id_token_hint names"),
        ("state", "st"),
        ("iss", ISSUER),
    ]
    iid = _interaction(_start(container, _pairs(web, id_token_hint=hint), bobs), "login")
    assert "code" in dict(_answer(Authorizer(container).resume(iid, _signed_in_on_page(container, iid, alice))))


def test_a_hint_issued_to_another_client(container: Services, web: Client, alice: User) -> None:
    other, _ = web_client(container, name="Other App")
    q = dict(_answer(_start(container, _pairs(web, id_token_hint=_hint(container, other, alice)))))
    assert (q["error"], q["error_description"]) == ("invalid_request", "id_token_hint was not issued to this client")


# --- RFC 8252 §8.6 ------------------------------------------------------------------------------------------


def test_a_loopback_redirect_is_approved_per_session_and_uri(container: Services, alice: User) -> None:
    native = native_client(container, redirect_uris=[LOOPBACK])
    cookie, sid = _login(container, alice)
    pairs = _pairs(native, prompt="none")
    assert dict(_answer(_start(container, pairs, cookie), LOOPBACK))["error"] == "consent_required"
    _interaction(_start(container, _pairs(native), cookie), "consent")
    _, other_sid = _login(container, alice)
    container.approvals.approve(other_sid, native.client_id, LOOPBACK)  # another session's approval
    assert dict(_answer(_start(container, pairs, cookie), LOOPBACK))["error"] == "consent_required"
    container.approvals.approve(sid, native.client_id, LOOPBACK)
    assert "code" in dict(_answer(_start(container, pairs, cookie), LOOPBACK))
    # Continued on the page (granted) in this request: that answers it, whatever the approvals say.
    third, _ = _login(container, alice)
    iid = _interaction(_start(container, _pairs(native), third), "consent")
    pending = container.interactions.get(iid)
    assert pending is not None
    pending.consent = "granted"
    container.interactions.save(pending)
    assert "code" in dict(_answer(Authorizer(container).resume(iid, third), LOOPBACK))


# --- what may be parked -------------------------------------------------------------------------------------


def test_a_record_over_the_cap_is_invalid_request(
    container: Services, web: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interaction, "MAX_RECORD", 600)
    assert _answer(_start(container, _pairs(web, state="st", nonce="n" * 500))) == [
        ("error", "invalid_request"),
        ("error_description", "the request is too large"),
        ("state", "st"),
        ("iss", ISSUER),
    ]


class TestPerIpCap:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"authorize_pending_per_ip": 1}

    def test_too_many_waiting_sign_ins(self, container: Services, web: Client) -> None:
        _interaction(_start(container, _pairs(web)), "login")
        out = _start(container, _pairs(web))
        assert (out.status, out.location, out.error) == (429, None, "temporarily_unavailable")
        assert out.title == "Too many sign-in requests" and out.message == (
            "Too many sign-ins are waiting from your network. Try again in a few minutes.")  # fmt: skip
        assert 1 <= int(out.headers["retry-after"]) <= interaction.INTERACTION_TTL


def test_a_claimed_https_redirect_needs_no_approval(container: Services, alice: User) -> None:
    claimed = native_client(container, redirect_uris=["https://app.example/oauth"])  # RFC 8252 §7.2
    cookie, _ = _login(container, alice)
    out = _start(container, _pairs(claimed, prompt="none"), cookie)
    assert "code" in dict(_answer(out, "https://app.example/oauth"))


def test_resume_before_signing_in_goes_back_to_the_same_request(container: Services, web: Client) -> None:
    iid = _interaction(_start(container, _pairs(web)), "login")
    assert _interaction(Authorizer(container).resume(iid, None), "login") == iid  # not a second parked record
    assert container.interactions.get(iid) is not None
