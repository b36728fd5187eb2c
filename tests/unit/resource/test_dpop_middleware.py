"""DPoP-bound tokens at a resource server (RFC 9449 §7): the middleware and the protector, each test one rule."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from idp.clock import FrozenClock
from idp.resource import BearerAuthMiddleware, HmacNonces, RedisReplayCache, ResourceProtector, principal_of
from idp.resource.errors import AuthError
from idp.resource.middleware import request_url
from tests.dpop_client import DPoPAuth
from tests.dpopkit import DPoPKey, unsigned
from tests.unit.resource.kit import API, ISSUER, FakeIdP
from tests.unit.resource.test_middleware import FakeFollower, write

NOW = float(int(time.time()))
ME = f"{API}/me"
ALGS_CHALLENGE = 'algs="ES256 RS256 PS256 EdDSA Ed25519"'


async def whoami(request: Request) -> JSONResponse:
    p = principal_of(request)
    assert p is not None
    return JSONResponse({"sub": p.sub, "jkt": p.jkt})


@pytest.fixture
def idp() -> FakeIdP:
    return FakeIdP(("ES256",))


@pytest.fixture(scope="module")
def key() -> DPoPKey:
    return DPoPKey("ES256")


def make(idp: FakeIdP, http: httpx.AsyncClient, clock: FrozenClock | None = None, **kw: Any) -> ResourceProtector:
    protector = ResourceProtector(
        issuer=ISSUER, audience=API, http=http, follow=False, clock=clock or FrozenClock(NOW), **kw
    )
    protector.follower = FakeFollower()  # type: ignore[assignment]
    return protector


def api(protector: ResourceProtector, base_url: str = API, **middleware: Any) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/me", whoami), Route("/write", write, methods=["POST"])],
        middleware=[Middleware(BearerAuthMiddleware, protector=protector, **middleware)],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def dpop(token: str, proof: str | None) -> dict[str, str]:
    headers = {"authorization": f"DPoP {token}"}
    if proof is not None:
        headers["dpop"] = proof
    return headers


def challenge(r: httpx.Response) -> str:
    return r.headers.get("www-authenticate", "")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
async def test_bound_token_with_its_proof_is_accepted(idp: FakeIdP, alg: str) -> None:
    holder = DPoPKey(alg)
    token = idp.token(now=NOW, cnf={"jkt": holder.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, holder.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 200, r.text
        assert r.json() == {"sub": "u1", "jkt": holder.jkt}  # the principal names the key it proved
        assert "dpop-nonce" not in r.headers  # no nonces unless configured
        r = await client.get(  # RFC 9110 §11.1: the scheme is case-insensitive; RFC 9449 §4.3: query ignored
            "/me?page=2",
            headers={"authorization": f"dpop {token}", "dpop": holder.proof("GET", ME, iat=NOW, access_token=token)},
        )
        assert r.status_code == 200, r.text


async def test_bound_token_as_bearer_is_refused(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        # RFC 9449 §7.2: a stolen bound token is useless as a bearer token, even with a valid proof beside it.
        proof = key.proof("GET", ME, iat=NOW, access_token=token)
        r = await client.get("/me", headers={"authorization": f"Bearer {token}", "dpop": proof})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        bearer, offered = r.headers.get_list("www-authenticate")
        assert bearer.startswith('Bearer realm="api", error="invalid_token"') and "DPoP scheme" in bearer
        assert offered == f'DPoP realm="api", {ALGS_CHALLENGE}'


async def test_unbound_token_with_the_dpop_scheme_is_refused(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW)
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 401
        assert challenge(r).startswith('DPoP realm="api", error="invalid_token"') and "not DPoP-bound" in challenge(r)
        assert challenge(r).endswith(ALGS_CHALLENGE)  # RFC 9449 §7.1


async def test_unsupported_confirmation_method_is_refused_either_way(idp: FakeIdP, key: DPoPKey) -> None:
    """A binding this server cannot check (mTLS ``x5t#S256``) must not turn the token back into a bearer token."""
    async with idp.http() as http, api(make(idp, http)) as client:
        for cnf in ({"x5t#S256": "abc"}, {"jkt": key.jkt, "x5t#S256": "abc"}, {"jkt": ""}, "jkt"):
            token = idp.token(now=NOW, cnf=cnf)
            r = await client.get("/me", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401 and "confirmation method" in challenge(r), cnf
            r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
            assert r.status_code == 401 and "confirmation method" in challenge(r), cnf


async def test_proof_missing_or_twice(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, None))
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
        assert challenge(r).startswith('DPoP realm="api", error="invalid_dpop_proof"')  # RFC 9449 §7.1
        assert challenge(r).endswith(ALGS_CHALLENGE)
        two = [
            ("authorization", f"DPoP {token}"),
            ("dpop", key.proof("GET", ME, iat=NOW, access_token=token)),
            ("dpop", key.proof("GET", ME, iat=NOW, access_token=token)),
        ]
        r = await client.get("/me", headers=two)
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 (1)


async def test_proof_by_another_key_is_refused(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    thief = DPoPKey("ES256")
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, thief.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"  # RFC 9449 §7.1: key binding
        assert "does not match the token's binding" in challenge(r)


async def test_ath_missing_or_for_another_token(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    other = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        for proof in (key.proof("GET", ME, iat=NOW), key.proof("GET", ME, iat=NOW, access_token=other)):
            r = await client.get("/me", headers=dpop(token, proof))
            assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 (12)
            assert "ath" in r.json()["error_description"]


@pytest.mark.parametrize(
    ("method", "htu"),
    [("POST", ME), ("GET", f"{API}/other"), ("GET", "https://evil.test/me"), ("GET", "http://api.test/me")],
)
async def test_proof_for_another_request_is_refused(idp: FakeIdP, key: DPoPKey, method: str, htu: str) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, key.proof(method, htu, iat=NOW, access_token=token)))
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 (8), (9)


async def test_replayed_proof_is_refused(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        proof = key.proof("GET", ME, iat=NOW, access_token=token)
        assert (await client.get("/me", headers=dpop(token, proof))).status_code == 200
        r = await client.get("/me", headers=dpop(token, proof))
        assert r.status_code == 401 and "used before" in r.json()["error_description"]  # RFC 9449 §11.1


@pytest.mark.parametrize("offset", [-61, 61])
async def test_stale_and_future_proofs_are_refused(idp: FakeIdP, key: DPoPKey, offset: int) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW + offset, access_token=token)))
        assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"  # RFC 9449 §4.3 (11)
        ok = key.proof("GET", ME, iat=NOW + (offset * 59) // 61, access_token=token)  # inside the window
        assert (await client.get("/me", headers=dpop(token, ok))).status_code == 200


async def test_unsigned_symmetric_and_private_key_proofs_are_refused(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    claims = {"jti": "j", "htm": "GET", "htu": ME, "iat": int(NOW)}
    proofs = [
        unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk}, claims),  # RFC 9449 §4.3 (5)
        unsigned({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}, claims, b"x" * 32),
        key.proof("GET", ME, iat=NOW, access_token=token, header={"jwk": key.private_jwk}),  # §4.3 (7)
        key.proof("GET", ME, iat=NOW, access_token=token, header={"typ": "JWT"}),  # §4.3 (4)
    ]
    async with idp.http() as http, api(make(idp, http)) as client:
        for proof in proofs:
            r = await client.get("/me", headers=dpop(token, proof))
            assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof", r.text


