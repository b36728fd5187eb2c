"""The benchmark rows. Each row checks it can run on a target (and says why not),
prepares what its requests consume (outside the measurement), then drives the load.

Stateful rows feed each other within a round, in this order: the code exchange
consumes fresh codes and captures the refresh tokens it returns; the refresh row
chains through a few of them (each response's token is the next request's); the
revocation row revokes the rest, each once.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from bench import argon2_ceiling, flows, load
from bench.dpop_proofs import ProofMaker
from bench.server import Server

MIN_POOL = 200


@dataclass
class Budget:
    duration: int  # seconds per time-bounded measurement
    quick: bool
    connections: int = load.CONNECTIONS
    threads: int = load.THREADS


@dataclass
class Target:
    server: Server
    paths: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def is_idp(self) -> bool:
        return self.server.kind == "idp"

    def tmp(self, name: str) -> Path:
        return self.server.workdir / name

    def sizes(self) -> dict[str, Any]:
        return self.state.setdefault("sizes", {})

    def pool_size(self, row: str, b: Budget, default: int, minimum: int = MIN_POOL) -> int:
        """Values one measurement consumes: the last measured rate x duration (+25 %), bounded."""
        rate = self.state.get("rates", {}).get(row)
        want = rate * b.duration * 1.25 if rate else default
        return int(min(max(want, minimum), 20_000))


class Row:
    key = ""
    title = ""
    peer_missing: str | None = None  # why node-oidc-provider has no such row
    loader = "wrk"

    def check(self, t: Target) -> str | None:
        """None when the row can run on ``t``, else the reason it cannot (shown in RESULTS.md)."""
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        pass

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        raise NotImplementedError


def _wrk(t: Target, b: Budget, script: str, args: list[tuple[str, str]], *, duration: int | None = None) -> dict:
    return load.run_wrk(
        t.server.base_url,
        script,
        args,
        duration=duration or b.duration,
        connections=b.connections,
        threads=b.threads,
    )


# -- static requests -----------------------------------------------------------------------------------
class StaticRow(Row):
    """The same request repeated; ``request`` returns (method, path, headers, body)."""

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        raise NotImplementedError

    def validate(self, t: Target, r: httpx.Response) -> str | None:
        return None if r.status_code == 200 else f"answers {r.status_code}"

    def check(self, t: Target) -> str | None:
        try:
            method, path, headers, body = self.request(t)
        except MissingPrerequisite as exc:
            return str(exc)
        r = httpx.request(method, t.server.base_url + path, headers=headers, content=body or None, timeout=30)
        if r.status_code in (404, 405):
            return f"{path} not implemented yet ({r.status_code})"
        return self.validate(t, r)

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        method, path, headers, body = self.request(t)
        args = [("method", method), ("path", path)] + [("header", f"{k}: {v}") for k, v in headers.items()]
        if body:
            args.append(("body", body))
        return _wrk(t, b, "static.lua", args)


class MissingPrerequisite(Exception):
    pass


class Discovery(StaticRow):
    key, title = "discovery", "Discovery document"

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        return "GET", t.paths["discovery"], {}, ""


class Jwks(StaticRow):
    key, title = "jwks", "JWKS"

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        return "GET", t.paths["jwks"], {}, ""


class ClientCredentials(StaticRow):
    key, title = "client_credentials", "client_credentials (Basic, ES256 at+jwt)"

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["service"])}
        return "POST", t.paths["token"], headers, flows.cc_body()

    def validate(self, t: Target, r: httpx.Response) -> str | None:
        if r.status_code != 200:
            return f"answers {r.status_code}: {r.text[:160]}"
        token = r.json().get("access_token", "")
        shape = flows.jwt_parts(token)
        if not shape or shape["header"].get("alg") != "ES256" or shape["header"].get("typ") != "at+jwt":
            return f"access token is not an ES256 at+jwt: {shape and shape['header']}"
        t.sizes()["client_credentials_access_token"] = {"bytes": len(token), **shape}
        return None


USER_TOKEN_MAX_AGE = 240  # s; access tokens live 600 s and a full run takes longer


def user_tokens(t: Target) -> dict[str, Any]:
    """One full code flow for the user (access token for userinfo/introspection, sizes); renewed when old."""
    if "user_tokens" in t.state and time.monotonic() - t.state["user_tokens_at"] < USER_TOKEN_MAX_AGE:
        return t.state["user_tokens"]
    if "token" not in t.paths or "authorization" not in t.paths:
        raise MissingPrerequisite("no token/authorization endpoint")
    code = flows.idp_code(t.server, t.paths, session_cookie(t)) if t.is_idp else flows.peer_mint(t.server, "code", 1)[0]
    r = flows.post_form(t.server, t.paths["token"], flows.exchange_body(t.server, code), t.server.info["web"])
    if r.status_code != 200:
        raise MissingPrerequisite(f"code exchange answers {r.status_code}: {r.text[:160]}")
    tokens = r.json()
    for name in ("access_token", "id_token", "refresh_token"):
        value = tokens.get(name)
        if value:
            t.sizes()[f"code_flow_{name}"] = {"bytes": len(value), **(flows.jwt_parts(value) or {"format": "opaque"})}
    t.state["user_tokens"], t.state["user_tokens_at"] = tokens, time.monotonic()
    return tokens


def session_cookie(t: Target) -> str:
    if "session_cookie" not in t.state:
        try:
            t.state["session_cookie"] = flows.idp_login(t.server)
        except (RuntimeError, httpx.HTTPError) as exc:
            raise MissingPrerequisite(f"cannot sign in: {exc}") from None
    return str(t.state["session_cookie"])


class Introspection(StaticRow):
    key, title = "introspection", "Introspection (user access token)"

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        if "introspection" not in t.paths:
            raise MissingPrerequisite("no introspection endpoint advertised")
        token = user_tokens(t)["access_token"]
        headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["web"])}
        return "POST", t.paths["introspection"], headers, f"token={quote(token)}&token_type_hint=access_token"

    def validate(self, t: Target, r: httpx.Response) -> str | None:
        if r.status_code != 200 or r.json().get("active") is not True:
            return f"answers {r.status_code}: {r.text[:160]}"
        return None


class TokenExchange(StaticRow):
    key, title = "token_exchange", "Token exchange (RFC 8693: the user's access token for an API's at+jwt)"
    peer_missing = "node-oidc-provider has no RFC 8693 token exchange"

    def check(self, t: Target) -> str | None:
        return super().check(t) if t.is_idp else self.peer_missing

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        token = user_tokens(t)["access_token"]  # issued to the web client, which exchanges it (a BFF)
        headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["web"])}
        return "POST", t.paths["token"], headers, flows.token_exchange_body(token)

    def validate(self, t: Target, r: httpx.Response) -> str | None:
        if r.status_code != 200:
            return f"answers {r.status_code}: {r.text[:160]}"
        token = r.json().get("access_token", "")
        shape = flows.jwt_parts(token)
        if not shape or shape["header"].get("typ") != "at+jwt" or "act" not in shape["claims"]:
            return f"the exchanged token is not an at+jwt with act: {shape}"
        t.sizes()["token_exchange_access_token"] = {"bytes": len(token), **shape}
        return None


class Userinfo(StaticRow):
    key, title = "userinfo", "UserInfo (Bearer)"

    def request(self, t: Target) -> tuple[str, str, dict[str, str], str]:
        if "userinfo" not in t.paths:
            raise MissingPrerequisite("no userinfo endpoint advertised")
        return "GET", t.paths["userinfo"], {"Authorization": "Bearer " + user_tokens(t)["access_token"]}, ""

    def validate(self, t: Target, r: httpx.Response) -> str | None:
        if r.status_code != 200 or "sub" not in r.json():
            return f"answers {r.status_code}: {r.text[:160]}"
        return None


# -- pool-fed requests ----------------------------------------------------------------------------------
def harvest_codes(t: Target, b: Budget, n: int) -> Path:
    """n fresh codes into a pool file: idp through /authorize with a session, the peer by minting."""
    pool = t.tmp("codes.txt")
    if t.is_idp:
        per_thread = math.ceil(n / b.threads)
        args = [
            ("method", "GET"),
            ("path", flows.authorize_path(t.server, t.paths)),
            ("header", f"Cookie: {session_cookie(t)}"),
            ("max", str(per_thread)),
            ("capture", "location:code"),
            ("out", str(t.tmp("codes-out"))),
        ]
        _wrk(t, b, "pool.lua", args, duration=120)
        codes = load.read_pool(t.tmp("codes-out"), b.threads)
    else:
        codes = flows.peer_mint(t.server, "code", n)
    if len(codes) < min(n, MIN_POOL) // 2:
        raise RuntimeError(f"{t.name}: harvested only {len(codes)} codes of {n}")
    pool.write_text("\n".join(codes) + "\n")
    return pool


def exchange_template(t: Target) -> str:
    web = t.server.info["web"]
    return (
        f"grant_type=authorization_code&code={{}}&redirect_uri={quote(web['redirect_uri'], safe='')}"
        f"&code_verifier={flows.CODE_VERIFIER}"
    )


def run_exchange(t: Target, b: Budget, pool: Path) -> dict[str, Any]:
    """Exchange every code in ``pool`` once; the refresh tokens returned join the target's RT pool."""
    headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["web"])}
    args = [("method", "POST"), ("path", t.paths["token"]), ("template", exchange_template(t)), ("pool", str(pool))]
    args += [("header", f"{k}: {v}") for k, v in headers.items()]
    args += [("capture", "json:refresh_token"), ("out", str(t.tmp("rt-out")))]
    result = _wrk(t, b, "pool.lua", args, duration=120)
    t.state.setdefault("rt_pool", []).extend(load.read_pool(t.tmp("rt-out"), b.threads))
    return result


