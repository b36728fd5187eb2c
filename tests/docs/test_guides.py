"""Every guide in docs/ runs: its ```python title="…" test``` blocks are executed against a live idp.

The IdP runs under uvicorn on a loopback port (issuer ``http://127.0.0.1:PORT``); the
snippets use plain ``httpx`` (or Authlib, or ``idp.resource``) exactly as a reader would,
configured through the environment variables they document. A scripted browser plays the
person signing in.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from idp.services import Services
from tests import oauthkit
from tests.docs.guidekit import DOCS, Browser, run_snippets, snippets
from tests.dpop_client import DPoPAuth, DPoPKey
from tests.integration.live_server import LiveServer, free_port
from tests.integration.resource_support import idp_server

# Authlib's Starlette client (the web-app guide) imports its httpx integration, which Authlib now deprecates.
pytestmark = [
    pytest.mark.timing,  # the guides run against a live server
    pytest.mark.filterwarnings("ignore:The httpx module is deprecated:DeprecationWarning"),
]

GUIDES = ["native-apps.md", "integrators.md", "web-apps.md", "resource-servers.md"]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def settings_overrides(port: int) -> dict[str, object]:
    return {"issuer": f"http://127.0.0.1:{port}"}


@pytest.fixture
def embedded_only(backend) -> None:
    if backend.name != "embedded":
        pytest.skip("the guides describe client behaviour; the embedded server is enough to run them")


@pytest.fixture
def idp(embedded_only: None, container: Services, port: int) -> Iterator[LiveServer]:
    server = idp_server(container, port).start()  # stopping it first ends its deny-list streams
    try:
        yield server
    finally:
        server.stop()


def background_browser(browser: Browser):
    """``open_browser`` for the snippets: like webbrowser.open, it returns at once."""
    failures: list[BaseException] = []

    def visit(url: str) -> None:
        try:
            browser.visit(url)
        except BaseException as exc:  # unblock the app's loopback listener, then report
            failures.append(exc)
            redirect = parse_qs(urlsplit(url).query).get("redirect_uri", [""])[0]
            if redirect.startswith("http://127.0.0.1"):
                httpx.get(redirect, params={"error": "browser_failed"})

    def open_browser(url: str) -> bool:
        threading.Thread(target=visit, args=(url,), daemon=True).start()
        return True

    return open_browser, failures


def test_every_guide_has_a_tested_snippet_and_links_the_configuration_reference() -> None:
    for guide in GUIDES:
        assert snippets(guide), guide
        assert "configuration.md" in (DOCS / guide).read_text(), guide
    ops = (DOCS / "operations.md").read_text()
    for topic in ("Backup", "a signing key leaked", "a user's phone was stolen", "Redis", "configuration.md"):
        assert topic in ops, topic


def test_native_app_guide(idp: LiveServer, container: Services, monkeypatch) -> None:
    oauthkit.make_user(container)
    app = oauthkit.native_client(container, first_party=False)  # third party: the person consents
    monkeypatch.setenv("IDP_ISSUER", idp.url)
    monkeypatch.setenv("IDP_CLIENT_ID", app.client_id)
    guide = run_snippets("native-apps.md")
    browser = Browser("alice", oauthkit.PASSWORD)
    open_browser, failures = background_browser(browser)

    tokens = guide["sign_in"](open_browser=open_browser)
    assert not failures
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)

    first = guide["refresh"](tokens)
    retried = guide["refresh"](tokens)  # the response was "lost": the same token again, inside the grace window
    assert retried["refresh_token"] == first["refresh_token"]
    second = guide["refresh"](first)
    assert second["refresh_token"] != first["refresh_token"]

    container.clock.advance(container.settings.refresh_grace_seconds + 1)
    with pytest.raises(guide["SignInAgain"]):
        guide["refresh"](tokens)  # replayed after the window: theft assumed...
    with pytest.raises(guide["SignInAgain"]):
        guide["refresh"](second)  # ...and the whole family is revoked


def test_native_app_guide_with_dpop(idp: LiveServer, container: Services, monkeypatch) -> None:
    from idp.resource.dpop import HmacNonces

    oauthkit.make_user(container)
    app = oauthkit.native_client(container, first_party=False, dpop_bound_access_tokens=True)
    monkeypatch.setenv("IDP_ISSUER", idp.url)
    monkeypatch.setenv("IDP_CLIENT_ID", app.client_id)
    monkeypatch.setattr(container.dpop, "nonces", HmacNonces(b"n" * 32, now=container.clock.now))  # the retry
    guide = run_snippets("native-apps.md")
    browser = Browser("alice", oauthkit.PASSWORD)
    open_browser, failures = background_browser(browser)
    key = guide["DPoP"]()

    tokens = guide["sign_in"](open_browser=open_browser, dpop=key)
    assert not failures
    assert tokens["token_type"] == "DPoP" and claims_of(tokens["access_token"])["cnf"]["jkt"] == key.key.thumbprint()
    assert guide["userinfo"](tokens, key)["sub"]
    first = guide["refresh"](tokens, dpop=key)
    assert first["token_type"] == "DPoP"
    with pytest.raises(guide["SignInAgain"]):
        guide["refresh"](first)  # bound to the key: no proof, no tokens
    with pytest.raises(guide["SignInAgain"]):
        guide["refresh"](first, dpop=guide["DPoP"]())  # nor with another key
    assert guide["refresh"](first, dpop=key)["refresh_token"] != first["refresh_token"]


def claims_of(token: str) -> dict:
    import base64

    import orjson

    return orjson.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def test_integrator_guide(idp: LiveServer, container: Services, monkeypatch) -> None:
    from joserfc.jwk import ECKey

    monkeypatch.setenv("IDP_ISSUER", idp.url)
    guide = run_snippets("integrators.md")
    TokenClient = guide["TokenClient"]

    svc, secret = oauthkit.service_client(container, scope="api:read api:write", audience="https://api.example.com")
    now = [1_000.0]
    tc = TokenClient(svc.client_id, secret=secret, scope="api:read", clock=lambda: now[0])
    first = tc.access_token()
    assert tc.access_token() == first  # cached: no second request
    claims = claims_of(first)
    assert claims["aud"] == "https://api.example.com" and claims["client_id"] == svc.client_id
    assert claims["scope"] == "api:read"
    now[0] += claims["exp"] - claims["iat"] - 59  # inside the last minute: renewed
    assert tc.access_token() != first

    key = ECKey.generate_key("P-256", parameters={"kid": "billing-1", "alg": "ES256", "use": "sig"})
    jwt_client, none = container.clients.create(
        name="Billing sync", kind="service", scope="api:read", audience="https://api.example.com",
        auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]},
    )  # fmt: skip
    assert none is None  # nothing secret is stored or shown
    tc = TokenClient(jwt_client.client_id, private_key_pem=key.as_pem(private=True), key_id="billing-1")
    token = tc.access_token()
    assert claims_of(token)["client_id"] == jwt_client.client_id
    tc.forget()
    assert tc.access_token() != token  # a fresh assertion (new jti) is accepted again


def test_web_app_guide(idp: LiveServer, container: Services, monkeypatch) -> None:
    rp_port = free_port()
    app_url = f"http://127.0.0.1:{rp_port}"
    user = oauthkit.make_user(container)
    web, secret = container.clients.create(
        name="Shop", kind="web", scope="openid profile email",
        redirect_uris=[f"{app_url}/callback"], post_logout_redirect_uris=[f"{app_url}/"],
        backchannel_logout_uri=f"{app_url}/backchannel-logout",  # loopback: allowed on a loopback issuer
    )  # fmt: skip
    for name, value in {
        "IDP_ISSUER": idp.url, "IDP_CLIENT_ID": web.client_id, "IDP_CLIENT_SECRET": secret or "",
        "APP_URL": app_url, "APP_SESSION_SECRET": "test-only-session-secret-0123456789",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    guide = run_snippets("web-apps.md")
    rp = LiveServer(guide["app"], rp_port).start()
    browser = Browser("alice", oauthkit.PASSWORD)
    try:
        page = browser.visit(f"{app_url}/login")  # idp login, consent, back to the app
        assert page.status_code == 200 and "Hello Alice!" in page.text, browser.visited
        assert len(container.login_sessions.list_for_user(user.id)) == 1
        # Back-channel logout: "sign out everywhere" at idp ends the app's session too, without the browser.
        (session,) = container.login_sessions.list_for_user(user.id)
        container.account.sign_out_everywhere(user.id)
        wait_for(lambda: session.sid in guide["ENDED_SIDS"])
        assert "Sign in" in browser.visit(f"{app_url}/").text
        check_logout_token_validation(container, guide, f"{app_url}/backchannel-logout", web.client_id)
        page = browser.visit(f"{app_url}/login")
        assert "Hello Alice!" in page.text, browser.visited
        page = browser.visit(f"{app_url}/logout")
        assert "Sign in" in page.text, browser.visited
        assert container.login_sessions.list_for_user(user.id) == []  # idp's session ended too
    finally:
        browser.close()
        rp.stop()


def dpop_only(app: object, client_id: str, secret: str, issuer: str, bearer: str) -> None:
    """The guide's DPoP-only API: a DPoP-bound token with its proofs works, the same token as Bearer does not."""
    key = DPoPKey("ES256")
    r = httpx.post(f"{issuer}/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret),
                   headers={"dpop": key.proof("POST", f"{issuer}/token")})  # fmt: skip
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    bound = r.json()["access_token"]
    api = LiveServer(app, free_port()).start()
    try:
        url = f"http://127.0.0.1:{api.port}/orders"
        r = httpx.get(url, auth=DPoPAuth(key, bound))
        assert r.status_code == 200, r.text
        r = httpx.get(url, headers={"authorization": f"Bearer {bound}"})  # RFC 9449 §7.2
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        r = httpx.get(url, headers={"authorization": f"Bearer {bearer}"})  # dpop_required: no bearer tokens
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("DPoP ")
    finally:
        api.stop()


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def check_logout_token_validation(container: Services, guide: dict, url: str, client_id: str) -> None:
    """The guide's receiver applies BCL §2.6: each rule broken once is a 400; a good token ends the session."""
    from idp.tokens import jwt as idp_jwt
    from idp.tokens.logout_token import EVENT

    def token(typ: str = "logout+jwt", alg: str = "RS256", drop: tuple[str, ...] = (), **changes) -> str:
        now = int(container.clock.now())
        claims = {
            "iss": container.settings.issuer, "aud": client_id, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(8), "sid": "sid-" + secrets.token_hex(4), "events": {EVENT: {}},
        }  # fmt: skip
        claims = {k: v for k, v in (claims | changes).items() if k not in drop}
        return idp_jwt.sign(container.keyring, alg, typ, claims)

    def post(logout_token: str) -> httpx.Response:
        return httpx.post(url, data={"logout_token": logout_token})

    bad = {
        "an ID token": token(typ="JWT"),
        "another audience": token(aud="someone-else"),
        "another issuer": token(iss="https://evil.example"),
        "expired": token(exp=int(container.clock.now()) - 3600),
        "no events": token(drop=("events",)),
        "another event": token(events={"http://schemas.openid.net/event/other": {}}),
        "a nonce": token(nonce="n-1"),
        "neither sid nor sub": token(drop=("sid",)),
        "no jti": token(drop=("jti",)),
        "another algorithm": token(alg="ES256"),
        "not signed by idp": token()[:-4] + "AAAA",
    }
    for why, logout_token in bad.items():
        r = post(logout_token)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", why
    assert post("").status_code == 400
    good = token()
    assert post(good).status_code == 200 and idp_jwt.peek_header(good)["typ"] == "logout+jwt"
    assert post(good).status_code == 400  # the same jti again: a replay
    only_sub = token(drop=("sid",), sub="someone")
    assert post(only_sub).status_code == 200 and "someone" in guide["ENDED_SUBS"]