async def test_algorithms_are_configurable(idp: FakeIdP) -> None:
    holder = DPoPKey("EdDSA")
    token = idp.token(now=NOW, cnf={"jkt": holder.jkt})
    async with idp.http() as http, api(make(idp, http, dpop_algs=("ES256",))) as client:
        r = await client.get("/me", headers=dpop(token, holder.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 401 and challenge(r).endswith('algs="ES256"')
    with pytest.raises(ValueError):
        ResourceProtector(issuer=ISSUER, audience=API, follow=False, dpop_algs=("HS256",))  # never symmetric


async def test_invalid_or_revoked_bound_token_answers_in_the_dpop_scheme(idp: FakeIdP, key: DPoPKey) -> None:
    async with idp.http() as http:
        protector = make(idp, http)
        async with api(protector) as client:
            expired = idp.token(now=NOW - 3600, cnf={"jkt": key.jkt})
            r = await client.get("/me", headers=dpop(expired, key.proof("GET", ME, iat=NOW, access_token=expired)))
            assert r.status_code == 401 and challenge(r).startswith('DPoP realm="api", error="invalid_token"')
            token = idp.token(now=NOW, cnf={"jkt": key.jkt}, jti="stolen")
            protector.follower.denied.add("stolen")  # type: ignore[union-attr]
            r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
            assert r.status_code == 401 and challenge(r).startswith('DPoP realm="api", error="invalid_token"')
            assert "revoked" in challenge(r)


async def test_insufficient_scope_answers_in_the_dpop_scheme(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt}, scope="api:read")
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.post("/write", headers=dpop(token, key.proof("POST", f"{API}/write", iat=NOW,
                                                                      access_token=token)))  # fmt: skip
        assert r.status_code == 403
        assert challenge(r).startswith('DPoP realm="api", error="insufficient_scope"')


async def test_dpop_only_api_refuses_bearer_tokens(idp: FakeIdP, key: DPoPKey) -> None:
    async with idp.http() as http, api(make(idp, http, dpop_required=True)) as client:
        r = await client.get("/me")
        assert r.headers.get_list("www-authenticate") == [f'DPoP realm="api", {ALGS_CHALLENGE}']
        r = await client.get("/me", headers={"authorization": f"Bearer {idp.token(now=NOW)}"})
        assert r.status_code == 401 and challenge(r).startswith('DPoP realm="api", error="invalid_token"')
        token = idp.token(now=NOW, cnf={"jkt": key.jkt})
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 200


async def test_bearer_tokens_still_work_next_to_dpop(idp: FakeIdP) -> None:
    async with idp.http() as http, api(make(idp, http)) as client:
        r = await client.get("/me", headers={"authorization": f"Bearer {idp.token(now=NOW)}"})
        assert r.status_code == 200 and r.json()["jkt"] is None


# --- nonces (RFC 9449 §9) --------------------------------------------------------------------------------------


async def test_api_nonce_is_demanded_handed_out_and_followed(idp: FakeIdP, key: DPoPKey) -> None:
    clock = FrozenClock(NOW - NOW % 300)
    token = idp.token(now=clock.now(), cnf={"jkt": key.jkt})
    nonces = HmacNonces(b"n" * 32, now=clock.now)
    async with idp.http() as http, api(make(idp, http, clock, dpop_nonces=nonces)) as client:
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=clock.now(), access_token=token)))
        assert r.status_code == 401 and r.json()["error"] == "use_dpop_nonce"
        assert challenge(r).startswith('DPoP realm="api", error="use_dpop_nonce"')
        nonce = r.headers["dpop-nonce"]
        assert nonce == nonces.current()
        proof = key.proof("GET", ME, iat=clock.now(), access_token=token, nonce=nonce)
        r = await client.get("/me", headers=dpop(token, proof))
        assert r.status_code == 200 and r.headers["dpop-nonce"] == nonce  # every answer carries the current one
        clock.advance(600)  # two periods on: the old nonce is gone, a new one is handed out
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=clock.now(), access_token=token,
                                                                   nonce=nonce)))  # fmt: skip
        assert r.status_code == 401 and r.json()["error"] == "use_dpop_nonce" and r.headers["dpop-nonce"] != nonce