class CodeExchange(Row):
    key, title = "code_exchange", "Code exchange (PKCE, RS256 ID token, refresh token)"

    def check(self, t: Target) -> str | None:
        try:
            user_tokens(t)
        except (MissingPrerequisite, RuntimeError, httpx.HTTPError) as exc:
            return str(exc)
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        t.state["code_pool"] = harvest_codes(t, b, t.pool_size(self.key, b, 300 if b.quick else 1000))

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        return run_exchange(t, b, t.state.pop("code_pool"))


def refresh_tokens(t: Target, b: Budget, n: int) -> list[str]:
    """Take n unused refresh tokens, exchanging more codes (unmeasured) when the pool is short."""
    pool: list[str] = t.state.setdefault("rt_pool", [])
    if len(pool) < n:
        run_exchange(t, b, harvest_codes(t, b, n - len(pool) + 50))
    taken, t.state["rt_pool"] = pool[:n], pool[n:]
    return taken


class Refresh(Row):
    key, title = "refresh", "Refresh with rotation"

    def check(self, t: Target) -> str | None:
        reason = CodeExchange.check(self, t)
        if reason:
            return reason
        rt = user_tokens(t).get("refresh_token")
        if not rt:
            return "the code exchange returned no refresh token"
        start = time.perf_counter()
        try:
            body = f"grant_type=refresh_token&refresh_token={rt}"
            r = flows.post_form(t.server, t.paths["token"], body, t.server.info["web"], timeout=60)
        except httpx.HTTPError as exc:
            return f"one refresh failed after {time.perf_counter() - start:.1f} s: {type(exc).__name__}"
        took = time.perf_counter() - start
        if r.status_code != 200:
            return f"one refresh answered {r.status_code} after {took:.1f} s: {r.text[:160]}"
        if took > 5:
            return f"one refresh took {took:.1f} s (a lock wait?); not loaded further"
        t.state["user_tokens"] = r.json() | {"access_token": user_tokens(t)["access_token"]}
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        seeds = refresh_tokens(t, b, 2 * b.connections)
        t.tmp("rt-seeds.txt").write_text("\n".join(seeds) + "\n")

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["web"])}
        args = [
            ("method", "POST"),
            ("path", t.paths["token"]),
            ("template", "grant_type=refresh_token&refresh_token={}"),
        ]
        args += [("pool", str(t.tmp("rt-seeds.txt"))), ("capture", "json:refresh_token"), ("chain", "1")]
        args += [("header", f"{k}: {v}") for k, v in headers.items()]
        return _wrk(t, b, "pool.lua", args)


