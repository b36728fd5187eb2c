"""Request ids, one JSON access-log line per request, and the protected /metrics endpoint."""

from __future__ import annotations

import base64
import re

import pytest

from tests.adminkit import admin_client, admin_headers, mint
from tests.obskit import capture_logs, sample
from tests.pagekit import make_user, sign_in

METRICS_TOKEN = "scrape-token-for-tests-0123456789"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"metrics_token": METRICS_TOKEN}


async def scrape(client) -> str:
    r = await client.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["cache-control"] == "no-store"
    return r.text


# -- request id ------------------------------------------------------------------------------------
async def test_request_id_is_generated_and_returned(client) -> None:
    a = await client.get("/healthz")
    b = await client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


async def test_request_id_from_the_caller_is_propagated_to_response_and_log(client) -> None:
    with capture_logs() as logs:
        r = await client.get("/healthz", headers={"x-request-id": "lb-7f3a:0001"})
    assert r.headers["x-request-id"] == "lb-7f3a:0001"
    assert [line["request_id"] for line in logs.access()] == ["lb-7f3a:0001"]


@pytest.mark.parametrize("bad", ["x" * 129, "has space", "<script>", "semi;colon", 'quote"d', ""])
async def test_unsafe_or_oversized_request_ids_are_replaced(client, bad: str) -> None:
    r = await client.get("/healthz", headers={"x-request-id": bad})
    assert r.headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


async def test_every_log_line_written_during_a_request_carries_its_id(client, container) -> None:
    expired = admin_headers(container, ttl=-120)  # refused: the admin API logs why at info level
    with capture_logs() as logs:
        r = await client.get("/admin/users", headers=expired | {"x-request-id": "r-1"})
    assert r.status_code == 401
    # Background tasks (the deny-list feed) may log meanwhile: look at the lines this request wrote.
    lines = [line for line in logs.lines() if line["logger"] in ("idp.access", "idp.admin")]
    assert {line["logger"] for line in lines} == {"idp.access", "idp.admin"}
    assert all(line["request_id"] == "r-1" for line in lines)


# -- access log ------------------------------------------------------------------------------------
async def test_one_access_line_per_request_with_the_documented_fields(client, container) -> None:
    user = make_user(container)
    headers = admin_headers(container)
    with capture_logs() as logs:
        r = await client.get(f"/admin/users/{user.id}?code=SECRETCODE123", headers=headers)
        await client.get("/no/such/page")
    assert r.status_code == 200
    lines = logs.access()
    assert len(lines) == 2
    line = lines[0]
    assert line["msg"] == "request" and line["level"] == "info"
    assert line["request_id"] == r.headers["x-request-id"]
    assert line["method"] == "GET"
    assert line["endpoint"] == "/admin/users/{user_id}"  # the route template, not the path
    assert line["status"] == 200
    assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert line["client_id"] == container.clients.list()[0].client_id  # the authenticated admin client
    assert user.id not in logs.text and "SECRETCODE123" not in logs.text
    assert lines[1]["endpoint"] == "unmatched" and lines[1]["status"] == 404


async def test_claimed_client_id_is_logged_but_never_the_basic_password(client) -> None:
    basic = base64.b64encode(b"some%20client:very-secret-password-1").decode()
    with capture_logs() as logs:
        await client.get("/healthz", headers={"authorization": f"Basic {basic}"})
    (line,) = logs.access()
    assert line["client_id"] == "some client"
    assert "very-secret-password-1" not in logs.text and basic not in logs.text


async def test_form_client_id_is_logged_other_form_fields_are_not(client, container) -> None:
    with capture_logs() as logs:
        await client.post("/login", data={"client_id": "form-client", "password": "hunter2hunter2", "csrf": "x"})
    (line,) = logs.access()
    assert line["client_id"] == "form-client"
    assert "hunter2hunter2" not in logs.text


# -- /metrics protection ---------------------------------------------------------------------------
async def test_metrics_refuse_requests_without_a_valid_bearer_token(client, container) -> None:
    for headers in (
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": f"Basic {base64.b64encode(METRICS_TOKEN.encode()).decode()}"},
        {"cookie": "__Host-idp-session=whatever"},
    ):
        r = await client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/metrics", params={"access_token": METRICS_TOKEN})  # RFC 6750 §2.3 is not offered
    assert r.status_code == 401


