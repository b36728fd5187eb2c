"""HTTP helpers the rows need outside the measured load: sign in, get codes, decode tokens.

idp is driven only over HTTP, as a browser and a client would: ``/login`` (form with
CSRF, pre-session cookie), then ``/authorize`` with the session cookie for each code.
Cookies are handled by hand because the server sets ``__Host-``/``Secure`` cookies and
the benchmark talks plain HTTP on loopback. The peer's codes come from its setup route
``/__bench/mint`` (see bench/peer/server.mjs).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from bench.server import API_SCOPE, AUDIENCE, WEB_SCOPE, Server

CODE_VERIFIER = "bench-verifier-" + "v" * 40  # 55 characters of the RFC 7636 §4.1 alphabet
CODE_CHALLENGE = base64.urlsafe_b64encode(hashlib.sha256(CODE_VERIFIER.encode()).digest()).rstrip(b"=").decode()
FORM_CT = "application/x-www-form-urlencoded"
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def basic(client: dict[str, str]) -> str:
    raw = f"{client['client_id']}:{client['client_secret']}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def cc_body() -> str:
    return urlencode({"grant_type": "client_credentials", "scope": API_SCOPE})


def token_exchange_body(subject_token: str) -> str:
    """RFC 8693 §2.1: the user's access token for one to the bench API (the web client's registered target)."""
    return urlencode({
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": subject_token,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": AUDIENCE,
    })  # fmt: skip


def endpoints(server: Server) -> dict[str, str]:
    """Endpoint paths from the server's discovery document."""
    meta = httpx.get(server.base_url + "/.well-known/openid-configuration", timeout=10).json()
    out = {}
    for key in ("token", "authorization", "userinfo", "revocation", "introspection", "end_session"):
        url = meta.get(f"{key}_endpoint")
        if url:
            out[key] = urlsplit(url).path
    out["jwks"] = urlsplit(meta["jwks_uri"]).path
    out["discovery"] = "/.well-known/openid-configuration"
    return out


def cookies_from(response: httpx.Response) -> dict[str, str]:
    jar: dict[str, str] = {}
    for raw in response.headers.get_list("set-cookie"):
        parsed: SimpleCookie = SimpleCookie()
        parsed.load(raw)
        for name, morsel in parsed.items():
            jar[name] = morsel.value
    return jar


def cookies_of(headers: dict[str, str]) -> dict[str, str]:
    """The cookies of a ``cookie`` request header, as a jar."""
    pairs = (part.strip().partition("=") for part in headers.get("cookie", "").split(";") if "=" in part)
    return {name: value for name, _, value in pairs}


def cookie_header(jar: dict[str, str]) -> str:
    return "; ".join(f"{k}={v}" for k, v in jar.items() if v)


def form_fields(page: str) -> dict[str, str]:
    fields = {}
    for tag in _INPUT.findall(page):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs:
            fields[attrs["name"]] = html.unescape(attrs.get("value", ""))
    return fields


def login_form(client: httpx.Client | None, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """GET /login: the hidden fields (CSRF) and the pre-session cookie."""
    r = (client or httpx).get(base_url + "/login", headers={"accept": "text/html"})
    if r.status_code != 200:
        raise RuntimeError(f"GET /login answered {r.status_code}")
    return form_fields(r.text), cookies_from(r)


def login_post_args(
    server: Server, fields: dict[str, str], jar: dict[str, str], *, user: dict[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    user = user or server.info["user"]
    body = {k: v for k, v in fields.items() if k not in ("username", "password")}
    body |= {"username": user["username"], "password": user["password"]}
    headers = {"content-type": FORM_CT, "cookie": cookie_header(jar), "origin": server.base_url}
    return urlencode(body), headers


def idp_login(server: Server) -> str:
    """Sign in once; returns the session cookie header for /authorize."""
    with httpx.Client(timeout=30) as client:
        fields, jar = login_form(client, server.base_url)
        body, headers = login_post_args(server, fields, jar)
        r = client.post(server.base_url + "/login", content=body, headers=headers)
        if r.status_code not in (302, 303):
            raise RuntimeError(f"POST /login answered {r.status_code}")
        jar |= cookies_from(r)
    session = {k: v for k, v in jar.items() if "session" in k}
    if not session:
        raise RuntimeError("POST /login set no session cookie")
    return cookie_header(session)


def authorize_path(server: Server, paths: dict[str, str]) -> str:
    web = server.info["web"]
    query = {
        "response_type": "code",
        "client_id": web["client_id"],
        "redirect_uri": web["redirect_uri"],
        "scope": WEB_SCOPE,
        "state": "bench-state",
        "nonce": "bench-nonce",
        "code_challenge": CODE_CHALLENGE,
        "code_challenge_method": "S256",
    }
    return paths["authorization"] + "?" + urlencode(query)


def idp_code(server: Server, paths: dict[str, str], session_cookie: str) -> str:
    r = httpx.get(server.base_url + authorize_path(server, paths), headers={"cookie": session_cookie}, timeout=30)
    location = r.headers.get("location", "")
    code = parse_qs(urlsplit(location).query).get("code", [None])[0]
    if r.status_code not in (302, 303) or not code:
        raise RuntimeError(f"/authorize answered {r.status_code} {location[:120]!r} {r.text[:200]!r}")
    return code


def peer_mint(server: Server, kind: str, n: int) -> list[str]:
    r = httpx.post(
        server.base_url + "/__bench/mint", json={"kind": kind, "n": n, "code_challenge": CODE_CHALLENGE}, timeout=120
    )
    r.raise_for_status()
    return list(r.json()["values"])


def exchange_body(server: Server, code: str) -> str:
    web = server.info["web"]
    return urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": web["redirect_uri"],
            "code_verifier": CODE_VERIFIER,
        }
    )


def post_form(server: Server, path: str, body: str, client: dict[str, str], timeout: float = 30) -> httpx.Response:
    headers = {"content-type": FORM_CT, "authorization": basic(client)}
    return httpx.post(server.base_url + path, content=body, headers=headers, timeout=timeout)


def jwt_parts(token: str) -> dict[str, Any] | None:
    """Header and claim names of a JWT (not verified: for the size/shape report only)."""
    if token.count(".") != 2:
        return None

    def part(p: str) -> dict[str, Any]:
        return dict(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))))

    head, body, _ = token.split(".")
    return {"header": part(head), "claims": sorted(part(body))}