class Revocation(Row):
    key, title = "revocation", "Revocation (refresh token)"

    def check(self, t: Target) -> str | None:
        if "revocation" not in t.paths:
            return "no revocation endpoint advertised"
        reason = CodeExchange.check(self, t)
        if reason:
            return reason
        rt = refresh_tokens(t, Budget(1, True), 1)[0]
        r = flows.post_form(t.server, t.paths["revocation"], f"token={rt}", t.server.info["web"])
        return None if r.status_code == 200 else f"{t.paths['revocation']} answers {r.status_code}"

    def prepare(self, t: Target, b: Budget) -> None:
        # What the exchange row left over, topped up to MIN_POOL; capped at about `duration` seconds' worth.
        have = len(t.state.get("rt_pool", []))
        want = min(t.pool_size(self.key, b, 300 if b.quick else 1000), max(have, MIN_POOL))
        tokens = refresh_tokens(t, b, want)
        t.tmp("rt-revoke.txt").write_text("\n".join(tokens) + "\n")

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        headers = {"Content-Type": flows.FORM_CT, "Authorization": flows.basic(t.server.info["web"])}
        template = "token={}&token_type_hint=refresh_token"
        args = [("method", "POST"), ("path", t.paths["revocation"]), ("template", template)]
        args += [("pool", str(t.tmp("rt-revoke.txt")))] + [("header", f"{k}: {v}") for k, v in headers.items()]
        return _wrk(t, b, "pool.lua", args, duration=120)


