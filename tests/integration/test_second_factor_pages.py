"""The hosted pages with second factors, on both backends: enrolment from the account page, the challenge
after the password, recovery codes, removal with the password, grace enrolment, step-up at /authorize
(``acr_values``, ``max_age``) and the ``acr``/``amr`` the tokens then carry."""

from __future__ import annotations

import re

import httpx
import pytest

from idp.clock import FrozenClock
from idp.interaction import SESSION_COOKIE
from idp.resource import AuthError, AuthRequirement, Principal
from idp.services import Services
from idp.sessions.assurance import ACR_MFA, ACR_SFA
from idp.sessions.factors import totp
from idp.sessions.factors.model import Factor
from idp.tokens import jwt
from idp.web.pages.forms import SECOND_STEP_COOKIE
from tests.oauthkit import auth_params, exchange, pkce_pair, query
from tests.pagekit import ISSUER, PASSWORD, SAME_ORIGIN, account_csrf, field, make_user, sign_in
from tests.passkeykit import SoftAuthenticator


@pytest.fixture
def alice(container):
    return make_user(container)


@pytest.fixture
def rp(container):
    return container.clients.create(
        name="Photo Book", kind="web", redirect_uris=["https://rp.example/cb"], first_party=True,
        post_logout_redirect_uris=["https://rp.example/bye"], scope="openid profile email offline_access",
    )  # fmt: skip


def now_code(secret: str, clock: FrozenClock) -> str:
    return totp.code_at(secret, totp.step_at(clock.now()))


def shown_secret(page: httpx.Response) -> str:
    """The TOTP secret a set-up page shows beside its QR code."""
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page.text)
    assert match is not None, page.text[:400]
    return match.group(1).replace(" ", "")


async def confirm_on_account_page(client, clock: FrozenClock) -> tuple[str, httpx.Response]:
    """Signed in already: start TOTP set-up on /account and confirm it with the current code; (secret, the
    confirmation's answer)."""
    page = await client.post("/account/totp/start", data={"csrf": await account_csrf(client)}, headers=SAME_ORIGIN)
    assert page.status_code == 200, page.text
    assert "<svg" in page.text and "Set up an authenticator app" in page.text
    secret = shown_secret(page)
    r = await client.post(
        "/account/totp/confirm",
        data={"csrf": field(page.text, "csrf"), "factor_id": field(page.text, "factor_id"),
              "code": now_code(secret, clock)},
        headers=SAME_ORIGIN,
    )  # fmt: skip
    return secret, r


async def enrol_on_account_page(client, container: Services, clock: FrozenClock) -> tuple[str, list[str]]:
    """Signed in already: set up a first TOTP factor from /account; (secret, recovery codes)."""
    secret, r = await confirm_on_account_page(client, clock)
    assert r.status_code == 200 and "Save your recovery codes" in r.text, r.text[:400]
    codes = re.findall(r"<li>([a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4})</li>", r.text)
    assert len(codes) == 10
    clock.advance(totp.STEP)
    return secret, codes


async def enrol_at_sign_in(client, clock: FrozenClock) -> tuple[httpx.Response, httpx.Response]:
    """Signed in up to the required enrolment: set up TOTP on /login/enrol; (the page, the answer)."""
    page = await client.get("/login/enrol")
    assert page.status_code == 200, page.text[:400]
    r = await client.post("/login/enrol", data={"csrf": field(page.text, "csrf"),
                          "code": now_code(shown_secret(page), clock)}, headers=SAME_ORIGIN)  # fmt: skip
    return page, r


async def sign_in_with_code(client, code: str, **kw) -> object:
    r = await sign_in(client, **kw)
    assert r.status_code == 303 and r.headers["location"] == "/login/factor", r.headers.get("location")
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    page = await client.get("/login/factor")
    assert page.status_code == 200 and "Two-step verification" in page.text
    return await client.post("/login/factor", data={"csrf": field(page.text, "csrf"), "code": code},
                             headers=SAME_ORIGIN)  # fmt: skip


