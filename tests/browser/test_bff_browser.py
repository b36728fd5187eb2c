"""The BFF in a real browser: Chromium runs a small SPA (tests/browser/bff_spa/) served by the BFF, which signs
the person in at idp's hosted login and proxies to two APIs (examples/bff_apis.py), one forwarded, one
exchanged (RFC 8693). Everything is live on loopback: idp on 127.0.0.1, the BFF on localhost (another host, so
the two keep their cookies apart; Chromium treats both as secure contexts and keeps ``__Host-`` cookies over
plain http there), the APIs on their own ports. idp, the BFF and the APIs share one clock that runs with real
time and can be moved ahead, so the access token lapses without waiting for it (the BFF checks ID tokens on
the system clock, Authlib's, with 60 s of leeway: after such a move no new sign-in works, hence a fresh stack
per test). Response bodies are read as they arrive: Chromium drops a body once the page navigates away, and
keeps a response unfinished while its script has not read it (the SPA reads every answer).
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from examples.bff_apis import create_api
from idp.app import create_app
from idp.bff.app import create_bff_app
from idp.bff.config import BffSettings, new_key
from idp.bff.session import BffSession
from idp.config import Settings
from idp.resource import ResourceProtector
from idp.services import Services, build_services
from idp.tokens.jwt import LEEWAY
from tests.browser.conftest import PASSWORD
from tests.integration.bff_support import rotations
from tests.integration.live_server import LiveServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.timing]  # live servers; the back-channel logout on real time

SPA = Path(__file__).parent / "bff_spa"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+")
COOKIE = "__Host-bff"


class OffsetClock:
    """The system clock plus an offset the test moves ahead (shared by idp, the BFF and the APIs)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Recorder:
    """ASGI wrapper: counts the requests to one path and keeps the bearer tokens that came in (an API answering
    them back would hand them to the browser, so the APIs do not; the test checks the pages against them)."""

    def __init__(self, app: Any, path: str = "") -> None:
        self.app, self.path = app, path
        self.answered: list[int] = []  # the statuses of the requests to ``path``
        self.tokens: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        if auth.startswith("Bearer "):
            self.tokens.append(auth.removeprefix("Bearer "))
        if not self.path or scope["path"] != self.path:
            return await self.app(scope, receive, send)

        async def noted(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.answered.append(message["status"])
            await send(message)

        await self.app(scope, receive, noted)


@dataclass
class Stack:
    idp: str  # idp's origin (the issuer)
    bff: str  # the BFF's origin, the SPA's too
    container: Services
    clock: OffsetClock
    client_id: str
    orders_aud: str
    billing_aud: str
    bff_server: LiveServer
    bff_app: Any
    backchannel: Recorder
    orders: Recorder
    billing: Recorder

    def bff_run(self, coro: Any) -> Any:
        """Run a coroutine on the BFF's own event loop (its store lives there)."""
        loop = self.bff_server._loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    def session(self, cookie: str) -> BffSession | None:
        bff = self.bff_app.state.bff
        return self.bff_run(bff.store.get(bff.crypto.store_key(cookie)))  # type: ignore[no-any-return]


@pytest.fixture
def stack(sqlite_template: Path, tmp_path: Path, chromium: str) -> Iterator[Stack]:
    """idp, the two APIs and the BFF, live, fresh for each test (the clock is moved ahead in one)."""
    tmp = tmp_path
    db = tmp / "idp.sqlite3"
    shutil.copy(sqlite_template, db)
    clock = OffsetClock()
    idp_port, bff_port, orders_port, billing_port = free_port(), free_port(), free_port(), free_port()
    issuer, origin = f"http://127.0.0.1:{idp_port}", f"http://localhost:{bff_port}"
    orders_aud, billing_aud = "https://orders.example", "https://billing.example"  # API identifiers, not places
    settings = Settings(
        issuer=issuer, database_url=f"sqlite:///{db}",
        kek=base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(), kek_file=tmp / "kek",
        data_dir=tmp, demo=False, backchannel_logout_allow_loopback=True,
    )  # type: ignore[call-arg]  # fmt: skip
    c = build_services(settings, clock=clock)
    client, secret = c.clients.create(
        name="Shop", kind="web", first_party=True, scope="openid profile email offline_access",
        redirect_uris=[f"{origin}/bff/callback"], post_logout_redirect_uris=[f"{origin}/"],
        # idp posts logout tokens to the BFF's listener (server to server: no browser, no name to resolve)
        backchannel_logout_uri=f"http://127.0.0.1:{bff_port}/bff/backchannel",
        audience=orders_aud,  # the forwarded upstream takes the session's own token
        grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
        token_exchange_audiences=[billing_aud],  # the exchanged one gets a token of its own
    )  # fmt: skip
    c.directory.create("alice", PASSWORD, email="alice@example.com", name="Alice Liddell")
    idp = LiveServer(create_app(services=c), idp_port, before_stop=c.denylist_feed.close).start()

    orders = Recorder(create_api("orders", ResourceProtector(issuer=issuer, audience=orders_aud, follow=False,
                                                             clock=clock)))  # fmt: skip
    billing = Recorder(create_api("billing", ResourceProtector(issuer=issuer, audience=billing_aud, follow=False,
                                                               clock=clock)))  # fmt: skip
    apis = [LiveServer(orders, orders_port).start(), LiveServer(billing, billing_port).start()]
    bff_settings = BffSettings(
        issuer=issuer, client_id=client.client_id, client_secret=secret or "", origin=origin,
        encryption_key=new_key(),
        upstreams=f"/orders=http://127.0.0.1:{orders_port} /billing=http://127.0.0.1:{billing_port};exchange={billing_aud}",
    )  # type: ignore[call-arg]  # fmt: skip
    bff_app = create_bff_app(bff_settings, clock=clock, static_dir=SPA)
    backchannel = Recorder(bff_app, "/bff/backchannel")
    bff = LiveServer(backchannel, bff_port).start()
    try:
        yield Stack(issuer, origin, c, clock, client.client_id, orders_aud, billing_aud, bff, bff_app,
                    backchannel, orders, billing)  # fmt: skip
    finally:
        bff.stop()
        for api in apis:
            api.stop()
        idp.stop()
        c.close()


@pytest.fixture
def page(stack: Stack, browser: Any) -> Iterator[Any]:
    """A fresh browser profile with JavaScript on (the SPA is a script); the hosted pages open in it too."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def call(page: Any, *paths: str) -> list[dict[str, Any]]:
    """The SPA's callApi for each path, all at once (Promise.all): [{status, body}, ...]."""
    return page.evaluate("paths => Promise.all(paths.map(p => window.callApi(p)))", list(paths))  # type: ignore[no-any-return]


def test_spa_through_the_bff_sign_in_two_apis_refresh_once_sign_out_everywhere(stack: Stack, page: Any, shot) -> None:
    pending: list[Any] = []
    bodies: list[tuple[str, bytes]] = []

    def drain() -> None:
        """Read the bodies of the responses received so far: before each navigation, which makes a document's
        body unavailable (redirects have none; a Location the browser follows is not shown to script)."""
        while pending:
            response = pending.pop(0)
            if not 300 <= response.status < 400:
                bodies.append((response.url, response.body()))

    page.context.on("response", lambda response: pending.append(response))  # the SPA's pages and idp's

    # Signed out: the SPA offers to sign in; the link goes through /bff/login to idp's hosted login page.
    page.goto(f"{stack.bff}/")
    page.get_by_role("link", name="Sign in").wait_for()
    drain()
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_url(f"{stack.idp}/login?*")
    shot(page, "bff-01-idp-login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    drain()
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{stack.bff}/")
    page.get_by_text("Signed in as Alice Liddell").wait_for()

    # The session is an HttpOnly __Host- cookie: script sees no cookie at all.
    assert page.evaluate("document.cookie") == ""
    [cookie] = [c for c in page.context.cookies(stack.bff) if c["name"] == COOKIE]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["path"] == "/" and cookie["sameSite"] == "Lax"
    session = stack.session(cookie["value"])
    assert session is not None
    sub = session.sub

    # Both APIs answer: orders with the session's own token, billing with an exchanged one naming the BFF.
    orders, billing = call(page, "/orders/mine", "/billing/invoices")
    assert orders["status"] == 200 and billing["status"] == 200, (orders, billing)
    assert orders["body"]["api"] == "orders" and stack.orders_aud in as_list(orders["body"]["aud"])
    assert orders["body"]["sub"] == sub and orders["body"].get("act") is None
    assert billing["body"]["aud"] == stack.billing_aud and billing["body"]["sub"] == sub
    assert stack.orders_aud not in as_list(billing["body"]["aud"])
    assert billing["body"]["act"] == {"sub": stack.client_id, "client_id": stack.client_id}  # RFC 8693 §4.1
    assert stack.orders.tokens == [session.tokens.access_token]
    assert stack.billing.tokens[0] != session.tokens.access_token
    page.get_by_role("button", name="Call billing").click()
    page.get_by_text('"api": "billing"').wait_for()
    shot(page, "bff-02-spa-signed-in")
    assert rotations(stack.container, stack.client_id) == (0, 0)

    # Past the access token's expiry (and the APIs' leeway): eight calls at once, one refresh at idp.
    stack.clock.advance(session.tokens.access_expires_at - stack.clock.now() + LEEWAY + 1)
    answers = call(page, *[f"/orders/o/{i}" for i in range(4)], *[f"/billing/i/{i}" for i in range(4)])
    assert [a["status"] for a in answers] == [200] * 8, answers
    assert rotations(stack.container, stack.client_id) == (1, 0)  # one refresh at idp, no token used twice
    renewed = stack.session(cookie["value"])
    assert renewed is not None and renewed.tokens.refresh_token != session.tokens.refresh_token
    assert set(stack.orders.tokens[1:]) == {renewed.tokens.access_token}
    assert len(set(stack.billing.tokens)) == 2  # one exchange per subject token

    # "Sign out everywhere" on idp's account page, in the same browser: the back-channel logout reaches the
    # BFF, and the SPA's next call is refused.
    account = page.context.new_page()
    account.goto(f"{stack.idp}/account")
    shot(account, "bff-03-idp-account")
    drain()
    account.get_by_role("button", name="Sign out everywhere").click()
    clicked = time.monotonic()
    account.wait_for_url(f"{stack.idp}/logout/done?everywhere=1")
    status = None
    while status != 401:
        assert time.monotonic() - clicked < 5.0, "the SPA's session outlived sign-out everywhere by 5 s"
        [answer] = call(page, "/orders/mine")
        status = answer["status"]
        if status != 401:
            assert status == 200
            time.sleep(0.05)
    ended_after = time.monotonic() - clicked
    print(f"\nsign out everywhere -> the SPA's call answered 401 after {ended_after:.3f} s")
    assert answer["body"]["error"] == "session_required"
    assert 200 in stack.backchannel.answered and stack.session(cookie["value"]) is None  # the logout token took
    page.get_by_text("Your session has ended").wait_for()
    shot(page, "bff-04-spa-session-ended")
    drain()
    account.close()

    # No token ever reached the page's script: not in a response body it received, in no JWT shape at all.
    tokens = {session.tokens.access_token, session.tokens.id_token, renewed.tokens.access_token,
              renewed.tokens.id_token, *stack.billing.tokens, *stack.orders.tokens}  # fmt: skip
    secrets_ = [t for t in tokens if t] + [t for t in (session.tokens.refresh_token, renewed.tokens.refresh_token) if t]
    drain()
    assert len(bodies) > 10
    for url, body in bodies:
        text = body.decode("utf-8", "replace")
        assert not JWT.search(text), url
        for token in secrets_:
            assert token not in text and token[-32:] not in text, url


def as_list(aud: str | list[str]) -> list[str]:
    return [aud] if isinstance(aud, str) else list(aud)


def test_sign_out_from_the_spa_ends_both_sessions_and_lands_on_the_spa(stack: Stack, page: Any, shot) -> None:
    """The SPA's "Sign out" is a navigation to /bff/user's logout_url: the BFF ends its session and sends the
    browser to idp's end-session endpoint (the ID token as hint, in a Location script never sees), which ends
    idp's session and returns to the SPA, signed out."""
    page.goto(f"{stack.bff}/")
    page.get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_text("Signed in as Alice Liddell").wait_for()
    [cookie] = [c for c in page.context.cookies(stack.bff) if c["name"] == COOKIE]
    session = stack.session(cookie["value"])
    assert session is not None
    sub = session.sub
    assert len(stack.container.login_sessions.list_for_user(sub)) == 1

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda url: url.startswith(f"{stack.bff}/?state="))  # idp's post-logout redirect
    page.get_by_role("link", name="Sign in").wait_for()
    shot(page, "bff-05-spa-signed-out")
    assert stack.session(cookie["value"]) is None
    assert not [c for c in page.context.cookies(stack.bff) if c["name"] == COOKIE]
    assert stack.container.login_sessions.list_for_user(sub) == []  # idp's session ended too
    [answer] = call(page, "/orders/mine")
    assert answer["status"] == 401 and answer["body"]["error"] == "session_required"