# -- hosted login (Python generator) --------------------------------------------------------------------
class Login(Row):
    key, title = "login", "Hosted login (form POST + CSRF, Argon2id)"
    peer_missing = (
        "node-oidc-provider leaves the login page to the embedding app (its devInteractions check no password)"
    )
    loader = "python"

    def check(self, t: Target) -> str | None:
        if not t.is_idp:
            return self.peer_missing
        try:
            session_cookie(t)
        except MissingPrerequisite as exc:
            return str(exc)
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        n = t.pool_size(self.key, b, 30 if b.quick else 60, minimum=20)
        with httpx.Client(timeout=30) as client:
            t.state["login_forms"] = [
                flows.login_post_args(t.server, *flows.login_form(client, t.server.base_url)) for _ in range(n)
            ]
        # The box's Argon2id ceiling at the server's parameters, measured next to each login measurement.
        t.state["argon2_ceiling"] = argon2_ceiling.measure(t.server.info["argon2"], seconds=1.0 if b.quick else 1.5)

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        ceiling = t.state.pop("argon2_ceiling", {})
        return self._logins(t, b) | ceiling

    def _logins(self, t: Target, b: Budget) -> dict[str, Any]:
        forms = t.state.pop("login_forms")

        async def post(client: httpx.AsyncClient, i: int) -> bool:
            body, headers = forms[i]
            r = await client.post("/login", content=body, headers=headers)
            return r.status_code == 303

        async def probe(client: httpx.AsyncClient) -> None:
            await client.get(t.paths["discovery"])

        return asyncio.run(
            load.run_python(
                t.server.base_url, post, total=len(forms), concurrency=b.connections, max_seconds=60, probe=probe
            )
        )


# -- DPoP (RFC 9449): a fresh proof per request, from a pool made right before the measurement ---------
def dpop_maker(t: Target) -> ProofMaker:
    """The bench client's one DPoP key on ``t`` (ES256: the algorithm both servers take by default)."""
    maker = t.state.get("dpop_key")
    if maker is None:
        maker = t.state["dpop_key"] = ProofMaker("ES256")
    return maker


def dpop_unsupported(t: Target) -> str | None:
    meta = httpx.get(t.server.base_url + t.paths["discovery"], timeout=10).json()
    if "ES256" not in (meta.get("dpop_signing_alg_values_supported") or []):
        return "no DPoP (dpop_signing_alg_values_supported without ES256)"
    return None


def dpop_pool_args(t: Target, b: Budget, row: str, htm: str, path: str, token: str | None) -> list[tuple[str, str]]:
    n = t.pool_size(row, b, 1000 if b.quick else 3000)
    pool = dpop_maker(t).pool(t.tmp(f"{row}-proofs.txt"), n, htm, t.server.base_url + path, token)
    return [("method", htm), ("path", path), ("pool", str(pool)), ("pool_header", "DPoP")]