async def test_api_nonces_hold_across_instances(idp: FakeIdP, key: DPoPKey) -> None:
    """Two instances with the same nonce key: a nonce one of them handed out is good at the other."""
    clock = FrozenClock(NOW - NOW % 300)
    token = idp.token(now=clock.now(), cnf={"jkt": key.jkt})
    async with idp.http() as http:
        one, two = (make(idp, http, clock, dpop_nonces=HmacNonces(b"n" * 32, now=clock.now)) for _ in range(2))
        async with api(one) as a, api(two) as b:
            r = await a.get("/me", headers=dpop(token, key.proof("GET", ME, iat=clock.now(), access_token=token)))
            nonce = r.headers["dpop-nonce"]
            clock.advance(300)  # the next period: instance two has rotated, the previous nonce still holds
            proof = key.proof("GET", ME, iat=clock.now(), access_token=token, nonce=nonce)
            r = await b.get("/me", headers=dpop(token, proof))
            assert r.status_code == 200 and r.headers["dpop-nonce"] != nonce


# --- the replay cache across workers ---------------------------------------------------------------------------


class _DownRedis:
    def set(self, *a: Any, **kw: Any) -> None:
        raise redis.ConnectionError("down")


async def test_replay_cache_outage_answers_503(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    replay = RedisReplayCache(_DownRedis())  # type: ignore[arg-type]
    async with idp.http() as http, api(make(idp, http, dpop_replay=replay)) as client:
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"  # never a replay let in
        assert r.headers["retry-after"] == "1"


@pytest.mark.postgres
async def test_replay_refused_across_two_workers_sharing_redis(idp: FakeIdP, key: DPoPKey) -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:rs-dpop:{secrets.token_hex(4)}:"
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    try:
        async with idp.http() as http:
            workers = [make(idp, http, dpop_replay=RedisReplayCache(client, prefix=prefix)) for _ in range(2)]
            async with api(workers[0]) as one, api(workers[1]) as two:
                proof = key.proof("GET", ME, iat=NOW, access_token=token)
                assert (await one.get("/me", headers=dpop(token, proof))).status_code == 200
                r = await two.get("/me", headers=dpop(token, proof))
                assert r.status_code == 401 and "used before" in r.json()["error_description"]  # RFC 9449 §11.1
    finally:
        for k in client.scan_iter(prefix + "*"):
            client.delete(k)
        client.close()


# --- htu behind a proxy ----------------------------------------------------------------------------------------


async def test_htu_is_the_url_the_server_received_by_default(idp: FakeIdP, key: DPoPKey) -> None:
    """Behind a proxy the client's URL and the server's differ: without a setting, the proof does not fit."""
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http), base_url="http://10.0.0.5:8000") as client:
        public = key.proof("GET", ME, iat=NOW, access_token=token)
        r = await client.get("/me", headers={**dpop(token, public), "x-forwarded-proto": "https",
                                             "x-forwarded-host": "api.test"})  # fmt: skip
        assert r.status_code == 401 and "htu" in r.json()["error_description"]  # forwarded headers not trusted
        internal = key.proof("GET", "http://10.0.0.5:8000/me", iat=NOW, access_token=token)
        assert (await client.get("/me", headers=dpop(token, internal))).status_code == 200