async def test_enrol_then_sign_in_asks_for_the_code(client, container, clock, alice):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    session = container.login_sessions.current(client.cookies.get(SESSION_COOKIE))
    assert session.amr == ("pwd", "otp", "mfa")  # enrolling proved the factor: the session stepped up
    client.cookies.clear()
    r = await sign_in_with_code(client, now_code(secret, clock))
    assert r.status_code == 303 and r.headers["location"] == "/account"
    session = container.login_sessions.current(client.cookies.get(SESSION_COOKIE))
    assert session.amr == ("pwd", "otp", "mfa") and set(session.factor_times()) == {"pwd", "otp"}


async def test_a_wrong_code_does_not_sign_in(client, container, clock, alice):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    wrong = f"{(int(now_code(secret, clock)) + 1) % 1_000_000:06d}"
    r = await sign_in_with_code(client, wrong)
    assert r.status_code == 400 and "That code didn" in r.text
    assert client.cookies.get(SESSION_COOKIE) is None


async def test_the_code_cannot_be_replayed_for_a_second_sign_in(client, container, clock, alice):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    code = now_code(secret, clock)
    assert (await sign_in_with_code(client, code)).status_code == 303
    client.cookies.clear()
    r = await sign_in_with_code(client, code)
    assert r.status_code == 400 and client.cookies.get(SESSION_COOKIE) is None


async def test_a_recovery_code_signs_in_once(client, container, clock, alice):
    await sign_in(client)
    _, codes = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    assert (await sign_in_with_code(client, codes[0])).status_code == 303
    page = await client.get("/account")
    assert "9 of 10 unused" in page.text
    client.cookies.clear()
    assert (await sign_in_with_code(client, codes[0])).status_code == 400