async def test_metrics_accept_an_admin_token_and_refuse_other_access_tokens(client, container) -> None:
    assert (await client.get("/metrics", headers=admin_headers(container))).status_code == 200
    svc = admin_client(container, name="api", scope="api:read", audience="https://idp.test/api")
    token = mint(container, svc, scope="api:read", aud="https://idp.test/api")
    assert (await client.get("/metrics", headers={"authorization": f"Bearer {token}"})).status_code == 401


# -- /metrics content ------------------------------------------------------------------------------
async def test_requests_are_counted_by_route_template_and_status_with_latency(client, container) -> None:
    user = make_user(container)
    headers = admin_headers(container)
    for _ in range(3):
        await client.get(f"/admin/users/{user.id}", headers=headers)
    await client.get("/admin/users/nobody", headers=headers)
    await client.get("/definitely/not/here")
    text = await scrape(client)
    assert sample(text, "idp_http_requests_total", endpoint="/admin/users/{user_id}", status="200") == 3
    assert sample(text, "idp_http_requests_total", endpoint="/admin/users/{user_id}", status="404") == 1
    assert sample(text, "idp_http_requests_total", endpoint="unmatched", status="404") == 1
    assert sample(text, "idp_http_request_duration_seconds_count", endpoint="/admin/users/{user_id}") == 4
    assert sample(text, "idp_http_request_duration_seconds_bucket", endpoint="/admin/users/{user_id}", le="+Inf") == 4
    assert user.id not in text


async def test_signing_key_states_and_ages(client, container, clock) -> None:
    clock.advance(120)
    text = await scrape(client)
    algs = container.keyring.policy.algorithms
    for alg in algs:
        assert sample(text, "idp_signing_keys", alg=alg, state="active") == 1
    active = [r for r in container.keyring.rows() if r.state == "active"]
    age = sample(text, "idp_signing_key_age_seconds", kid=active[0].kid, state="active")
    assert age == pytest.approx(clock.now() - active[0].created_at) and age >= 120
    container.keyring.rotate("ES256")
    text = await scrape(client)
    assert sample(text, "idp_signing_keys", alg="ES256", state="next") == 1


async def test_deny_list_size_and_revocations(client, container) -> None:
    container.denylist.deny("subject", "user-1", reason="test", actor="test")
    container.denylist.deny("jti", "jti-1", reason="test", actor="test", until=container.clock.now() + 60)
    text = await scrape(client)
    assert sample(text, "idp_denylist_entries", kind="subject") == 1
    assert sample(text, "idp_denylist_entries", kind="jti") == 1


async def test_logins_are_counted_by_result(client, container, settings) -> None:
    make_user(container)
    assert (await sign_in(client)).status_code == 303
    client.cookies.clear()
    for _ in range(settings.login_max_failures):
        r = await sign_in(client, password="not the password")
    assert r.status_code == 429
    text = await scrape(client)
    assert sample(text, "idp_logins_total", result="success") == 1
    assert sample(text, "idp_logins_total", result="failure") == settings.login_max_failures
    assert sample(text, "idp_logins_total", result="throttled") == 1
    assert sample(text, "idp_audit_events_total", action="login") == 1


async def test_an_unhandled_error_is_logged_once_with_its_request_id_and_counted_as_500(container) -> None:
    import httpx
    from asgi_lifespan import LifespanManager
    from starlette.routing import Route

    from idp.app import create_app

    async def boom(request):
        raise RuntimeError("kaboom")

    application = create_app(services=container)
    application.router.routes.append(Route("/boom/{thing}", boom))
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://idp.test") as http:
            with capture_logs() as logs:
                r = await http.get("/boom/x?code=secret-code-value", headers={"x-request-id": "boom-1"})
            assert r.status_code == 500 and "kaboom" not in r.text
            text = (await http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})).text
    (access,) = logs.access()
    assert access["status"] == 500 and access["endpoint"] == "/boom/{thing}" and access["request_id"] == "boom-1"
    errors = [line for line in logs.lines() if line["level"] == "error"]
    assert errors and all(line["request_id"] == "boom-1" for line in errors)
    assert "RuntimeError: kaboom" in errors[0]["exc"]
    assert "secret-code-value" not in logs.text
    assert sample(text, "idp_http_requests_total", endpoint="/boom/{thing}", status="500") == 1
