"""Start and stop the servers under test on free 127.0.0.1 ports.

* ``IdpServer``: ``idp serve`` in one of three modes: the embedded default (SQLite +
  in-process store, 1 worker) and PostgreSQL + Redis with 1 or 2 workers. Each
  PostgreSQL mode gets its own database and Redis key prefix, dropped on stop.
  Clients and the user are created in-process through the same registry the CLI uses.
* ``PeerServer``: node-oidc-provider (``bench/peer/server.mjs``) as 1 process
  (memory adapter) or 2 processes (node cluster, Redis adapter).

Processes are ended by PID only (the server's PID and the descendants it started).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procstat

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
PEER_DIR = BENCH / ".peer"
PG_ADMIN_URL = os.environ.get("IDP_BENCH_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("IDP_BENCH_REDIS", "redis://127.0.0.1:6379/0")
AUDIENCE = "https://api.bench.example"
REDIRECT_URI = "https://app.bench.example/cb"
API_SCOPE = "api:read api:write"
WEB_SCOPE = "openid profile email offline_access"
USERNAME = "bench"
MFA_USERS = 120  # each signs in with a TOTP code at most twice per 30 s step (a code is accepted once)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    kind: str  # "idp" | "peer"
    backend: str  # "embedded" | "postgres" | "memory" | "redis"
    workers: int
    port: int
    workdir: Path
    info: dict[str, Any] = field(default_factory=dict)  # clients, secrets, user
    proc: subprocess.Popen[bytes] | None = None
    _known: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def pids(self) -> list[int]:
        found = procstat.tree(self.pid) if self.proc and self.proc.poll() is None else []
        self._known.update(found)
        return found

    def worker_pids(self) -> list[int]:
        """Processes that serve requests (the supervisor/cluster primary is not one when workers > 1)."""
        tree = self.pids()
        if self.workers == 1 and self.kind == "idp":
            return tree[:1]
        if self.kind == "idp":
            return [p for p in tree[1:] if "spawn_main" in procstat.cmdline(p)]
        if self.workers == 1:
            return tree[:1]
        return [p for p in tree[1:] if "node" in procstat.cmdline(p)]

    def cpu(self) -> float:
        return procstat.cpu_seconds(self.pids())

    def rss(self) -> list[float]:
        return [round(r, 1) for p in self.worker_pids() if (r := procstat.rss_mib(p)) is not None]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 20) -> str:
        path = self.workdir / "server.log"
        if not path.exists():
            return ""
        with path.open("rb") as f:
            f.seek(max(path.stat().st_size - 400 * n, 0))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])

    def trim_log(self, keep: int = 200) -> None:
        """Keep the last lines of the server log (the access log of a full run is tens of MB)."""
        path = self.workdir / "server.log"
        if path.exists() and path.stat().st_size > 1_000_000:
            path.write_text(self.log_tail(keep) + "\n")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for pid in self._known - {self.proc.pid}:  # children that outlived their supervisor, by PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if procstat.cmdline(pid):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None
        self.trim_log()


def _wait_ready(server: Server, path: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + path
    ok = 0
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited during start:\n{server.log_tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                ok += 1
                if ok >= 3 and len(server.worker_pids()) >= server.workers:
                    time.sleep(0.5)  # let every worker finish its startup
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}")


# -- idp --------------------------------------------------------------------------------------------
class IdpServer(Server):
    database: str = ""
    redis_prefix: str = ""

    def env(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.info["env"].items()}

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.database:
                _drop_database(self.database)
                self.database = ""
            if self.redis_prefix:
                _drop_redis_prefix(self.redis_prefix)
                self.redis_prefix = ""


def _create_database() -> tuple[str, str]:
    import psycopg

    name = f"idp_bench_{secrets.token_hex(5)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _drop_redis_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
    finally:
        r.close()


def _mfa_users(c: Any, password: str) -> list[dict[str, Any]]:
    """Users with a confirmed TOTP factor, for the password + TOTP sign-in row: name, secret, the step used."""
    from idp.sessions.factors import totp

    users = []
    for i in range(MFA_USERS):
        user = c.directory.create(f"{USERNAME}-mfa-{i}", password)
        started = c.factors.start_totp(user.id, user.username)
        step = totp.step_at(c.clock.now())
        c.factors.confirm_totp(user.id, started.factor_id, totp.code_at(started.secret, step), ip="bench")
        users.append({"username": user.username, "password": password, "secret": started.secret, "step": step})
    return users


def _passkey_user(c: Any, password: str) -> dict[str, Any]:
    """A user with a passkey (registered straight into the store; the bench holds its private key)."""
    from bench.passkey import new_credential
    from idp.sessions.passkeys import Passkey

    user = c.directory.create(f"{USERNAME}-passkey", password)
    credential = new_credential()
    raw = {k: base64.urlsafe_b64decode(credential[k] + "==") for k in ("credential_id", "public_key")}
    c.passkeys.store.add(Passkey(
        id=secrets.token_urlsafe(9), user_id=user.id, credential_id=raw["credential_id"], public_key=raw["public_key"],
        sign_count=0, transports=("internal",), backup_eligible=False, backed_up=False, aaguid="", name="bench",
        created_at=c.clock.now(),
    ))  # fmt: skip
    return {"username": user.username, "sub": user.id, "credential": credential}


def _idp_fixtures(env: dict[str, str]) -> dict[str, Any]:
    """Schema, keys, clients and the user, created with the same registry the CLI uses."""
    from idp.clients.model import TOKEN_EXCHANGE
    from idp.config import Settings
    from idp.services import build_services, check_kek
    from idp.store.db import upgrade

    values = {k.removeprefix("IDP_").lower(): v for k, v in env.items() if k.startswith("IDP_")}
    c = build_services(Settings(**values))  # type: ignore[arg-type]
    try:
        upgrade(c.engine)
        check_kek(c)
        c.keyring.tick()
        service, service_secret = c.clients.create(
            name="bench service", kind="service", scope=API_SCOPE, audience=AUDIENCE
        )
        web, web_secret = c.clients.create(
            name="bench web",
            kind="web",
            redirect_uris=[REDIRECT_URI],
            scope=WEB_SCOPE,
            first_party=True,
            grant_types=["authorization_code", "refresh_token", TOKEN_EXCHANGE],
            token_exchange_audiences=[AUDIENCE],
        )  # the token_exchange row: a BFF trading its user's token for one to the API
        password = secrets.token_urlsafe(12)
        user = c.directory.create(USERNAME, password, email="bench@example.com", name="Bench User")
        return {
            "mfa_users": _mfa_users(c, password),
            "passkey_user": _passkey_user(c, password),
            "service": {"client_id": service.client_id, "client_secret": service_secret},
            "web": {"client_id": web.client_id, "client_secret": web_secret, "redirect_uri": REDIRECT_URI},
            "user": {"username": USERNAME, "password": password, "sub": user.id},
            "argon2": {
                "memory_kib": c.settings.argon2_memory_kib,
                "time_cost": c.settings.argon2_time_cost,
                "parallelism": c.settings.argon2_parallelism,
            },
        }
    finally:
        c.close()


def prepare_idp(
    name: str, *, backend: str, workers: int, run_dir: Path, extra_env: dict[str, str] | None = None
) -> IdpServer:
    """Settings, database, Redis prefix and fixtures for an idp mode; not started yet.

    The server runs with the shipped defaults (log level INFO: one access-log line per
    request, as users run it) except what the bench needs; ``extra_env`` (``--idp-env``)
    overrides, for A/B runs of a setting.
    """
    port = free_port()
    workdir = run_dir / name
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh SQLite file and KEK every time
    workdir.mkdir(parents=True)
    server = IdpServer(name=name, kind="idp", backend=backend, workers=workers, port=port, workdir=workdir)
    env = {
        "IDP_ISSUER": server.base_url,
        "IDP_DATA_DIR": str(workdir),
        "IDP_KEK": base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode(),
        "IDP_KEK_FILE": str(workdir / "kek"),
        "IDP_DEMO": "false",
        "IDP_ACCESS_TOKEN_TTL": "600",
        # Codes are harvested before the exchange row runs; 600 s (the maximum) keeps them valid.
        "IDP_AUTHORIZATION_CODE_TTL": "600",
        # One user logs in many times: the throttle must not count successes against it.
        "IDP_LOGIN_MAX_FAILURES": "100",
    }
    try:
        if backend == "postgres":
            server.database, url = _create_database()
            server.redis_prefix = f"idpbench:{secrets.token_hex(5)}:"
            env |= {"IDP_DATABASE_URL": url, "IDP_REDIS_URL": REDIS_URL, "IDP_REDIS_PREFIX": server.redis_prefix}
        else:
            env |= {"IDP_DATABASE_URL": f"sqlite:///{workdir / 'idp.sqlite3'}", "IDP_REDIS_URL": ""}
        env |= extra_env or {}
        server.info = _idp_fixtures(env) | {"env": env}
        return server
    except BaseException:
        server.stop()
        raise


def start_idp(
    name: str, *, backend: str, workers: int, run_dir: Path, extra_env: dict[str, str] | None = None
) -> IdpServer:
    server = prepare_idp(name, backend=backend, workers=workers, run_dir=run_dir, extra_env=extra_env)
    try:
        log = (server.workdir / "server.log").open("wb")
        idp_bin = Path(sys.executable).parent / "idp"
        cmd = [str(idp_bin), "serve", "--host", "127.0.0.1", "--port", str(server.port), "--workers", str(workers)]
        server.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=os.environ | server.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        _wait_ready(server, "/healthz")
        return server
    except BaseException:
        server.stop()
        raise


# -- node-oidc-provider -----------------------------------------------------------------------------
def peer_versions() -> dict[str, str]:
    out = {}
    for pkg in ("oidc-provider", "ioredis"):
        meta = PEER_DIR / "node_modules" / pkg / "package.json"
        if meta.exists():
            out[pkg] = json.loads(meta.read_text())["version"]
    return out


def ensure_peer(log: Any = print) -> bool:
    """Install oidc-provider 9 (and ioredis for its cluster mode) into the git-ignored bench/.peer/."""
    if {"oidc-provider", "ioredis"} <= peer_versions().keys():
        return True
    if shutil.which("npm") is None or shutil.which("node") is None:
        log("node/npm not found: the peer rows are skipped")
        return False
    PEER_DIR.mkdir(exist_ok=True)
    log("installing oidc-provider@9 and ioredis@5 into bench/.peer ...")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(PEER_DIR), "oidc-provider@9", "ioredis@5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        log(f"npm install failed; the peer rows are skipped:\n{done.stderr[-2000:]}")
        return False
    return True


def _peer_keys() -> list[dict[str, Any]]:
    from joserfc.jwk import ECKey, RSAKey

    ec = ECKey.generate_key("P-256").as_dict(private=True) | {"kid": "peer-es256", "alg": "ES256", "use": "sig"}
    rsa = RSAKey.generate_key(2048).as_dict(private=True) | {"kid": "peer-rs256", "alg": "RS256", "use": "sig"}
    return [ec, rsa]


class PeerServer(Server):
    def stop(self) -> None:
        try:
            super().stop()
        finally:
            prefix = self.info.pop("redis_prefix", "")
            if prefix:
                _drop_redis_prefix(prefix)


def start_peer(name: str, *, processes: int, run_dir: Path) -> PeerServer:
    port = free_port()
    workdir = run_dir / name
    workdir.mkdir(parents=True, exist_ok=True)
    backend = "redis" if processes > 1 else "memory"
    server = PeerServer(name=name, kind="peer", backend=backend, workers=processes, port=port, workdir=workdir)
    info = {
        "service": {"client_id": "bench-service", "client_secret": secrets.token_urlsafe(32)},
        "web": {"client_id": "bench-web", "client_secret": secrets.token_urlsafe(32), "redirect_uri": REDIRECT_URI},
        "user": {"username": USERNAME, "sub": "bench-user"},
    }
    config = {
        "port": port,
        "issuer": server.base_url,
        "processes": processes,
        "redis_url": REDIS_URL if processes > 1 else "",
        "redis_prefix": f"peerbench:{secrets.token_hex(5)}:",
        "audience": AUDIENCE,
        "api_scope": API_SCOPE,
        "access_token_ttl": 600,
        "keys": _peer_keys(),
        "clients": info,
        "modules": str(PEER_DIR / "node_modules"),
        "debug": bool(os.environ.get("BENCH_PEER_DEBUG")),
    }
    cfg_path = workdir / "peer.json"
    cfg_path.write_text(json.dumps(config))
    cfg_path.chmod(0o600)
    server.info = info | {"redis_prefix": config["redis_prefix"] if processes > 1 else ""}
    log = (workdir / "server.log").open("wb")
    try:
        server.proc = subprocess.Popen(
            ["node", str(BENCH / "peer" / "server.mjs"), str(cfg_path)],
            cwd=ROOT,
            env=os.environ | {"NODE_ENV": "production"},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _wait_ready(server, "/.well-known/openid-configuration")
        return server
    except BaseException:
        server.stop()
        raise