async def test_second_step_form_needs_its_csrf_token_and_the_cookie(client, container, clock, alice):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    await sign_in(client)
    r = await client.post("/login/factor", data={"csrf": "forged", "code": now_code(secret, clock)},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400 and client.cookies.get(SESSION_COOKIE) is None
    page = await client.get("/login/factor")
    client.cookies.delete(SECOND_STEP_COOKIE)
    r = await client.post("/login/factor", data={"csrf": field(page.text, "csrf"), "code": now_code(secret, clock)},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400 and client.cookies.get(SESSION_COOKIE) is None


async def test_removing_a_factor_needs_the_password_and_signs_out_elsewhere(client, app, container, clock, alice):
    await sign_in(client)
    await enrol_on_account_page(client, container, clock)
    [factor] = container.factors.confirmed(alice.id)
    other, _ = container.login_sessions.login(alice.id)
    csrf = await account_csrf(client)
    r = await client.post("/account/factors/remove", data={"csrf": csrf, "factor_id": factor.id,
                          "current_password": "wrong"}, headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400 and container.factors.has_second_factor(alice.id)
    r = await client.post("/account/factors/remove", data={"csrf": csrf, "factor_id": factor.id,
                          "current_password": PASSWORD}, headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/account?done=factor"
    assert not container.factors.has_second_factor(alice.id)
    assert container.login_sessions.current(other) is None  # the other session ended
    assert container.login_sessions.current(client.cookies.get(SESSION_COOKIE)) is not None  # this one rotated


async def test_setting_up_an_app_needs_a_recent_sign_in(client, container, clock, alice):
    """An old (or stolen) session must not add a factor of its own: it signs in again first, as for a passkey."""
    await sign_in(client)
    page = await client.post("/account/totp/start", data={"csrf": await account_csrf(client)}, headers=SAME_ORIGIN)
    assert page.status_code == 200
    clock.advance(container.settings.reauth_seconds + 1)
    csrf = await account_csrf(client)
    r = await client.post("/account/totp/start", data={"csrf": csrf}, headers=SAME_ORIGIN)
    assert r.status_code == 303 and r.headers["location"] == "/login?reauth=1&next=/account"
    r = await client.post("/account/totp/confirm", data={"csrf": csrf, "factor_id": field(page.text, "factor_id"),
                          "code": "000000"}, headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/login?reauth=1&next=/account"
    assert not container.factors.confirmed(alice.id)


async def test_a_further_factor_does_not_step_the_session_up(client, container, clock, alice):
    """Only passing a factor the person already has proves this session; a new one proves nothing about it."""
    await sign_in(client)
    await enrol_on_account_page(client, container, clock)
    cookie, _ = container.login_sessions.login(alice.id)  # a password-only session of the same person
    client.cookies.set(SESSION_COOKIE, cookie, domain="idp.test")
    _, r = await confirm_on_account_page(client, clock)
    assert r.status_code == 303 and r.headers["location"] == "/account?done=totp"
    assert len(container.factors.confirmed(alice.id)) == 2
    session = container.login_sessions.current(client.cookies.get(SESSION_COOKIE))
    assert session is not None and session.amr == ("pwd",)


async def test_new_recovery_codes_need_the_password(client, container, clock, alice):
    await sign_in(client)
    _, old = await enrol_on_account_page(client, container, clock)
    csrf = await account_csrf(client)
    r = await client.post("/account/recovery/new", data={"csrf": csrf, "current_password": PASSWORD},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 200 and "Save your recovery codes" in r.text
    assert old[0] not in r.text


@pytest.fixture
def settings_overrides():
    return {}


class TestRequired:
    @pytest.fixture
    def settings_overrides(self):
        return {"mfa_policy": "required"}

    async def test_grace_enrolment_at_the_next_sign_in(self, client, container, clock, alice):
        r = await sign_in(client)
        assert r.status_code == 303 and r.headers["location"] == "/login/enrol"
        page, r = await enrol_at_sign_in(client, clock)
        assert "requires two-step verification" in page.text
        assert r.status_code == 200 and "Save your recovery codes" in r.text
        session = container.login_sessions.current(client.cookies.get(SESSION_COOKIE))
        assert session is not None and "mfa" in session.amr

    async def test_the_last_factor_cannot_be_removed(self, client, container, clock, alice):
        r = await sign_in(client)
        await enrol_at_sign_in(client, clock)
        [factor] = container.factors.confirmed(alice.id)
        r = await client.post("/account/factors/remove", data={"csrf": await account_csrf(client),
                              "factor_id": factor.id, "current_password": PASSWORD}, headers=SAME_ORIGIN)  # fmt: skip
        assert r.status_code == 400 and container.factors.has_second_factor(alice.id)

    async def test_a_passkey_counts_as_the_other_required_factor(self, client, container, clock, alice):
        r = await sign_in(client)
        await enrol_at_sign_in(client, clock)
        auth = SoftAuthenticator(origin=container.passkeys.origin, rp_id=container.passkeys.rp_id)
        ceremony = container.passkeys.registration_options(alice.id, "alice", "Alice", binding="b")
        container.passkeys.register(alice.id, binding="b", ceremony_id=ceremony.id,
                                    response=auth.create(ceremony.options), name="Laptop", ip="")  # fmt: skip
        [factor] = container.factors.confirmed(alice.id)
        r = await client.post("/account/factors/remove", data={"csrf": await account_csrf(client),
                              "factor_id": factor.id, "current_password": PASSWORD}, headers=SAME_ORIGIN)  # fmt: skip
        assert r.status_code == 303 and not container.factors.confirmed(alice.id)
        assert container.factors.has_second_factor(alice.id)  # the passkey


class TestFlagged:
    @pytest.fixture
    def settings_overrides(self):
        return {"mfa_policy": "flagged", "mfa_flag": "admin"}

    async def test_only_flagged_users_must_enrol(self, client, container, alice):
        bob = make_user(container, "bob")
        container.directory.set_flags(bob, ["admin"])
        assert (await sign_in(client)).headers["location"] == "/account"
        client.cookies.clear()
        assert (await sign_in(client, "bob")).headers["location"] == "/login/enrol"


class TestOff:
    @pytest.fixture
    def settings_overrides(self):
        return {"mfa_policy": "off"}

    async def test_no_second_step_and_no_enrolment(self, client, container, clock, alice):
        # A factor set up while the policy allowed it is kept but not asked for.
        container.factors.store.add(Factor(id="f1", user_id=alice.id, kind="totp", name="Phone",
                                           created_at=clock.now(), confirmed_at=clock.now()))  # fmt: skip
        r = await sign_in(client)
        assert r.headers["location"] == "/account"
        page = await client.get("/account")
        assert "Two-step verification" not in page.text and 'action="/account/totp/start"' not in page.text
        r = await client.post("/account/totp/start", data={"csrf": field(page.text, "csrf")}, headers=SAME_ORIGIN)
        assert r.status_code == 400


# -- step-up at /authorize ----------------------------------------------------------------


async def drive(client, rp_client, *, code: str | None = None, **extra):
    """/authorize through the pages; the code page gets ``code``. Returns (final query, verifier, pages seen)."""
    verifier, challenge = pkce_pair()
    r = await client.get("/authorize", params=auth_params(rp_client, challenge, **extra))
    seen = []
    for _ in range(8):
        assert r.status_code in (302, 303), (r.status_code, r.text[:300])
        location = r.headers["location"].removeprefix(ISSUER)
        if location.startswith("https://rp.example/"):
            return query(location), verifier, seen
        seen.append(location.split("?")[0])
        if location.startswith("/login?"):
            r = await sign_in(client, interaction=query(location)["interaction"])
        elif location.startswith("/login/factor"):
            page = await client.get(location)
            data = {"csrf": field(page.text, "csrf"), "code": code or ""}
            if 'name="interaction"' in page.text:
                data["interaction"] = field(page.text, "interaction")
            r = await client.post("/login/factor", data=data, headers=SAME_ORIGIN)
        else:
            r = await client.get(location)
    raise AssertionError("too many redirects")


async def token_claims(client, container, rp, q, verifier):
    rp_client, secret = rp
    r = await exchange(client, rp_client, secret, q["code"], verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    now = container.clock.now()
    _, idt = jwt.verify(container.keyring, body["id_token"], typ="JWT", issuer=ISSUER, audience=rp_client.client_id,
                        now=now)  # fmt: skip
    _, at = jwt.verify(container.keyring, body["access_token"], typ="at+jwt", issuer=ISSUER, audience=None, now=now)
    return idt, at


async def test_password_only_tokens_say_so(client, container, clock, alice, rp):
    q, verifier, _ = await drive(client, rp[0])
    idt, at = await token_claims(client, container, rp, q, verifier)
    assert (idt["acr"], idt["amr"]) == (ACR_SFA, ["pwd"]) and (at["acr"], at["amr"]) == (ACR_SFA, ["pwd"])
    with pytest.raises(AuthError) as refused:  # and a resource server asks for more (RFC 9470 §3)
        AuthRequirement(acr=(ACR_MFA,)).check(Principal.from_claims(at))
    assert (refused.value.error, refused.value.acr_values) == ("insufficient_user_authentication", ACR_MFA)


async def test_acr_values_steps_a_password_session_up(client, container, clock, alice, rp):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    q, verifier, seen = await drive(client, rp[0], code=now_code(secret, clock))  # a full sign-in: pwd + otp
    assert seen == ["/login", "/login/factor", "/authorize/resume"]
    # A session of the password alone (made as before enrolling): the RP asks for mfa, the code page steps it up.
    client.cookies.clear()
    cookie, _ = container.login_sessions.login(alice.id)
    client.cookies.set(SESSION_COOKIE, cookie, domain="idp.test")
    clock.advance(totp.STEP)
    q, verifier, seen = await drive(client, rp[0], code=now_code(secret, clock), acr_values=f"{ACR_MFA} {ACR_SFA}")
    assert seen == ["/login/factor", "/authorize/resume"], seen
    idt, at = await token_claims(client, container, rp, q, verifier)
    assert idt["acr"] == ACR_MFA and idt["amr"] == ["pwd", "otp", "mfa"]
    assert at["acr"] == ACR_MFA and at["amr"] == ["pwd", "otp", "mfa"]
    # A resource server's step-up rule (RFC 9470) accepts this access token.
    AuthRequirement(acr=(ACR_MFA,), amr=("otp",), max_age=60, now=clock.now).check(Principal.from_claims(at))
    # The stepped-up session answers the next such request without asking again.
    q, verifier, seen = await drive(client, rp[0], acr_values=ACR_MFA)
    assert seen == [] and "code" in q


async def test_acr_values_with_prompt_none_is_login_required(client, container, clock, alice, rp):
    await sign_in(client)
    await enrol_on_account_page(client, container, clock)
    cookie, _ = container.login_sessions.login(alice.id)
    client.cookies.set(SESSION_COOKIE, cookie, domain="idp.test")
    q, _, _ = await drive(client, rp[0], acr_values=ACR_MFA, prompt="none")
    assert q["error"] == "login_required"


async def test_acr_values_a_person_cannot_reach_are_voluntary(client, container, clock, alice, rp):
    await sign_in(client)
    q, verifier, seen = await drive(client, rp[0], acr_values=ACR_MFA)
    assert seen == []
    idt, _ = await token_claims(client, container, rp, q, verifier)
    assert idt["acr"] == ACR_SFA  # what really happened (OIDC Core §5.5.1.1: acr_values are voluntary)


async def test_max_age_asks_for_both_factors_again(client, container, clock, alice, rp):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    clock.advance(600)
    q, verifier, seen = await drive(client, rp[0], code=now_code(secret, clock), max_age="60")
    assert seen == ["/login", "/login/factor", "/authorize/resume"]
    idt, _ = await token_claims(client, container, rp, q, verifier)
    assert idt["amr"] == ["pwd", "otp", "mfa"] and clock.now() - idt["auth_time"] < 60


async def test_a_user_disabled_between_the_two_steps_is_not_signed_in(client, container, clock, alice):
    await sign_in(client)
    secret, _ = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    r = await sign_in(client)
    assert r.headers["location"] == "/login/factor"
    page = await client.get("/login/factor")
    container.user_admin.set_disabled("alice", True, actor="admin")
    r = await client.post("/login/factor", data={"csrf": field(page.text, "csrf"), "code": now_code(secret, clock)},
                          headers=SAME_ORIGIN)  # fmt: skip
    assert r.status_code == 400 and client.cookies.get(SESSION_COOKIE) is None


async def test_one_password_step_yields_one_session(client, container, clock, alice):
    """The second step is taken once: a second code on the same step (a replayed form) finds it gone."""
    await sign_in(client)
    _, codes = await enrol_on_account_page(client, container, clock)
    client.cookies.clear()
    await sign_in(client)
    step_cookie = client.cookies.get(SECOND_STEP_COOKIE)
    page = await client.get("/login/factor")
    csrf = field(page.text, "csrf")
    r = await client.post("/login/factor", data={"csrf": csrf, "code": codes[0]}, headers=SAME_ORIGIN)
    assert r.status_code == 303
    client.cookies.set(SECOND_STEP_COOKIE, step_cookie, domain="idp.test")
    r = await client.post("/login/factor", data={"csrf": csrf, "code": codes[1]}, headers=SAME_ORIGIN)
    assert r.status_code == 400
    assert len(container.login_sessions.list_for_user(alice.id)) == 2  # the enrolment's session and one more
