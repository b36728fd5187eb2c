"""BffSettings and the --upstream syntax: what is refused, and why."""

from __future__ import annotations

import base64
import secrets

import pytest

from idp.bff.config import BffConfigError, BffSettings, Upstream, load_bff_settings, parse_upstream

KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
BASE = {"issuer": "https://idp.example", "client_id": "c", "client_secret": "s", "origin": "https://app.example"}


def settings(**kw: object) -> BffSettings:
    return load_bff_settings(**{**BASE, "encryption_key": KEY, **kw})


def test_defaults() -> None:
    s = settings()
    assert s.cookie_name == "__Host-bff" and s.same_site == "lax" and s.secure_cookie
    assert s.redirect_uri == "https://app.example/bff/callback"
    assert s.post_logout_redirect_uri == "https://app.example/"
    assert s.login_cookie_name == "__Host-bff-login"
    assert len(s.key()) == 32


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_BFF_ISSUER", "https://idp.example")
    monkeypatch.setenv("IDP_BFF_ORIGIN", "https://app.example")
    monkeypatch.setenv("IDP_BFF_ENCRYPTION_KEY", KEY)
    monkeypatch.setenv("IDP_BFF_SAME_SITE", "strict")
    monkeypatch.setenv(
        "IDP_BFF_UPSTREAMS",
        "/api=http://127.0.0.1:9001 /orders=https://orders.internal;exchange=https://orders.example",
    )
    s = load_bff_settings()
    assert s.same_site == "strict"
    assert s.upstreams == (
        Upstream("/api", "http://127.0.0.1:9001"),
        Upstream("/orders", "https://orders.internal", "exchange", "https://orders.example"),
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/api=http://127.0.0.1:9001", Upstream("/api", "http://127.0.0.1:9001", "forward", None)),
        ("/api/=http://127.0.0.1:9001/", Upstream("/api", "http://127.0.0.1:9001", "forward", None)),
        ("/orders=http://127.0.0.1:9002;exchange=https://orders.example",
         Upstream("/orders", "http://127.0.0.1:9002", "exchange", "https://orders.example")),
        ("/r=https://r.internal;audience=https://r.example", Upstream("/r", "https://r.internal", "forward", "https://r.example")),
        ("/r=https://r.internal;mode=exchange;audience=https://r.example",
         Upstream("/r", "https://r.internal", "exchange", "https://r.example")),
    ],
)  # fmt: skip
def test_parse_upstream(spec: str, expected: Upstream) -> None:
    assert parse_upstream(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "http://127.0.0.1:9001",  # no prefix
        "api=http://127.0.0.1:9001",  # not a path
        "/bff=http://127.0.0.1:9001",  # the BFF's own
        "/a//b=http://127.0.0.1:9001",
        "/api=http://api.example",  # plain http off loopback
        "/api=ftp://127.0.0.1",
        "/api=http://127.0.0.1:9001?x=1",
        "/api=http://127.0.0.1:9001;exchange=",  # exchange needs an audience
        "/api=http://127.0.0.1:9001;mode=exchange",
        "/api=http://127.0.0.1:9001;mode=teleport",
        "/api=http://127.0.0.1:9001;colour=blue",
    ],
)
def test_parse_upstream_refuses(spec: str) -> None:
    with pytest.raises(BffConfigError):
        parse_upstream(spec)


def test_cookie_name_needs_host_prefix() -> None:
    with pytest.raises(BffConfigError, match="__Host-"):
        settings(cookie_name="bff")
    loopback = settings(cookie_name="bff", dev=True, origin="http://127.0.0.1:8080")
    assert loopback.cookie_name == "bff" and not loopback.secure_cookie
    with pytest.raises(BffConfigError):
        settings(cookie_name="bff", dev=True)  # dev only on a loopback origin
    with pytest.raises(BffConfigError):
        settings(cookie_name="__Host-a;b")


def test_encryption_key_required_outside_dev() -> None:
    with pytest.raises(BffConfigError, match="ENCRYPTION_KEY"):
        load_bff_settings(**BASE)
    dev = load_bff_settings(**{**BASE, "origin": "http://localhost:8080", "dev": True})
    assert len(dev.key()) == 32
    for bad in ("short", KEY + "A", "!" * 43, base64.urlsafe_b64encode(b"x" * 31).decode()):
        with pytest.raises(BffConfigError):
            settings(encryption_key=bad)


@pytest.mark.parametrize(
    "overrides",
    [
        {"origin": "http://app.example"},  # plain http off loopback
        {"origin": "https://app.example/path"},
        {"issuer": "http://idp.example"},
        {"same_site": "none"},  # a session cookie sent on cross-site requests: no
        {"idle_timeout": 7200, "session_lifetime": 3600},
        {"store_url": "mongodb://x"},
        {"scopes": "profile"},
    ],
)
def test_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(BffConfigError):
        settings(**overrides)


def test_login_pending_per_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().login_pending_per_ip == 100
    monkeypatch.setenv("IDP_BFF_LOGIN_PENDING_PER_IP", "7")
    assert settings().login_pending_per_ip == 7
    for bad in (0, -1, 1_000_001):
        with pytest.raises(BffConfigError, match="IDP_BFF_LOGIN_PENDING_PER_IP"):
            settings(login_pending_per_ip=bad)