def test_resource_server_guide(idp: LiveServer, container: Services, monkeypatch) -> None:
    api_port = free_port()
    monkeypatch.setenv("IDP_ISSUER", idp.url)
    monkeypatch.setenv("API_AUDIENCE", "https://api.example.com")
    api_client, api_secret = oauthkit.service_client(  # what the guide's `idp clients create` registers
        container, name="Orders API", scope="deny-list:read", audience="https://api.example.com"
    )
    monkeypatch.setenv("API_CLIENT_ID", api_client.client_id)
    monkeypatch.setenv("API_CLIENT_SECRET", api_secret)
    guide = run_snippets("resource-servers.md")
    reader, secret = oauthkit.service_client(container, scope="orders:read", audience="https://api.example.com")
    other_api, other_secret = oauthkit.service_client(container, scope="orders:read", audience="https://other.example")

    def token(client_id: str, secret: str) -> str:
        r = httpx.post(f"{idp.url}/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert r.status_code == 200, r.text
        return r.json()["access_token"]

    api = LiveServer(guide["app"], api_port).start()
    try:
        url = f"http://127.0.0.1:{api_port}/orders"
        access = token(reader.client_id, secret)
        r = httpx.get(url, headers={"authorization": f"Bearer {access}"})
        assert r.status_code == 200 and r.json()["via"] == reader.client_id
        r = httpx.post(url, headers={"authorization": f"Bearer {access}"})
        assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
        r = httpx.get(url, headers={"authorization": f"Bearer {token(other_api.client_id, other_secret)}"})
        assert r.status_code == 401  # a token for another API
        assert httpx.get(url).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{api_port}/health").status_code == 200

        dpop_only(guide["dpop_app"], reader.client_id, secret, idp.url, access)

        container.clock.advance(1)
        container.denylist.deny("client", reader.client_id, reason="leaked secret", actor="test")  # idp pushes it
        deadline = time.monotonic() + 2.0
        while httpx.get(url, headers={"authorization": f"Bearer {access}"}).status_code != 401:
            assert time.monotonic() < deadline, "the deny-list entry did not reach the API within 2 s"
            time.sleep(0.02)
    finally:
        api.stop()
