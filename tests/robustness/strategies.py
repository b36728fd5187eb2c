"""Hypothesis strategies for hostile HTTP requests: parameters, bodies, headers, cookies.

Values mix plausible protocol values with control characters, non-UTF-8 bytes,
percent-encoding junk, repeated names and oversized strings, so a property runs
both the happy path of a parser and its refusals.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

PARAM_NAMES = [
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "login_hint", "id_token_hint", "post_logout_redirect_uri",
    "grant_type", "code", "code_verifier", "refresh_token", "client_secret", "client_assertion",
    "client_assertion_type", "token", "token_type_hint", "resource", "interaction", "username", "password",
    "csrf", "next", "switch", "confirm", "everywhere", "sid", "decision", "response_mode", "ui_locales",
    "acr_values", "claims", "request", "request_uri", "access_token", "current_password", "new_password",
]  # fmt: skip

PLAUSIBLE = [
    "", " ", "code", "token", "id_token token", "none", "openid", "openid profile email offline_access",
    "S256", "plain", "authorization_code", "refresh_token", "client_credentials", "password",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "https://rp.example/cb", "http://127.0.0.1:5/cb",
    "javascript:alert(1)", "//evil.example", "/account", "0", "-1", "99999999999999999999", "1e309", "NaN",
    "login", "consent", "select_account", "access_token", "eyJhbGciOiJub25lIn0.e30.", "a.b.c", "%", "%zz",
    "%00", "\x00", "\r\n", "\u202e", "\ud7ff", "' OR 1=1 --", "../../etc/passwd", "<script>", "true", "[]", "{}",
]  # fmt: skip

CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=fuzz",
    "multipart/form-data",
    "application/xml",
    "",
    "garbage/\x7f",
]

hostile_text = st.one_of(
    st.sampled_from(PLAUSIBLE),
    st.text(max_size=30),
    st.text(st.characters(max_codepoint=0x20), max_size=8),
    st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=["Cs"]), max_size=8),
)
# Raw bytes are percent-encoded on the wire: this is how non-UTF-8 reaches a parser.
hostile_bytes = st.one_of(hostile_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=24))
huge = st.sampled_from([2049, 4097, 9000]).map(lambda n: b"A" * n)
value_bytes = st.one_of(hostile_bytes, hostile_bytes, hostile_bytes, huge)
name_bytes = st.one_of(st.sampled_from(PARAM_NAMES).map(str.encode), st.binary(max_size=8))


@st.composite
def pairs(draw: st.DrawFn, names: list[str] | None = None, max_size: int = 6) -> list[tuple[bytes, bytes]]:
    """Parameter pairs, biased to the endpoint's own names, sometimes repeating one."""
    own = st.sampled_from(names).map(str.encode) if names else name_bytes
    out = draw(st.lists(st.tuples(st.one_of(own, own, name_bytes), value_bytes), max_size=max_size))
    if out and draw(st.booleans()):
        out.append((out[0][0], draw(value_bytes)))  # RFC 6749 §3.1: repeated parameter
    return out


def encode_pairs(items: list[tuple[bytes, bytes]]) -> bytes:
    return b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in items)


@dataclass
class Hostile:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    def __repr__(self) -> str:
        head = f"{self.method} {self.path[:200]}?{self.query[:300]!r}"
        return f"Hostile({head} {self.headers!r} body={self.body[:300]!r})"


def basic(user: bytes, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user + b":" + password)


authorization = st.one_of(
    st.builds(basic, hostile_bytes, hostile_bytes),
    st.sampled_from([b"Basic", b"Basic !!!", b"Bearer", b"Bearer ", b"bearer a b", b"Negotiate x", b"Basic Og=="]),
    hostile_text.map(lambda t: b"Bearer " + t.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")),
)
cookie = st.one_of(
    st.builds(lambda v: b"__Host-idp-session=" + quote_from_bytes(v).encode(), hostile_bytes),
    st.builds(lambda v: b"__Host-idp-login=" + quote_from_bytes(v).encode(), hostile_bytes),
    st.sampled_from([b"=", b";;;", b"__Host-idp-session", b'a="b']),
)
header_value = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b""))


@st.composite
def hostile_request(draw: st.DrawFn, method: str, path_template: str) -> Hostile:
    path = path_template
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        seg = quote_from_bytes(draw(hostile_bytes) or b"x", safe=b"").encode()
        path = path[:start] + seg.decode() + path[end + 1 :]
    query = encode_pairs(draw(pairs())) if draw(st.booleans()) else b""
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.booleans()):
        headers.append((b"authorization", draw(authorization)))
    if draw(st.booleans()):
        headers.append((b"cookie", draw(cookie)))
    if draw(st.booleans()):
        headers.append((b"origin", draw(st.sampled_from([b"https://idp.test", b"null", b"https://evil.example"]))))
    for name in draw(st.lists(st.sampled_from([b"if-none-match", b"accept", b"referer", b"x-forwarded-for"]),
                              max_size=2, unique=True)):  # fmt: skip
        headers.append((name, draw(header_value)))
    body = b""
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        kind = draw(st.sampled_from(["form", "form", "json", "raw", "none"]))
        ctype = draw(st.sampled_from(CONTENT_TYPES)).encode("latin-1")
        if kind == "form":
            body = encode_pairs(draw(pairs()))
        elif kind == "json":
            body = json.dumps(draw(st.dictionaries(st.sampled_from(PARAM_NAMES), st.text(max_size=20), max_size=4)))
            body = body.encode()
        elif kind == "raw":
            body = draw(st.binary(max_size=200))
        if ctype:
            headers.append((b"content-type", ctype))
    return Hostile(method, path, query, headers, body)
