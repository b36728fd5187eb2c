"""docs/sessions-and-jwts.md runs as written: its commands and its code are the ones this test executes.

The guide's code blocks are excerpts of the files that run (examples/bff_apis.py, the SPA in
tests/browser/bff_spa/); its shell commands are run here, with the guide's ports swapped for free ones: ``idp
clients create`` through idp's CLI against the live idp's database, the two ``uvicorn --factory`` APIs with
their environment, and ``idp bff serve`` through the CLI's own parser and app builder with the ``export``
lines as its environment. A scripted browser signs in through the BFF; both APIs answer through it; "sign out
everywhere" at idp ends the BFF session by back-channel logout.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from idp.cli import bff as bff_cli
from idp.cli import build_parser, main
from idp.services import Services
from tests import oauthkit
from tests.docs.guidekit import DOCS, ROOT, Browser
from tests.docs.test_guides import embedded_only, idp, port, settings_overrides  # noqa: F401  (fixtures)
from tests.integration.live_server import LiveServer, free_port

pytestmark = pytest.mark.timing  # live servers; the back-channel logout on real time

GUIDE = DOCS / "sessions-and-jwts.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
GUIDE_PORTS = ("8000", "8080", "9001", "9002")  # idp, the BFF, orders, billing


def blocks(lang: str) -> list[str]:
    return [code for kind, code in FENCE.findall(GUIDE.read_text()) if kind == lang]


def commands() -> list[str]:
    """The guide's shell commands, continuation lines joined."""
    lines = "\n".join(blocks("sh")).replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if line.strip()]


def the(prefix: str, found: list[str]) -> str:
    [command] = [c for c in found if c.startswith(prefix) or f" {prefix}" in c]
    return command


def test_the_guides_code_is_the_code_that_runs() -> None:
    apis = (ROOT / "examples" / "bff_apis.py").read_text()
    spa = (ROOT / "tests" / "browser" / "bff_spa" / "app.js").read_text()
    for code in blocks("python"):
        assert code in apis, code
    for code in blocks("js") + blocks("html"):
        assert code.strip() in spa, code
    assert len(blocks("python")) == 1 and len(blocks("js")) == 4
    found = commands()
    assert found[0] == "make run"
    for factory in ("orders_from_env", "billing_from_env"):
        assert f"examples.bff_apis:{factory}" in the("uvicorn", [c for c in found if factory in c])
    text = GUIDE.read_text()
    for link in ("docs/bff.md", "docs/configuration.md", "tests/browser/test_bff_browser.py"):
        assert link in text, link
    assert "docs/sessions-and-jwts.md" in (ROOT / "README.md").read_text()
    assert "(sessions-and-jwts.md)" in (DOCS / "bff.md").read_text()


class Ports:
    """The guide's ports, each mapped to a free one."""

    def __init__(self, idp_port: int) -> None:
        self.map = dict(zip(GUIDE_PORTS, (idp_port, free_port(), free_port(), free_port()), strict=True))

    def __getitem__(self, guide_port: str) -> int:
        return self.map[guide_port]

    def swap(self, command: str) -> str:
        return re.sub(r"\b(8000|8080|9001|9002)\b", lambda m: str(self.map[m.group(1)]), command)


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    running: list[LiveServer] = []
    yield running
    for server in reversed(running):
        server.stop()


def run_api(command: str, monkeypatch: pytest.MonkeyPatch, servers: list[LiveServer]) -> None:
    """``NAME=VALUE ... uvicorn --factory MODULE:FUNCTION --port N`` (uvicorn in a thread of this process)."""
    words = shlex.split(command)
    at = words.index("uvicorn")
    for assignment in words[:at]:
        name, _, value = assignment.partition("=")
        monkeypatch.setenv(name, value)
    args = words[at + 1 :]
    assert args[0] == "--factory" and args[2] == "--port" and len(args) == 4, args
    module, _, function = args[1].partition(":")
    app = getattr(importlib.import_module(module), function)()
    servers.append(LiveServer(app, int(args[3])).start())


