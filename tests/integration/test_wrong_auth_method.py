"""A wrong client-authentication method: named only to a caller who proved nothing new by learning it.

The rule (idp.oauth.client_auth): the registered method is named when the client exists and is
enabled and either it is public, or it is registered for one secret method and presented its
correct secret with the other. Every other failure reads the same for a client that exists and
one that does not.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from joserfc import jwt as rfc_jwt
from joserfc.jwk import ECKey

from idp.services import Services
from tests.oauthkit import ISSUER, basic, native_client, service_client

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = {"grant_type": "client_credentials"}
KEY = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})


def _assertion(client_id: str, now: float) -> str:
    claims = {"iss": client_id, "sub": client_id, "aud": ISSUER, "exp": int(now) + 60, "jti": secrets.token_hex(8)}
    return rfc_jwt.encode({"alg": "ES256", "kid": "k1"}, claims, KEY)


def _answer(r: httpx.Response) -> tuple[int, Any, str | None]:
    return r.status_code, r.json(), r.headers.get("www-authenticate")


async def _post(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post("/token", data={**CC, "client_id": client_id, "client_secret": secret})


async def _basic(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await client.post("/token", data=CC, headers=basic(client_id, secret))


async def test_right_secret_with_the_other_secret_method_names_the_registered_one(
    client: httpx.AsyncClient, container: Services
) -> None:
    via_basic, secret = service_client(container)  # client_secret_basic
    r = await _post(client, via_basic.client_id, secret)
    assert r.status_code == 401 and r.json() == {
        "error": "invalid_client",
        "error_description": "this client authenticates with client_secret_basic",
    }
    via_post, secret = service_client(container, auth_method="client_secret_post")
    r = await _basic(client, via_post.client_id, secret)
    assert r.status_code == 401 and r.json()["error_description"] == "this client authenticates with client_secret_post"
    assert r.headers["www-authenticate"].startswith("Basic")  # RFC 6749 §5.2: Basic was used
    assert (await _post(client, via_post.client_id, secret)).status_code == 200  # and the right way works


async def test_a_public_client_is_named_whatever_it_presents(client: httpx.AsyncClient, container: Services) -> None:
    """Its client_id alone authenticates it: anyone can already learn that it exists and is public."""
    app = native_client(container)
    for r in (await _basic(client, app.client_id, ""), await _post(client, app.client_id, "s3cret")):
        assert r.status_code == 401
        assert r.json()["error_description"].startswith("this client authenticates with none")


@pytest.mark.parametrize("case", ["wrong secret, other method", "assertion for a secret client",
                                  "secret for a key-pair client", "no credentials", "disabled client"])  # fmt: skip
async def test_every_other_failure_reads_as_for_an_unknown_client(
    client: httpx.AsyncClient, container: Services, case: str
) -> None:
    now = container.clock.now()
    svc, secret = service_client(container)
    jwt_client, _ = service_client(container, auth_method="private_key_jwt", jwks={"keys": [KEY.as_dict()]})
    unknown = "no-such-client-" + secrets.token_hex(4)

    async def attempt(client_id: str) -> httpx.Response:
        if case == "wrong secret, other method":
            return await _post(client, client_id, "not-" + secret)
        if case == "assertion for a secret client":
            form = {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": _assertion(client_id, now)}
            return await client.post("/token", data=form)
        if case == "secret for a key-pair client":
            return await _basic(client, client_id, "guess")
        if case == "no credentials":
            return await client.post("/token", data={**CC, "client_id": client_id})
        return await _post(client, client_id, secret)  # disabled: even the right secret by the wrong method

    target = jwt_client.client_id if case == "secret for a key-pair client" else svc.client_id
    if case == "disabled client":
        container.client_admin.set_disabled(svc.client_id, True, actor="test")
    known, stranger = await attempt(target), await attempt(unknown)
    assert _answer(known) == _answer(stranger)
    assert known.json() == {"error": "invalid_client", "error_description": "unknown client or wrong credentials"}


async def test_the_same_rule_at_revocation_and_introspection(client: httpx.AsyncClient, container: Services) -> None:
    svc, secret = service_client(container, auth_method="client_secret_post")
    for path in ("/revoke", "/introspect"):
        r = await client.post(path, data={"token": "x"}, headers=basic(svc.client_id, secret))
        assert (
            r.status_code == 401
            and r.json()["error_description"] == "this client authenticates with client_secret_post"
        )
        wrong = await client.post(path, data={"token": "x"}, headers=basic(svc.client_id, "nope"))
        unknown = await client.post(path, data={"token": "x"}, headers=basic("nobody", "nope"))
        assert _answer(wrong) == _answer(unknown)
        assert wrong.json()["error_description"] == "unknown client or wrong credentials"
