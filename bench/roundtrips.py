"""Round trips per request: SQL statements, transactions, pool checkouts and Redis commands.

Deterministic where throughput is noisy: the app runs in this process (uvicorn in a
thread, the same ``create_app`` and container as ``idp serve``), requests are sent one
at a time, and SQLAlchemy engine events, a wrapper on psycopg's cursor (which also sees the
statements of ``idp.store.direct``) and one on the Redis client count what
each request costs in round trips. ``pg`` counts what goes over the wire to PostgreSQL: each
statement, the BEGIN psycopg sends before the first statement of a transaction, and each
COMMIT or ROLLBACK that ends one (autocommit statements have neither).

    python -m bench.roundtrips [--backend postgres|embedded] [-n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import event

from bench import flows
from bench.server import WORK, IdpServer, prepare_idp


@dataclass
class Counts:
    sql: int = 0
    commits: int = 0
    rollbacks: int = 0
    checkouts: int = 0
    pg: int = 0
    redis: int = 0

    def snapshot(self) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) for f in fields(self)})

    def per(self, before: Counts, n: int) -> dict[str, float]:
        return {f.name: round((getattr(self, f.name) - getattr(before, f.name)) / n, 2) for f in fields(self)}


def _instrument(c: Any, counts: Counts) -> None:
    def bump(name: str) -> Callable[..., None]:
        def listener(*args: Any, **kwargs: Any) -> None:
            setattr(counts, name, getattr(counts, name) + 1)

        return listener

    def in_transaction(conn: Any) -> bool:
        dbapi = conn.connection.dbapi_connection
        status = getattr(getattr(dbapi, "info", None), "transaction_status", None)
        return status is not None and int(status) != 0  # psycopg: 0 = IDLE (SQLite: not counted)

    def statement(conn: Any, *args: Any) -> None:
        if conn.dialect.name != "postgresql":  # PostgreSQL statements are counted at psycopg, below
            counts.sql += 1

    def pg_statement(raw: Any) -> None:
        """Every statement psycopg sends, through SQLAlchemy or straight (idp.store.direct)."""
        counts.sql += 1
        counts.pg += 1 + (not raw.autocommit and int(raw.info.transaction_status) == 0)  # + the implicit BEGIN

    def ended(name: str) -> Callable[..., None]:
        def listener(conn: Any) -> None:
            setattr(counts, name, getattr(counts, name) + 1)
            counts.pg += in_transaction(conn)

        return listener

    event.listen(c.engine, "before_cursor_execute", statement)
    event.listen(c.engine, "commit", ended("commits"))
    event.listen(c.engine, "rollback", ended("rollbacks"))
    event.listen(c.engine, "checkout", bump("checkouts"))
    if c.engine.dialect.name == "postgresql":
        import psycopg

        original_execute = psycopg.Cursor.execute

        def counted_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            pg_statement(self.connection)
            return original_execute(self, *args, **kwargs)

        original_many = psycopg.Cursor.executemany

        def counted_many(self: Any, *args: Any, **kwargs: Any) -> Any:
            pg_statement(self.connection)  # one pipeline: one round trip
            return original_many(self, *args, **kwargs)

        psycopg.Cursor.execute = counted_execute  # type: ignore[method-assign]
        psycopg.Cursor.executemany = counted_many  # type: ignore[method-assign]
    client = getattr(c.ephemeral, "_client", None)
    if client is not None:
        original = client.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts.redis += 1
            return original(*args, **kwargs)

        client.execute_command = counted


class _InThread:
    """uvicorn serving ``app`` on the server's port from a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> _InThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("in-process uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def measure(srv: IdpServer, n: int = 20) -> dict[str, dict[str, float]]:
    from idp.app import create_app
    from idp.config import Settings
    from idp.services import build_services

    env = srv.env()
    c = build_services(Settings(**{k.removeprefix("IDP_").lower(): v for k, v in env.items()}))  # type: ignore[arg-type]
    counts = Counts()
    _instrument(c, counts)
    out: dict[str, dict[str, float]] = {}
    try:
        with _InThread(create_app(services=c), srv.port), httpx.Client(base_url=srv.base_url, timeout=30) as http:
            paths = flows.endpoints(srv)
            web, service = srv.info["web"], srv.info["service"]
            form = {"content-type": flows.FORM_CT}
            session = flows.idp_login(srv)

            def count(name: str, call: Callable[[int], httpx.Response], ok: tuple[int, ...] = (200,)) -> list[Any]:
                call(-1)  # warm: caches, pools, first-use imports
                before, results = counts.snapshot(), []
                wall0, cpu0 = time.perf_counter(), time.process_time()
                for i in range(n):
                    r = call(i)
                    if r.status_code not in ok:
                        raise RuntimeError(f"{name}: {r.status_code} {r.text[:160]}")
                    results.append(r)
                wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                out[name] = counts.per(before, n) | {
                    "latency_ms": round(wall / n * 1000, 2),
                    "cpu_ms": round(cpu / n * 1000, 2),  # server and this client together, one process
                }
                return results

            count("discovery", lambda i: http.get(paths["discovery"]))
            count("jwks", lambda i: http.get(paths["jwks"]))
            cc_headers = form | {"authorization": flows.basic(service)}
            count(
                "client_credentials", lambda i: http.post(paths["token"], content=flows.cc_body(), headers=cc_headers)
            )
            codes = [
                r.headers["location"]
                for r in count(
                    "authorize",
                    lambda i: http.get(flows.authorize_path(srv, paths), headers={"cookie": session}),
                    (302, 303),
                )
            ]
            codes = [httpx.URL(loc).params["code"] for loc in codes]
            codes.append(flows.idp_code(srv, paths, session))  # one more for the warm-up call
            web_headers = form | {"authorization": flows.basic(web)}
            exchanged = count(
                "code_exchange",
                lambda i: http.post(paths["token"], content=flows.exchange_body(srv, codes[i]), headers=web_headers),
            )
            tokens = [r.json() for r in exchanged]
            rts = [t["refresh_token"] for t in tokens]
            warm_rt = _fresh_rt(http, srv, paths, session, web_headers)

            def refresh(i: int) -> httpx.Response:
                body = f"grant_type=refresh_token&refresh_token={warm_rt if i < 0 else rts[i]}"
                return http.post(paths["token"], content=body, headers=web_headers)

            refreshed = count("refresh", refresh)
            bearer = {"authorization": f"Bearer {tokens[0]['access_token']}"}
            count("userinfo", lambda i: http.get(paths["userinfo"], headers=bearer))
            if "introspection" in paths:
                body = f"token={quote(tokens[0]['access_token'])}&token_type_hint=access_token"
                count("introspection", lambda i: http.post(paths["introspection"], content=body, headers=web_headers))
            if "revocation" in paths:
                new_rts = [r.json()["refresh_token"] for r in refreshed]
                warm_revoke = _fresh_rt(http, srv, paths, session, web_headers)

                def revoke(i: int) -> httpx.Response:
                    body = f"token={warm_revoke if i < 0 else new_rts[i]}&token_type_hint=refresh_token"
                    return http.post(paths["revocation"], content=body, headers=web_headers)

                count("revocation", revoke)
            forms = [flows.login_post_args(srv, *flows.login_form(http, srv.base_url)) for _ in range(n + 1)]

            def login(i: int) -> httpx.Response:
                body, headers = forms[i]
                return http.post("/login", content=body, headers=headers)

            count("login", login, (303,))
    finally:
        c.close()
    return out


def _fresh_rt(http: httpx.Client, srv: IdpServer, paths: dict[str, str], session: str, headers: dict) -> str:
    code = flows.idp_code(srv, paths, session)
    r = http.post(paths["token"], content=flows.exchange_body(srv, code), headers=headers)
    return str(r.json()["refresh_token"])


def run(backend: str = "postgres", n: int = 20) -> dict[str, Any]:
    run_dir = WORK / "roundtrips"
    srv = prepare_idp(f"roundtrips-{backend}", backend=backend, workers=1, run_dir=run_dir)
    try:
        return {"backend": backend, "requests_each": n, "per_request": measure(srv, n)}
    finally:
        srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.roundtrips")
    p.add_argument("--backend", default="postgres", choices=["postgres", "embedded"])
    p.add_argument("-n", type=int, default=20)
    args = p.parse_args()
    print(json.dumps(run(args.backend, args.n), indent=1))


if __name__ == "__main__":
    main()