class DPoPToken(Row):
    key, title = "dpop_token", "DPoP token request (client_credentials + ES256 proof)"

    def check(self, t: Target) -> str | None:
        reason = dpop_unsupported(t)
        if reason:
            return reason
        proof = dpop_maker(t).proof("POST", t.server.base_url + t.paths["token"])
        headers = {"content-type": flows.FORM_CT, "authorization": flows.basic(t.server.info["service"]), "dpop": proof}
        r = httpx.post(t.server.base_url + t.paths["token"], content=flows.cc_body(), headers=headers, timeout=30)
        if r.status_code != 200 or str(r.json().get("token_type", "")).lower() != "dpop":
            return f"answers {r.status_code}: {r.text[:160]}"
        token = r.json()["access_token"]
        shape = flows.jwt_parts(token)
        if shape is None or "cnf" not in shape["claims"]:
            return f"the access token carries no cnf: {shape}"
        t.sizes()["dpop_client_credentials_access_token"] = {"bytes": len(token), **shape}
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        t.state["dpop_token_args"] = dpop_pool_args(t, b, self.key, "POST", t.paths["token"], None)

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        auth = flows.basic(t.server.info["service"])
        args = [*t.state.pop("dpop_token_args"), ("body", flows.cc_body())]
        args += [("header", f"Content-Type: {flows.FORM_CT}"), ("header", f"Authorization: {auth}")]
        return _wrk(t, b, "pool.lua", args)


def dpop_user_token(t: Target) -> str:
    """A DPoP-bound user access token (code exchanged with a proof); renewed when old."""
    if "dpop_user_token" in t.state and time.monotonic() - t.state["dpop_user_token_at"] < USER_TOKEN_MAX_AGE:
        return str(t.state["dpop_user_token"])
    code = flows.idp_code(t.server, t.paths, session_cookie(t)) if t.is_idp else flows.peer_mint(t.server, "code", 1)[0]
    headers = {
        "content-type": flows.FORM_CT,
        "authorization": flows.basic(t.server.info["web"]),
        "dpop": dpop_maker(t).proof("POST", t.server.base_url + t.paths["token"]),
    }
    body = flows.exchange_body(t.server, code)
    r = httpx.post(t.server.base_url + t.paths["token"], content=body, headers=headers, timeout=30)
    if r.status_code != 200 or str(r.json().get("token_type", "")).lower() != "dpop":
        raise MissingPrerequisite(f"code exchange with a DPoP proof answers {r.status_code}: {r.text[:160]}")
    t.state["dpop_user_token"], t.state["dpop_user_token_at"] = r.json()["access_token"], time.monotonic()
    return str(t.state["dpop_user_token"])


class DPoPUserinfo(Row):
    key, title = "dpop_userinfo", "UserInfo (DPoP-bound token, proof with ath)"

    def check(self, t: Target) -> str | None:
        reason = dpop_unsupported(t)
        if reason or "userinfo" not in t.paths:
            return reason or "no userinfo endpoint advertised"
        try:
            token = dpop_user_token(t)
        except (MissingPrerequisite, RuntimeError, httpx.HTTPError) as exc:
            return str(exc)
        proof = dpop_maker(t).proof("GET", t.server.base_url + t.paths["userinfo"], token)
        headers = {"authorization": f"DPoP {token}", "dpop": proof}
        r = httpx.get(t.server.base_url + t.paths["userinfo"], headers=headers, timeout=30)
        if r.status_code != 200 or "sub" not in r.json():
            return f"answers {r.status_code}: {r.text[:160]}"
        bearer = httpx.get(t.server.base_url + t.paths["userinfo"], headers={"authorization": f"Bearer {token}"})
        if bearer.status_code != 401:  # RFC 9449 §7.2: what the row claims to measure is a bound token
            return f"the bound token is accepted as a bearer token ({bearer.status_code})"
        return None

    def prepare(self, t: Target, b: Budget) -> None:
        token = dpop_user_token(t)
        t.state["dpop_userinfo_args"] = dpop_pool_args(t, b, self.key, "GET", t.paths["userinfo"], token)
        t.state["dpop_userinfo_args"].append(("header", f"Authorization: DPoP {token}"))

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        return _wrk(t, b, "pool.lua", t.state.pop("dpop_userinfo_args"))


