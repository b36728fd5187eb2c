"""TokenRequest checks its (constant) URI with Authlib once, not on every request, and still refuses plain http."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc6749 import errors as authlib_errors

from idp.clients.model import Client
from idp.oauth import server
from idp.oauth.server import TokenRequest

SVC = Client(client_id="svc", name="svc", kind="service", auth_method="client_secret_basic")


def test_the_transport_check_runs_once_per_uri_and_requests_stay_separate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_CHECKED", {})
    calls: list[str] = []
    real = authlib_errors.InsecureTransportError.check.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        authlib_errors.InsecureTransportError,
        "check",
        classmethod(lambda cls, uri: (calls.append(uri), real(cls, uri))[1]),
    )
    uri = "https://idp.test/token"
    a = TokenRequest(uri, {"h": "1"}, {"grant_type": "client_credentials"}, [], SVC)
    a.user = "changed on the first request"
    b = TokenRequest(uri, {"h": "2"}, {"grant_type": "client_credentials", "scope": "x"}, ["r"], SVC)
    assert calls == [uri]
    assert (b.method, b.uri, b.user, b.client, b.credential) == ("POST", uri, None, None, None)
    assert b.headers == {"h": "2"} and b.form == {"grant_type": "client_credentials", "scope": "x"}
    assert b.payload.data["scope"] == "x" and b.resources == ["r"] and b.authenticated.client is SVC
    assert a.headers == {"h": "1"} and "scope" not in a.form


def test_a_plain_http_token_endpoint_is_refused_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_CHECKED", {})
    monkeypatch.delenv("AUTHLIB_INSECURE_TRANSPORT", raising=False)
    for _ in range(2):
        with pytest.raises(authlib_errors.InsecureTransportError):
            TokenRequest("http://idp.example/token", {}, {}, [], SVC)
    TokenRequest("http://127.0.0.1:8000/token", {}, {}, [], SVC)  # loopback is allowed (RFC 8252 §7.3)
