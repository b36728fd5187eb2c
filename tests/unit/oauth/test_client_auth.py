"""Client authentication rules (RFC 6749 §2.3, RFC 7523 §3): what is refused, at which boundary, with which answer.

The answers are what an integrator debugging a 401 reads (``error_description``) and what the operator's
log line says (``detail``): both are pinned here, on the functions the endpoints call.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson
import pytest
from joserfc import jws
from joserfc import jwt as rfc_jwt
from joserfc.jwk import ECKey
from starlette.requests import Request

from idp.clients.model import Client
from idp.errors import InvalidClient, InvalidRequest
from idp.oauth.client_auth import ASSERTION_TYPE, LEEWAY, Presented, authenticate, authenticate_client, presented
from idp.services import Services
from tests.oauthkit import ISSUER, native_client, service_client

KEY = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _refused(headers: dict[str, str], form: dict[str, str]) -> str:
    with pytest.raises(InvalidClient) as err:
        presented(headers, form)
    return err.value.description


# -- presented(): parsing what the request carries ---------------------------------------------------------------


def test_basic_credentials_are_form_decoded() -> None:
    """RFC 6749 §2.3.1: id and secret are application/x-www-form-urlencoded before Basic encoding."""
    cred = presented({"authorization": "Basic " + _b64(b"my+client:s+cret%21")}, {})
    assert (cred.client_id, cred.secret) == ("my client", "s cret!")
    cred = presented({"authorization": "Basic " + _b64(b"app:a:b:c")}, {})  # the first colon separates
    assert (cred.client_id, cred.secret) == ("app", "a:b:c")


@pytest.mark.parametrize(
    "value",
    [
        "Basic %%%",
        "Basic " + _b64(b"no-colon"),
        "Basic " + _b64(b":secret-without-id"),
        "Basic YT!pi",  # base64 of "a:b" with a character outside the alphabet: strict decoding refuses it
        "Basic " + _b64(b"\xff:\xfe"),  # not UTF-8
    ],
)
def test_malformed_basic_credentials(value: str) -> None:
    assert _refused({"authorization": value}, {}) == "malformed Basic credentials"


def _unsigned(payload: object) -> str:
    enc = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return f"{enc(b'{}')}.{enc(orjson.dumps(payload))}.sig"


@pytest.mark.parametrize(
    ("assertion", "answer"),
    [
        ("not-a-jwt", "malformed client assertion"),
        ("a.!!!.c", "malformed client assertion"),
        (_unsigned({"sub": "c"}), "client assertion has no iss"),
        (_unsigned({"iss": ""}), "client assertion has no iss"),
        (_unsigned({"iss": 123}), "client assertion has no iss"),
    ],
)
def test_the_assertion_must_name_its_client(assertion: str, answer: str) -> None:
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    assert _refused({}, form) == answer


def test_other_parse_refusals() -> None:
    assert _refused({"authorization": "Bearer x"}, {}) == "unsupported Authorization scheme for client authentication"
    assert _refused({}, {"client_assertion_type": "x", "client_assertion": "a.b.c"}) == "unsupported client assertion"
    assert _refused({}, {"client_assertion_type": ASSERTION_TYPE}) == "unsupported client assertion"
    # An assertion without its type is refused, not ignored (which would leave a bare client_id: "none").
    assert _refused({}, {"client_id": "c", "client_assertion": "a.b.c"}) == "unsupported client assertion"
    assert _refused({}, {"client_secret": "s"}) == "missing client_id"
    assert _refused({}, {}) == "client authentication is required"
    basic = {"authorization": "Basic " + _b64(b"app:s")}
    assert _refused(basic, {"client_id": "other"}) == "client_id does not match the authenticated client"
    with pytest.raises(InvalidRequest) as err:  # RFC 6749 §2.3: one method only
        presented(basic, {"client_id": "app", "client_secret": "s"})
    assert err.value.description == "use exactly one client authentication method"


def test_a_record_with_an_unknown_method_is_refused(container: Services) -> None:
    client = Client("odd", "Odd", "service", "client_secret_jwt")  # not a method this server implements
    with pytest.raises(InvalidClient) as err:
        authenticate(container, Presented("client_secret_jwt", "odd"), endpoint="token", client=client)
    assert err.value.description == "unknown client or wrong credentials"


# -- private_key_jwt (RFC 7523 §3) -------------------------------------------------------------------------------


def _jwt_client(container: Services, *keys: ECKey) -> Client:
    jwks = {"keys": [k.as_dict(private=False) for k in keys or (KEY,)]}
    client, _ = service_client(container, auth_method="private_key_jwt", jwks=jwks)
    return client


def _claims(client: Client, now: float, **claims: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": client.client_id, "sub": client.client_id, "aud": ISSUER,
                            "exp": int(now) + 60, "jti": secrets.token_urlsafe(12)}  # fmt: skip
    return {k: v for k, v in (base | claims).items() if v is not None}


def _sign(client: Client, now: float, key: ECKey = KEY, header: dict | None = None, **claims: Any) -> str:
    return rfc_jwt.encode(header or {"alg": "ES256", "kid": "k1"}, _claims(client, now, **claims), key)


def _check(container: Services, client: Client, assertion: str) -> Client:
    return authenticate(container, Presented("private_key_jwt", client.client_id, assertion=assertion), endpoint="t")


def _answer(container: Services, client: Client, assertion: str) -> str:
    with pytest.raises(InvalidClient) as err:
        _check(container, client, assertion)
    return err.value.description


def test_assertion_refusals_say_what_is_wrong(container: Services) -> None:
    client = _jwt_client(container)
    now = container.clock.now()
    hs = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"  # {"alg":"HS256"}
    cases = {
        "malformed client assertion": "a.b",
        "client assertion algorithm not allowed": hs,
        "client assertion header carries a forbidden parameter": _sign(
            client, now, header={"alg": "ES256", "kid": "k1", "x5u": "https://evil.example/x"}
        ),
        "client assertion signature does not verify": _sign(client, now, key=ECKey.generate_key("P-256")),
        "client assertion iss and sub must be the client_id": _sign(client, now, sub="other"),
        "client assertion audience must be the issuer": _sign(client, now, aud="https://evil.example"),
        "client assertion needs a jti": _sign(client, now, jti=None),
    }
    for answer, assertion in cases.items():
        assert _answer(container, client, assertion) == answer


def test_the_exp_window_and_its_boundaries(container: Services) -> None:
    """exp must be later than now - leeway and at most max lifetime + leeway ahead (RFC 7523 §3 item 4)."""
    client = _jwt_client(container)
    now = container.clock.now()
    expired = "client assertion expired or without exp"
    assert _answer(container, client, _sign(client, now, exp=int(now) - LEEWAY)) == expired
    assert _check(container, client, _sign(client, now, exp=int(now) - LEEWAY + 1)) == client
    assert _check(container, client, _sign(client, now, exp=int(now) + 5)) == client
    for exp in (None, "soon", True):
        assert _answer(container, client, _sign(client, now, exp=exp)) == expired
    most = container.settings.client_assertion_max_lifetime
    assert _check(container, client, _sign(client, now, exp=int(now) + most + LEEWAY)) == client
    too_far = _answer(container, client, _sign(client, now, exp=int(now) + most + LEEWAY + 1))
    assert too_far == f"client assertion lives too long (exp at most {most} s ahead)"


@pytest.mark.parametrize("name", ["nbf", "iat"])
def test_nbf_and_iat_may_not_be_in_the_future(container: Services, name: str) -> None:
    client = _jwt_client(container)
    now = container.clock.now()
    assert _check(container, client, _sign(client, now, **{name: int(now) + LEEWAY})) == client
    for value in (int(now) + LEEWAY + 1, "now"):
        answer = _answer(container, client, _sign(client, now, **{name: value}))
        assert answer == f"client assertion {name} is in the future"


def test_the_jti_rules(container: Services) -> None:
    client = _jwt_client(container)
    now = container.clock.now()
    assert _check(container, client, _sign(client, now, jti="j" * 256)) == client
    for jti in ("", "j" * 257, 123, ["a"]):
        assert _answer(container, client, _sign(client, now, jti=jti)) == "client assertion needs a jti"
    assertion = _sign(client, now)
    assert _check(container, client, assertion) == client
    assert _answer(container, client, assertion) == "client assertion replayed"


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)  # the in-process store expires by FrozenClock
def test_a_jti_is_remembered_for_as_long_as_its_assertion_is_accepted(container: Services) -> None:
    """RFC 7523 §3 item 7: until exp + leeway, the last instant the assertion is still valid, it cannot be replayed."""
    client = _jwt_client(container)
    now = container.clock.now()
    assertion = _sign(client, now, exp=int(now) + 60)
    assert _check(container, client, assertion) == client
    container.clock.advance(60 + LEEWAY - 0.5)  # the last half second the exp check still lets it through
    assert _answer(container, client, assertion) == "client assertion replayed"
    container.clock.advance(1)
    assert _answer(container, client, assertion) == "client assertion expired or without exp"


def test_every_registered_key_is_tried_when_the_header_names_none(container: Services) -> None:
    other = ECKey.generate_key("P-256", parameters={"kid": "k0"})
    enc = ECKey.generate_key("P-256", parameters={"kid": "k1", "use": "enc"})
    client = _jwt_client(container, other, enc, KEY)
    now = container.clock.now()
    assert _check(container, client, _sign(client, now, header={"alg": "ES256"})) == client
    # A key registered for encryption is never used to verify, even under the kid the assertion names.
    client = _jwt_client(container, ECKey.import_key(KEY.as_dict(private=False) | {"use": "enc"}))
    answer = _answer(container, client, _sign(client, now))
    assert answer == "client assertion signature does not verify"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"a string"'])
def test_a_signed_payload_that_is_no_claims_object(container: Services, payload: bytes) -> None:
    client = _jwt_client(container)
    token = jws.serialize_compact({"alg": "ES256", "kid": "k1"}, payload, KEY)
    assert _answer(container, client, token) == "client assertion signature does not verify"


@pytest.mark.parametrize(
    ("jwks", "answer"),
    [
        (None, "the client's registered keys are unusable"),  # none registered: a registration to fix
        ({"keys": []}, "the client's registered keys are unusable"),
        ({"keys": [{"kty": "nope"}]}, "the client's registered keys are unusable"),
    ],
)
def test_registered_keys_that_cannot_verify(container: Services, jwks: Any, answer: str) -> None:
    client = Client("pk", "Keys", "service", "private_key_jwt", jwks=jwks)
    now = container.clock.now()
    cred = Presented("private_key_jwt", "pk", assertion=_sign(client, now))
    with pytest.raises(InvalidClient) as err:
        authenticate(container, cred, endpoint="token", client=client)
    assert err.value.description == answer


# -- the wrong method (module docstring of idp.oauth.client_auth) ------------------------------------------------


def _wrong(container: Services, cred: Presented) -> InvalidClient:
    with pytest.raises(InvalidClient) as err:
        authenticate(container, cred, endpoint="token")
    return err.value


def test_the_wrong_method_is_named_only_when_that_reveals_nothing(container: Services) -> None:
    basic_client, secret = service_client(container)
    err = _wrong(container, Presented("client_secret_post", basic_client.client_id, secret=secret))
    assert err.description == "this client authenticates with client_secret_basic"
    assert err.detail == "method client_secret_post presented, client_secret_basic registered"  # for the log
    err = _wrong(container, Presented("client_secret_post", basic_client.client_id, secret="wrong"))
    assert err.description == "unknown client or wrong credentials"
    assert err.detail == "method client_secret_post presented, client_secret_basic registered"
    err = _wrong(container, Presented("client_secret_post", basic_client.client_id, secret=""))
    assert err.description == "unknown client or wrong credentials"
    public = native_client(container)
    err = _wrong(container, Presented("client_secret_basic", public.client_id, secret="x"))
    assert err.description == (
        "this client authenticates with none (a public client: send client_id alone, no secret or assertion)"
    )
    assert err.detail == "method client_secret_basic presented, none registered"


def test_a_secret_never_reveals_a_key_pair_clients_method(container: Services) -> None:
    """The secret is not even checked for a client that has none: the generic answer."""
    client = _jwt_client(container)
    err = _wrong(container, Presented("client_secret_basic", client.client_id, secret="x"))
    assert err.description == "unknown client or wrong credentials"
    assert err.detail == "method client_secret_basic presented, private_key_jwt registered"


# -- authenticate_client(): revocation and introspection ---------------------------------------------------------


def _request(body: bytes, headers: dict[str, str] | None = None) -> Request:
    raw = [(b"content-type", b"application/x-www-form-urlencoded")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "headers": raw}, receive)


async def test_authenticate_client_reads_the_form_and_refuses_public_callers(container: Services) -> None:
    svc, secret = service_client(container, auth_method="client_secret_post")
    body = f"token=x&client_id={svc.client_id}&client_secret={secret}".encode()
    assert await authenticate_client(_request(body), container, endpoint="revocation") == svc
    public = native_client(container)
    body = f"token=x&client_id={public.client_id}".encode()
    with pytest.raises(InvalidClient) as err:
        await authenticate_client(_request(body), container, endpoint="introspection")
    assert err.value.description == "client authentication is required"  # RFC 7662 §2.1
    assert await authenticate_client(_request(body), container, endpoint="revocation", allow_public=True) == public
    with pytest.raises(InvalidClient):  # a public client presenting a secret is still refused
        form = {"client_id": public.client_id, "client_secret": "s"}
        await authenticate_client(_request(b""), container, endpoint="revocation", form=form, allow_public=True)