def test_the_guide_runs(
    idp: LiveServer,  # noqa: F811
    container: Services,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    servers: list[LiveServer],
) -> None:
    ports = Ports(idp.port)
    found = [ports.swap(c) for c in commands()]
    user = oauthkit.make_user(container)

    # 2. Register the BFF: the guide's command, through idp's CLI, into the live idp's database.
    oauthkit.cli_environment(monkeypatch, container.settings)
    create = shlex.split(the("idp clients create", found))
    assert main(create[1:]) == 0
    created = json.loads(capsys.readouterr().out)
    client = container.clients.get(created["client_id"])
    assert client is not None and "https://billing.example" in client.token_exchange_audiences

    # ...or the admin API with the guide's body: the same client.
    [body] = blocks("json")
    made = by_admin_api(container, idp.url, json.loads(ports.swap(body)))
    for field in FIELDS:
        assert getattr(made, field) == getattr(client, field), field

    # 3. The two APIs, as the guide starts them.
    for command in [c for c in found if " uvicorn " in c]:
        run_api(command, monkeypatch, servers)

    # 4. The BFF: the export lines are its environment, the serve line goes through the CLI's parser.
    for command in [c for c in found if c.startswith("export ")]:
        for assignment in shlex.split(command)[1:]:
            name, _, value = assignment.partition("=")
            value = {"<client_id>": created["client_id"], "<client_secret>": created["client_secret"]}.get(value, value)
            monkeypatch.setenv(name, value)
    serve = shlex.split(the("idp bff serve", found))
    args = build_parser().parse_args(serve[1:])
    assert args.port == ports["8080"] and args.static == Path("tests/browser/bff_spa")
    monkeypatch.chdir(ROOT)
    servers.append(LiveServer(bff_cli.build_app(args), args.port).start())
    bff = f"http://localhost:{args.port}"

    # 5. Sign in (the hosted login page), then both APIs through the BFF with X-CSRF: 1.
    browser = Browser(user.username, oauthkit.PASSWORD)
    try:
        page = browser.visit(f"{bff}/bff/login?returnTo=/")
        assert page.status_code == 200 and str(page.url) == f"{bff}/", browser.visited
        assert "__Host-bff" in browser.cookies

        def call(path: str, **headers: str) -> httpx.Response:
            cookie = f"__Host-bff={browser.cookies['__Host-bff']}"
            return httpx.get(f"{bff}{path}", headers={"cookie": cookie, **headers})

        orders = call("/orders/mine", **{"X-CSRF": "1"})
        assert orders.status_code == 200, orders.text
        assert "https://orders.example" in as_list(orders.json()["aud"]) and orders.json()["sub"] == user.id
        billing = call("/billing/invoices", **{"X-CSRF": "1"})
        assert billing.status_code == 200, billing.text
        body = billing.json()
        assert body["aud"] == "https://billing.example" and body["sub"] == user.id
        assert body["act"] == {"sub": client.client_id, "client_id": client.client_id}
        refused = call("/orders/mine")
        assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"

        # 7. Sign out everywhere at idp: the back-channel logout ends the BFF's session; the next call is a 401.
        container.account.sign_out_everywhere(user.id)
        deadline = time.monotonic() + 5
        while (r := call("/orders/mine", **{"X-CSRF": "1"})).status_code != 401:
            assert r.status_code == 200 and time.monotonic() < deadline, "the BFF session outlived sign-out"
            time.sleep(0.05)
        assert r.json()["error"] == "session_required"
    finally:
        browser.close()


FIELDS = ("kind", "first_party", "scope", "redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri",
          "audience", "grant_types", "token_exchange_audiences")  # fmt: skip


def by_admin_api(container: Services, issuer: str, body: dict[str, Any]) -> Any:
    """POST /admin/clients with a token the ops client gets by client credentials, as docs/operations.md does."""
    from idp.web.admin.auth import ADMIN_SCOPE, admin_audience

    ops, secret = container.clients.create(
        name="ops", kind="service", scope=ADMIN_SCOPE, audience=admin_audience(container.settings.issuer)
    )
    r = httpx.post(f"{issuer}/token", data={"grant_type": "client_credentials"}, auth=(ops.client_id, secret or ""))
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{issuer}/admin/clients", json=body, headers={"authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert r.status_code == 201, r.text
    made = container.clients.get(r.json()["client_id"])
    assert made is not None
    return made


def as_list(aud: Any) -> list[str]:
    return [aud] if isinstance(aud, str) else list(aud)