async def test_public_origin_setting(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    protector = make(idp, (http := idp.http()))
    async with http, api(protector, base_url="http://10.0.0.5:8000", public_origin="https://API.test:443/") as client:
        r = await client.get("/me", headers=dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)))
        assert r.status_code == 200, r.text
        internal = key.proof("GET", "http://10.0.0.5:8000/me", iat=NOW, access_token=token)
        assert (await client.get("/me", headers=dpop(token, internal))).status_code == 401
    for bad in ("api.test", "https://api.test/prefix", "ftp://api.test", "https://api.test/?q=1"):
        with pytest.raises(ValueError):
            BearerAuthMiddleware(None, protector=protector, public_origin=bad)


async def test_forwarded_headers_when_trusted(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http, api(make(idp, http), base_url="http://10.0.0.5:8000", trust_forwarded=True) as c:
        forwarded = {"x-forwarded-proto": "https, http", "x-forwarded-host": "api.test, proxy.internal"}
        r = await c.get("/me", headers={**dpop(token, key.proof("GET", ME, iat=NOW, access_token=token)), **forwarded})
        assert r.status_code == 200, r.text  # the first (client-facing) hop's values


def test_request_url() -> None:
    scope: dict[str, Any] = {"scheme": "https", "path": "/a b/ü", "headers": [(b"host", b"API.Test:443")]}
    assert request_url(scope) == "https://api.test/a%20b/%C3%BC"  # RFC 3986 §6.2.2-6.2.3 normalised forms
    scope = {"scheme": "http", "path": "/x", "headers": [], "server": ("127.0.0.1", 8080)}
    assert request_url(scope) == "http://127.0.0.1:8080/x"
    assert request_url(scope, public_origin="https://api.test") == "https://api.test/x"
    scope = {"scheme": "wss", "path": "/feed", "headers": [(b"host", b"api.test:443")]}
    assert request_url(scope) == "https://api.test/feed"  # the handshake's URL as an HTTP URI


# --- framework-free --------------------------------------------------------------------------------------------


async def test_protector_checks_the_binding_without_the_middleware(idp: FakeIdP, key: DPoPKey) -> None:
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    async with idp.http() as http:
        protector = make(idp, http)
        with pytest.raises(AuthError) as info:
            await protector.authenticate(token)  # the default scheme is bearer
        assert info.value.error == "invalid_token" and info.value.scheme == "Bearer"
        proof = key.proof("PUT", "https://api.test/x", iat=NOW, access_token=token)
        principal = await protector.authenticate(
            token, scheme="dpop", proofs=[proof], method="PUT", url="https://api.test/x?y=1"
        )
        assert principal.jkt == key.jkt


async def test_the_copyable_client_follows_the_api_nonces(idp: FakeIdP) -> None:
    """tests/dpop_client.py: retried once on use_dpop_nonce, then the remembered nonce is sent right away."""
    holder = DPoPKey("EdDSA")
    clock = FrozenClock(float(int(time.time())))  # the client signs with the real clock: the server's is now too
    token = idp.token(now=clock.now(), cnf={"jkt": holder.jkt})
    statuses: list[int] = []

    async def seen(response: httpx.Response) -> None:
        statuses.append(response.status_code)

    nonces = HmacNonces(b"n" * 32, now=clock.now)
    async with idp.http() as http, api(make(idp, http, clock, dpop_nonces=nonces)) as client:
        client.auth = DPoPAuth(holder, token)
        client.event_hooks["response"] = [seen]
        assert (await client.get("/me")).json()["jkt"] == holder.jkt
        assert (await client.get("/me?again=1")).status_code == 200
    assert statuses == [401, 200, 200]


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
def test_websocket_handshake_with_a_bound_token(idp: FakeIdP, key: DPoPKey) -> None:
    """The handshake is an HTTP GET: its proof names the http(s) URL of the ws(s) one; a refusal closes (1008)."""
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def feed(ws: WebSocket) -> None:
        await ws.accept()
        p = principal_of(ws)
        await ws.send_json({"jkt": p.jkt if p else None})
        await ws.close()

    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    http = idp.http()
    app = Starlette(routes=[WebSocketRoute("/feed", feed)],
                    middleware=[Middleware(BearerAuthMiddleware, protector=make(idp, http))])  # fmt: skip
    with TestClient(app) as client:  # its WebSockets go to ws://testserver
        proof = key.proof("GET", "http://testserver/feed", iat=NOW, access_token=token)
        with client.websocket_connect("/feed", headers=dpop(token, proof)) as ws:
            assert ws.receive_json() == {"jkt": key.jkt}
        with pytest.raises(WebSocketDisconnect) as info, client.websocket_connect("/feed", headers=dpop(token, proof)):
            pass  # the same proof again: a replay
        assert info.value.code == 1008


async def test_garbage_never_gets_a_500(idp: FakeIdP, key: DPoPKey) -> None:
    """Bad input is a clear refusal in the RFC's shape: malformed proofs and tokens, odd bytes, huge headers."""
    token = idp.token(now=NOW, cnf={"jkt": key.jkt})
    good = key.proof("GET", ME, iat=NOW, access_token=token)
    head, body, sig = good.split(".")
    proofs = ["", ".", "..", "a.b.c", f"{head}.{body}", f"{head}.{body}.{sig}.x", "x" * 20_000, "é" * 10,
              f"{head}.W10.{sig}", f"W10.{body}.{sig}", f"{head}.{body}.{sig}=", good.replace(".", " ")]  # fmt: skip
    async with idp.http() as http, api(make(idp, http)) as client:
        for proof in proofs:
            r = await client.get("/me", headers=[(b"authorization", f"DPoP {token}".encode()),
                                                 (b"dpop", proof.encode("utf-8"))])  # fmt: skip
            assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof", (proof[:40], r.text)
        for bad in ("é", "a.b.c", "x" * 10_000, "\x7f"):
            r = await client.get("/me", headers=[(b"authorization", f"DPoP {bad}".encode()), (b"dpop", good.encode())])
            assert r.status_code in (400, 401) and r.json()["error"] in ("invalid_token", "invalid_request"), bad
