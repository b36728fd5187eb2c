"""Shared fixtures.

Every test that takes ``backend`` (directly or through ``container``/``client``)
runs twice: on the embedded default (SQLite file + in-process store) and on
PostgreSQL + Redis. Each run gets its own PostgreSQL database and Redis key
prefix; tables are truncated between tests. Locally a missing service skips
the postgres variant; with ``CI`` set it fails.

Time is a FrozenClock: tests move it instead of sleeping. Stored expiry times are
always checked against it (Redis TTLs only collect garbage). Tests that must wait on
real time (live servers, streams, Redis faults) are marked ``timing``; ``make test``
runs them after the rest, serially.

No ``IDP_*`` variable of the shell reaches a test (``_no_idp_environment``): a test
that needs one sets it itself.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from idp.app import create_app
from idp.clock import FrozenClock
from idp.config import Settings, load_settings
from idp.services import Services, build_services
from idp.store.db import make_engine, upgrade
from idp.store.models import Base

PG_ADMIN_URL = os.environ.get("IDP_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IDP_TEST_REDIS", "redis://127.0.0.1:6379/0")
ISSUER = "https://idp.test"
IN_CI = bool(os.environ.get("CI"))


def _unavailable(what: str) -> None:
    """Skip the test for want of ``what`` (a service, a tool, a route); with ``CI`` set, fail it instead."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


@pytest.fixture(autouse=True)
def _no_idp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ``IDP_*`` from the environment, so one exported in the developer's shell (say
    ``IDP_ACCESS_TOKEN_TTL=60``) would change what every test builds. Cleared for each test; the module-level
    reads above (``IDP_TEST_PG``, ``IDP_TEST_REDIS``) happened at import, before this."""
    for name in [k for k in os.environ if k.startswith("IDP_")]:
        monkeypatch.delenv(name)


@dataclass
class Backend:
    name: str
    database_url: str
    redis_url: str
    redis_prefix: str


def _pg_reachable() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def _redis_reachable() -> bool:
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(r.ping())
    except Exception:
        return False
    finally:
        r.close()


@pytest.fixture(scope="session", autouse=True)
def _key_material_pool() -> Iterator[None]:
    """Reuse a few pre-generated private keys (fresh kids) instead of making RSA keys for every app.

    Key generation is most of an app's start-up cost in tests; the keyring logic under test is unchanged
    (states, kids, publication, signing), only the key material repeats across tests, cycling through a
    pool so that consecutive keys in one test differ.
    """
    import itertools

    import idp.keys.keyring as keyring_mod
    from idp.crypto import random_id

    real = keyring_mod.generate
    pools = {alg: itertools.cycle([real(alg)[1] for _ in range(4)]) for alg in ("ES256", "RS256", "EdDSA")}

    def pooled(alg: str, kid: str | None = None) -> tuple[str, bytes, dict[str, object]]:
        if alg not in pools:
            return real(alg, kid)
        kid = kid or random_id(6)  # 48 bits: unique among a handful of keys; short, it rides in every token
        key = keyring_mod._import_private(alg, next(pools[alg]), kid)
        return kid, key.as_pem(private=True), key.as_dict(private=False)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyring_mod, "generate", pooled)
        yield


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "idp.sqlite3"
    engine = make_engine(f"sqlite+pysqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once, dropped at the end."""
    if not _pg_reachable():
        _unavailable("PostgreSQL at 127.0.0.1:5432")
    import psycopg

    name = f"idp_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(load_settings(database_url=url).sqlalchemy_url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Backend]:
    if request.param == "embedded":
        db = tmp_path / "idp.sqlite3"
        shutil.copy(sqlite_template, db)
        yield Backend("embedded", f"sqlite:///{db}", "", "")
        return
    url = request.getfixturevalue("pg_database")
    if not _redis_reachable():
        _unavailable("Redis at 127.0.0.1:6379")
    prefix = f"idptest:{secrets.token_hex(6)}:"
    yield Backend("postgres", url, REDIS_URL, prefix)
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


@pytest.fixture
def clock() -> FrozenClock:
    import time

    return FrozenClock(float(int(time.time())))


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to change settings for every container there."""
    return {}


@pytest.fixture
def settings(backend: Backend, tmp_path: Path, settings_overrides: dict[str, object]) -> Settings:
    values: dict[str, object] = {
        "issuer": ISSUER,
        "database_url": backend.database_url,
        "redis_url": backend.redis_url,
        "redis_prefix": backend.redis_prefix or "idp:",
        "kek": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        "kek_file": tmp_path / "kek",
        "data_dir": tmp_path,
        "demo": False,
    }
    values.update(settings_overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _truncate(container: Services) -> None:
    if container.engine.dialect.name != "postgresql":
        return
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with container.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def container(settings: Settings, clock: FrozenClock) -> Iterator[Services]:
    c = build_services(settings, clock=clock)
    _truncate(c)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def app(container: Services) -> AsyncIterator[object]:
    application = create_app(services=container)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30) as manager:
        yield manager.app


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER, follow_redirects=False) as c:
        yield c