class LoginTotp(Row):
    """Password + TOTP: POST /login, GET /login/factor (its CSRF token), POST /login/factor with the code.

    A code is accepted once (RFC 6238 §5.2), so each sign-in is a different user of ``mfa_users`` with the code
    of the newest step not yet used by that user (now or one ahead): a user signs in at most twice per step.
    """

    key, title = "login_totp", "Hosted login with password + TOTP (three requests)"
    peer_missing = Login.peer_missing
    loader = "python"

    def check(self, t: Target) -> str | None:
        if not t.is_idp:
            return self.peer_missing
        return None if t.server.info.get("mfa_users") else "no users with a second factor in this server's fixtures"

    def prepare(self, t: Target, b: Budget) -> None:
        from idp.sessions.factors import totp

        users = t.server.info["mfa_users"]
        step = totp.step_at(time.time())
        ready = sorted((u for u in users if u["step"] <= step), key=lambda u: u["step"])  # least recently used
        n = min(t.pool_size(self.key, b, 30 if b.quick else 60, minimum=20), len(ready))
        with httpx.Client(timeout=30) as client:
            t.state["totp_forms"] = [
                (u, *flows.login_post_args(t.server, *flows.login_form(client, t.server.base_url), user=u))
                for u in ready[:n]
            ]

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        from idp.sessions.factors import totp

        forms = t.state.pop("totp_forms")

        async def sign_in(client: httpx.AsyncClient, i: int) -> bool:
            user, body, headers = forms[i]
            r = await client.post("/login", content=body, headers=headers)
            if r.status_code != 303 or r.headers.get("location") != "/login/factor":
                return False
            jar = flows.cookies_from(r)
            cookie = flows.cookie_header(flows.cookies_of(headers) | jar)
            page = await client.get("/login/factor", headers={"cookie": cookie})
            step = max(totp.step_at(time.time()), user["step"] + 1)
            user["step"] = step
            form = {"csrf": flows.form_fields(page.text).get("csrf", ""), "code": totp.code_at(user["secret"], step)}
            done = await client.post(
                "/login/factor", content=urlencode(form),
                headers={"content-type": flows.FORM_CT, "cookie": cookie, "origin": t.server.base_url},
            )  # fmt: skip
            return done.status_code == 303 and done.headers.get("location") != "/login"

        return asyncio.run(load.run_python(t.server.base_url, sign_in, total=len(forms), concurrency=b.connections,
                                           max_seconds=60))  # fmt: skip


class LoginPasskey(Row):
    """Passwordless: GET /login (the pre-session cookie and CSRF token), POST /login/passkey/options, POST
    /login/passkey with the assertion. The bench's software passkey signs each challenge (ES256)."""

    key, title = "login_passkey", "Hosted sign-in with a passkey (passwordless, three requests)"
    peer_missing = Login.peer_missing
    loader = "python"

    def check(self, t: Target) -> str | None:
        if not t.is_idp:
            return self.peer_missing
        return None if t.server.info.get("passkey_user") else "no user with a passkey in this server's fixtures"

    def prepare(self, t: Target, b: Budget) -> None:
        t.state["passkey_total"] = t.pool_size(self.key, b, 60 if b.quick else 300, minimum=20)

    def measure(self, t: Target, b: Budget) -> dict[str, Any]:
        from bench.passkey import assertion

        user, origin = t.server.info["passkey_user"], t.server.base_url

        async def sign_in(client: httpx.AsyncClient, i: int) -> bool:
            page = await client.get("/login", headers={"accept": "text/html"})
            jar = flows.cookies_from(page)
            csrf = flows.form_fields(page.text).get("csrf", "")
            headers = {"content-type": flows.FORM_CT, "cookie": flows.cookie_header(jar), "origin": origin}
            r = await client.post("/login/passkey/options", content=urlencode({"csrf": csrf}), headers=headers)
            if r.status_code != 200:
                return False
            body = r.json()
            answer = assertion(user["credential"], user["sub"], body["publicKey"], origin)
            form = {"csrf": csrf, "ceremony": body["ceremony"], "credential": answer}
            done = await client.post("/login/passkey", content=urlencode(form), headers=headers)
            return done.status_code == 303 and done.headers.get("location") == "/account"

        total = t.state.pop("passkey_total")
        return asyncio.run(load.run_python(t.server.base_url, sign_in, total=total, concurrency=b.connections,
                                           max_seconds=60))  # fmt: skip


ROWS: list[Row] = [
    Discovery(),
    Jwks(),
    ClientCredentials(),
    CodeExchange(),
    Refresh(),
    Revocation(),
    Introspection(),
    Userinfo(),
    TokenExchange(),
    Login(),
    DPoPToken(),
    DPoPUserinfo(),
    LoginTotp(),
    LoginPasskey(),
]
