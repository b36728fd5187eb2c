from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from idp.config import ConfigError, load_settings, normalise_database_url


def test_defaults_are_embedded_sqlite_and_loopback_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDP_ISSUER", "IDP_DATABASE_URL", "IDP_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.issuer == "http://127.0.0.1:8000"
    assert s.sqlalchemy_url.startswith("sqlite+pysqlite:///")
    assert s.embedded
    assert s.access_token_ttl == 600
    assert (s.refresh_idle_ttl, s.refresh_absolute_ttl) == (30 * 86400, 90 * 86400)
    assert (s.session_idle_ttl, s.session_absolute_ttl) == (30 * 86400, 90 * 86400)
    assert (s.access_token_alg, s.id_token_alg) == ("ES256", "RS256")


@pytest.mark.parametrize(
    ("issuer", "ok"),
    [
        ("https://id.example.com", True),
        ("https://id.example.com/tenant", True),
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8000", True),
        ("http://id.example.com", False),  # RFC 8414 §2: https
        ("https://id.example.com?x=1", False),  # no query
        ("https://id.example.com#frag", False),  # no fragment
        ("id.example.com", False),
    ],
)
def test_issuer_rules(issuer: str, ok: bool) -> None:
    if ok:
        assert load_settings(issuer=issuer).issuer == issuer.rstrip("/")
    else:
        with pytest.raises(ConfigError, match="IDP_ISSUER"):
            load_settings(issuer=issuer)


@pytest.mark.parametrize("ttl", [59, 3601, "ten"])
def test_access_token_ttl_bounds_name_the_setting(monkeypatch: pytest.MonkeyPatch, ttl: object) -> None:
    monkeypatch.setenv("IDP_ACCESS_TOKEN_TTL", str(ttl))
    with pytest.raises(ConfigError, match="^IDP_ACCESS_TOKEN_TTL: "):
        load_settings()


def test_absolute_lifetime_must_cover_idle() -> None:
    with pytest.raises(ConfigError, match="IDP_REFRESH_ABSOLUTE_TTL"):
        load_settings(refresh_idle_ttl=1000, refresh_absolute_ttl=999)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/x.db", "sqlite+pysqlite:///data/x.db"),
        ("postgresql://root@127.0.0.1:5432/test", "postgresql+psycopg://root@127.0.0.1:5432/test"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_database_url_driver_is_chosen(url: str, expected: str) -> None:
    assert normalise_database_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://root@h/db", "not a url"])
def test_bad_database_url(url: str) -> None:
    with pytest.raises(ConfigError, match="IDP_DATABASE_URL"):
        load_settings(database_url=url)


def test_bad_redis_url() -> None:
    with pytest.raises(ConfigError, match="IDP_REDIS_URL"):
        load_settings(redis_url="http://127.0.0.1:6379")


def test_argon2_floor_is_owasp_minimum() -> None:
    with pytest.raises(ConfigError, match="IDP_ARGON2_MEMORY_KIB"):
        load_settings(argon2_memory_kib=8192)
    with pytest.raises(ConfigError, match="IDP_ARGON2_TIME_COST"):
        load_settings(argon2_time_cost=1)  # OWASP: t >= 2 at 19 MiB


def test_password_hashes_are_argon2id_with_the_configured_parameters() -> None:
    from idp.users.passwords import Passwords

    stored = Passwords().hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_refresh_grace_window_is_bounded() -> None:
    with pytest.raises(ConfigError, match="IDP_REFRESH_GRACE_SECONDS"):
        load_settings(refresh_grace_seconds=61)  # industry practice: <= 60 s
    assert load_settings(refresh_grace_seconds=0).refresh_grace_seconds == 0


def test_no_idp_variable_reaches_a_test() -> None:
    """Run by the test below with IDP_ACCESS_TOKEN_TTL exported: conftest's autouse fixture clears it."""
    assert not [name for name in os.environ if name.startswith("IDP_")]
    assert load_settings().access_token_ttl == 600


def test_an_exported_idp_variable_does_not_leak_into_the_suite() -> None:
    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"IDP_ACCESS_TOKEN_TTL": "120"}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    r = subprocess.run(  # noqa: S603
        [*argv, f"{Path(__file__).relative_to(root)}::test_no_idp_variable_reaches_a_test"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_a_missing_service_tool_or_route_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.conftest as suite

    monkeypatch.setattr(suite, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="redis-server is required in CI"):
        suite._unavailable("redis-server")
    monkeypatch.setattr(suite, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="redis-server not available"):
        suite._unavailable("redis-server")


@pytest.mark.parametrize(
    ("issuer", "proxies", "warns"),
    [
        ("https://id.example.com", "", True),
        ("https://id.example.com", " ", True),
        ("https://id.example.com", "172.28.0.1", False),
        ("http://127.0.0.1:8000", "", False),
    ],
)
def test_an_https_issuer_without_trusted_proxies_warns_at_start(issuer: str, proxies: str, warns: bool) -> None:
    """Behind a TLS proxy, no trusted proxies means every client has the proxy's address (shared limits)."""
    from idp.cli.serve import proxy_warning

    warning = proxy_warning(load_settings(issuer=issuer, trusted_proxies=proxies))
    assert (warning is not None) == warns
    if warns:
        assert warning is not None and "IDP_TRUSTED_PROXIES" in warning
