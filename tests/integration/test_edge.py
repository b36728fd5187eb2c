"""idp.web.middleware.Edge: the static documents answered before the router keep every header, log line and
metric a routed response has; the body cap and the token endpoint's access line still work in the one layer."""

from __future__ import annotations

import httpx
import pytest

from idp.services import Services
from tests.oauthkit import basic, service_client
from tests.obskit import capture_logs, sample

METRICS_TOKEN = "scrape-token-for-edge-tests-0123456789"
STATIC = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"metrics_token": METRICS_TOKEN}


async def scrape(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})).text


@pytest.mark.parametrize("path", STATIC)
async def test_static_documents_carry_every_header(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path, headers={"x-request-id": "edge-1"})
    assert r.status_code == 200 and r.json()
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-request-id"] == "edge-1"
    assert r.headers["cache-control"].startswith("public, max-age=")
    assert r.headers["etag"].startswith('"')
    assert "content-security-policy" not in r.headers  # JSON, not HTML


@pytest.mark.parametrize("path", STATIC)
async def test_static_documents_answer_head_and_conditional_get(client: httpx.AsyncClient, path: str) -> None:
    full = await client.get(path)
    head = await client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == full.headers["etag"]
    assert head.headers["content-length"] == full.headers["content-length"]
    for inm in (full.headers["etag"], f'"other", W/{full.headers["etag"]}'):
        r = await client.get(path, headers={"if-none-match": inm})
        assert r.status_code == 304 and r.content == b""
        assert r.headers["etag"] == full.headers["etag"] and r.headers["x-content-type-options"] == "nosniff"
        assert "content-type" not in r.headers and r.headers["x-request-id"]
    assert (await client.get(path, headers={"if-none-match": '"other"'})).status_code == 200


async def test_static_documents_are_logged_and_counted_by_route(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        await client.get("/jwks.json", headers={"x-request-id": "edge-2"})
        etag = (await client.get("/.well-known/openid-configuration")).headers["etag"]
        await client.get("/.well-known/openid-configuration", headers={"if-none-match": etag})
    lines = logs.access()
    assert [(x["endpoint"], x["status"], x["method"]) for x in lines] == [
        ("/jwks.json", 200, "GET"),
        ("/.well-known/openid-configuration", 200, "GET"),
        ("/.well-known/openid-configuration", 304, "GET"),
    ]
    assert lines[0]["request_id"] == "edge-2"
    text = await scrape(client)
    assert sample(text, "idp_http_requests_total", endpoint="/jwks.json", status="200") == 1
    assert sample(text, "idp_http_requests_total", endpoint="/.well-known/openid-configuration", status="304") == 1


async def test_jwks_answer_follows_the_keyring(client: httpx.AsyncClient, container: Services) -> None:
    first = await client.get("/jwks.json")
    nxt = container.keyring.rotate("ES256")
    container.keyring.refresh(force=True)
    second = await client.get("/jwks.json", headers={"if-none-match": first.headers["etag"]})
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    assert nxt.kid in {k["kid"] for k in second.json()["keys"]}
    assert int(second.headers["content-length"]) == len(second.content)


async def test_other_methods_on_static_paths_still_reach_the_router(client: httpx.AsyncClient) -> None:
    r = await client.post("/jwks.json")
    assert r.status_code == 405 and r.headers["x-content-type-options"] == "nosniff"


async def test_a_streamed_body_over_the_cap_is_413_with_headers_and_logged(client: httpx.AsyncClient) -> None:
    async def chunks():  # no content-length: the cap applies while the body is read
        for _ in range(70):
            yield b"x" * 1024

    with capture_logs() as logs:
        r = await client.post("/token", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json()["error"] == "invalid_request"
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-request-id"]
    (line,) = logs.access()
    assert line["status"] == 413 and line["endpoint"] == "/token"


async def test_token_access_line_and_metric_name_the_authenticated_client(
    client: httpx.AsyncClient, container: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, secret = service_client(container)
    before = sample(await scrape(client), "idp_tokens_issued_total", client_type="service") or 0
    with capture_logs() as logs:
        r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    assert r.status_code == 200
    (line,) = logs.access()
    assert line["client_id"] == svc.client_id and line["status"] == 200
    # The token endpoint recorded the client's type: the middleware had no need to look the client up again.
    monkeypatch.setattr(container.clients, "peek", lambda client_id: None)
    r = await client.post("/token", data={"grant_type": "client_credentials"}, headers=basic(svc.client_id, secret))
    assert r.status_code == 200
    text = await scrape(client)
    assert sample(text, "idp_tokens_issued_total", grant_type="client_credentials", client_type="service") == before + 2
