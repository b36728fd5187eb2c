"""Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3, RFC 7523).

One method per client: the method the client presents must be the one it is
registered with. ``authenticate_client`` is what other endpoints call; the token
endpoint uses :func:`presented` + :func:`authenticate` directly so that a cached
client with a secret is checked without leaving the event loop.

Every failure reads "unknown client or wrong credentials", whether the client exists or
not, with one exception that tells nothing to someone who could not already authenticate
as the client: when the client exists and is enabled, the presented method is not the
registered one, and the caller has nonetheless proven it is the client or could have
without any proof, the answer names the registered method ("this client authenticates
with client_secret_basic"). That is the case when the client is public (its client_id
alone authenticates it, so naming ``none`` reveals nothing a bare client_id does not), or
when the client is registered for one secret method, presented its correct secret with the
other one. An assertion for a secret client, a secret for a key-pair client, no credentials
for a confidential client, or a wrong secret: the generic answer.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

from idp.clients.model import Client
from idp.crypto import b64url_decode
from idp.errors import InvalidClient, InvalidRequest
from idp.nonblocking import run_cached
from idp.oauth.forms import read_form, single
from idp.services import Services
from idp.tokens import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("ES256", "RS256", "PS256", "EdDSA")  # RFC 7523 §3 / RFC 9700 §2.5: asymmetric only
LEEWAY = 30
GENERIC = "unknown client or wrong credentials"
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class Presented:
    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None

    @property
    def basic(self) -> bool:
        return self.method == "client_secret_basic"


def _basic(header: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = raw.partition(":")
    if not sep or not client_id:
        raise InvalidClient("malformed Basic credentials")
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))  # RFC 6749 §2.3.1


def presented(headers: Any, form: dict[str, str]) -> Presented:
    """Which method the request uses. RFC 6749 §2.3: more than one is invalid_request."""
    auth = headers.get("authorization") or ""
    used: list[Presented] = []
    if auth[:6].lower() == "basic ":
        cid, secret = _basic(auth)
        used.append(Presented("client_secret_basic", cid, secret=secret))
    elif auth:
        raise InvalidClient("unsupported Authorization scheme for client authentication")
    if "client_assertion" in form or "client_assertion_type" in form:
        if form.get("client_assertion_type") != ASSERTION_TYPE or not form.get("client_assertion"):
            raise InvalidClient("unsupported client assertion")
        used.append(Presented("private_key_jwt", _assertion_subject(form), assertion=form["client_assertion"]))
    if "client_secret" in form:
        used.append(Presented("client_secret_post", form.get("client_id", ""), secret=form["client_secret"]))
    if len(used) > 1:
        raise InvalidRequest("use exactly one client authentication method")  # RFC 6749 §2.3
    if used:
        one = used[0]
        if form.get("client_id") and form["client_id"] != one.client_id:
            raise InvalidClient("client_id does not match the authenticated client")
        if not one.client_id:
            raise InvalidClient("missing client_id")
        return one
    if form.get("client_id"):
        return Presented("none", form["client_id"])
    raise InvalidClient("client authentication is required")


def _assertion_subject(form: dict[str, str]) -> str:
    """The client_id an assertion claims to be (unverified, to find the keys)."""
    token = form.get("client_assertion", "")
    try:
        payload = orjson.loads(b64url_decode(token.split(".")[1]))
        iss = payload.get("iss") if isinstance(payload, dict) else None
    except Exception:
        raise InvalidClient("malformed client assertion") from None
    if not isinstance(iss, str) or not iss:
        raise InvalidClient("client assertion has no iss")
    return iss


def authenticate(c: Services, cred: Presented, *, endpoint: str, client: Client | None = None) -> Client:
    """Check the credentials; returns the client. Blocking unless ``client`` (cached) is given for a secret."""
    if client is None:
        client = c.clients.get_active(cred.client_id) if len(cred.client_id) <= 64 else None
    if client is None or client.disabled:
        raise InvalidClient(GENERIC)
    if cred.method != client.auth_method:  # one method per client
        raise _wrong_method(c, client, cred)
    if cred.method in SECRET_METHODS:
        if not cred.secret or not c.clients.check_secret(client, cred.secret):  # constant time, digest at rest
            raise InvalidClient(GENERIC)
    elif cred.method == "private_key_jwt":
        _check_assertion(c, client, cred.assertion or "")
    elif cred.method != "none" or not client.is_public:
        raise InvalidClient(GENERIC)
    return client


def _wrong_method(c: Services, client: Client, cred: Presented) -> InvalidClient:
    """Name the registered method only to a caller who proved nothing new by learning it (module docstring)."""
    detail = f"method {cred.method} presented, {client.auth_method} registered"
    shown = client.is_public or (
        cred.method in SECRET_METHODS
        and client.auth_method in SECRET_METHODS
        and bool(cred.secret)
        and c.clients.check_secret(client, cred.secret or "")
    )
    if not shown:
        return InvalidClient(GENERIC, detail=detail)
    how = " (a public client: send client_id alone, no secret or assertion)" if client.is_public else ""
    return InvalidClient(f"this client authenticates with {client.auth_method}{how}", detail=detail)


def _check_assertion(c: Services, client: Client, token: str) -> None:
    """RFC 7523 §3 client assertion, with the FAPI/RFC 9700 tightening on aud, exp and alg."""
    try:
        header = jwt.peek_header(token)
    except jwt.TokenInvalid:
        raise InvalidClient("malformed client assertion") from None
    alg = header.get("alg")
    if alg not in ASSERTION_ALGS:  # RFC 8725 §3.1: no none, no HS* (a public JWKS is not a MAC key)
        raise InvalidClient("client assertion algorithm not allowed")
    if jwt.FORBIDDEN_HEADERS & header.keys():  # RFC 8725 §3.10: keys only from the registration
        raise InvalidClient("client assertion header carries a forbidden parameter")
    claims = _verified_claims(client, token, header, alg)
    now = c.clock.now()
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("client assertion iss and sub must be the client_id")  # RFC 7523 §3 items 1-2
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud not in (c.settings.issuer, f"{c.settings.issuer}/token"):
        raise InvalidClient("client assertion audience must be the issuer")  # RFC 7523 §3 item 3; no arrays
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now - LEEWAY:
        raise InvalidClient("client assertion expired or without exp")  # RFC 7523 §3 item 4
    max_ahead = c.settings.client_assertion_max_lifetime
    if exp > now + max_ahead + LEEWAY:
        raise InvalidClient(f"client assertion lives too long (exp at most {max_ahead} s ahead)")
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, int | float) or value > now + LEEWAY):
            raise InvalidClient(f"client assertion {name} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("client assertion needs a jti")
    key = "pkjwt-jti:" + hashlib.sha256(f"{client.client_id}\x00{jti}".encode()).hexdigest()
    # RFC 7523 §3 item 7: jti single use, remembered until the assertion expires (+ leeway), however far that is.
    if not c.ephemeral.put_if_absent(key, b"1", max(exp - now, 0) + LEEWAY + 1):
        raise InvalidClient("client assertion replayed")


def _verified_claims(client: Client, token: str, header: dict[str, Any], alg: str) -> dict[str, Any]:
    try:
        keyset = KeySet.import_key_set(cast("KeySetSerialization", client.jwks or {"keys": []}))
    except (JoseError, ValueError, KeyError, TypeError):
        raise InvalidClient("the client's registered keys are unusable") from None
    kid = header.get("kid")
    candidates = [k for k in keyset.keys if kid is None or k.kid == kid]
    for key in candidates:
        if key.get("alg") not in (None, alg) or key.get("use") not in (None, "sig"):
            continue
        try:
            obj = jws.deserialize_compact(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError):
            continue
        try:
            claims = orjson.loads(obj.payload)
        except orjson.JSONDecodeError:
            break
        if isinstance(claims, dict):
            return claims
        break
    raise InvalidClient("client assertion signature does not verify")


async def authenticate_client(
    request: Request,
    c: Services,
    *,
    endpoint: str,
    form: dict[str, str] | None = None,
    allow_public: bool = False,
) -> Client:
    """Authenticate the caller of ``endpoint`` (e.g. "revocation", "introspection"); raises InvalidClient.

    ``form`` is the body as parsed by :func:`idp.oauth.forms.read_form` (read here when omitted).
    Public clients (``none``) are refused unless ``allow_public`` (RFC 7009 §2.1 lets them revoke
    their own tokens; RFC 7662 §2.1 / ASVS V10.4.10 want introspection callers authenticated).
    """
    if form is None:
        form = single(await read_form(request))
    cred = presented(request.headers, form)
    if cred.method == "none" and not allow_public:
        raise InvalidClient("client authentication is required")
    # A cached client and its secret (or none) need no I/O: inline. A client to load or a private_key_jwt
    # replay check (Redis) needs a thread; the attempt stops before any I/O and runs again there.
    return await run_cached(authenticate, c, cred, endpoint=endpoint)
