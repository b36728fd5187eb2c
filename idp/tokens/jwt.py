"""Signing and verifying our own JWTs (RFC 8725 rules in one place).

* ``kid`` is required and names a published key; the key's pinned ``alg`` is the
  only algorithm accepted for it (no ``none``, no HS*, no algorithm from the token).
* ``jku``, ``x5u``, ``jwk``, ``x5c`` and any ``crit`` header are refused (RFC 8725 §3.10, ASVS V9.1.3).
* ``typ`` is explicit and must match what the caller expects (RFC 8725 §3.11), so an
  ID token is never accepted as an access token.
* ``iss``, ``aud``, ``exp`` are always checked; ``nbf`` and ``iat`` when present,
  with a small leeway.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from joserfc import jws
from joserfc.errors import JoseError

from idp.crypto import b64url_decode
from idp.keys.keyring import Keyring

LEEWAY = 30  # seconds (RFC 8725 §3.9 / ASVS: small)
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64", "zip"})
MAX_TOKEN_BYTES = 8192


class TokenInvalid(Exception):
    """The token is not acceptable; the message is safe to show (no key material)."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15, _SHA256 = padding.PKCS1v15(), hashes.SHA256()


def _es256(key: Any, data: bytes) -> bytes:
    """RFC 7518 §3.4: the fixed-width R || S of the ECDSA P-256 / SHA-256 signature (not DER)."""
    r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# RFC 7518 §3.3, §3.4; RFC 8037 §3.1. The keyring pins one algorithm to each key, so the key fits the function.
_SIGNERS: dict[str, Callable[[Any, bytes], bytes]] = {
    "ES256": _es256,
    "RS256": lambda key, data: key.sign(data, _PKCS1V15, _SHA256),
    "EdDSA": lambda key, data: key.sign(data),
}


@functools.lru_cache(maxsize=64)
def _protected(alg: str, typ: str, kid: str) -> bytes:
    return _b64(orjson.dumps({"alg": alg, "typ": typ, "kid": kid}))


def sign(keyring: Keyring, alg: str, typ: str, claims: dict[str, Any]) -> str:
    """A compact JWS of ``claims``, signed by the keyring's current ``alg`` key.

    The compact form is assembled here (the protected header cached per key, the signature
    from ``cryptography``): joserfc's generic path costs a large part of the ES256 signature on
    top of it (bench/RESULTS.md). Header and payload are byte-for-byte what
    ``jws.serialize_compact`` makes.
    """
    kid, key = keyring.signer(alg)
    signer = _SIGNERS.get(alg)
    if signer is None:
        return jws.serialize_compact({"alg": alg, "typ": typ, "kid": kid}, orjson.dumps(claims), key, algorithms=[alg])
    signing_input = _protected(alg, typ, kid) + b"." + _b64(orjson.dumps(claims))
    return (signing_input + b"." + _b64(signer(key.private_key, signing_input))).decode("ascii")


def strict_b64url(part: str) -> bytes:
    """RFC 7515 §2 base64url, canonical (:func:`idp.crypto.b64url_decode`): the stdlib decoder would skip stray
    characters and accept the unused low bits of the last character set."""
    return b64url_decode(part)


def _es256_verify(key: Any, data: bytes, sig: bytes) -> None:
    """RFC 7518 §3.4: exactly 64 bytes of R || S, on a P-256 key."""
    # RFC 7518 §3.4: R and S are 32 octets each, so a 65-byte r || 0x00 || s is no signature
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1) or len(sig) != 64:
        raise InvalidSignature
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.verify(der, data, _ECDSA_SHA256)


def _rs256_verify(key: Any, data: bytes, sig: bytes) -> None:
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:  # RFC 7518 §3.3: 2048 bits at least
        raise InvalidSignature
    key.verify(sig, data, _PKCS1V15, _SHA256)


def _eddsa_verify(key: Any, data: bytes, sig: bytes) -> None:
    if not isinstance(key, ed25519.Ed25519PublicKey):  # RFC 8037 §3.1; Ed448 goes the generic way
        raise InvalidSignature
    key.verify(sig, data)


# The same algorithms as _SIGNERS, checked with ``cryptography`` directly: joserfc's generic deserialisation
# adds a large part of the ES256 verification on top of it (bench/RESULTS.md). The key is the caller's, pinned
# to ``alg``: the token's header never chooses it.
_VERIFIERS: dict[str, Callable[[Any, bytes, bytes], None]] = {
    "ES256": _es256_verify,
    "RS256": _rs256_verify,
    "EdDSA": _eddsa_verify,
}


def verified_claims(token: str, alg: str, key: Any) -> dict[str, Any]:
    """The claims of compact JWS ``token`` if ``key`` (a joserfc key pinned to ``alg``) verifies its signature.

    Header checks (kid, typ, forbidden parameters, alg == the key's) are the caller's, done before.
    """
    check = _VERIFIERS.get(alg)
    try:
        if check is None:
            payload = jws.deserialize_compact(token, key, algorithms=[alg]).payload
        else:
            head, body, sig = token.split(".")
            check(key.public_key, f"{head}.{body}".encode("ascii"), strict_b64url(sig))
            payload = strict_b64url(body)
        claims = orjson.loads(payload)
    except (InvalidSignature, JoseError, ValueError):  # UnicodeError and binascii.Error are ValueErrors
        raise TokenInvalid("bad signature") from None
    if not isinstance(claims, dict):
        raise TokenInvalid("malformed claims")
    return claims


def peek_header(token: str) -> dict[str, Any]:
    """Decode the protected header without trusting it."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenInvalid("malformed token")
    try:
        header = orjson.loads(strict_b64url(token.split(".", 1)[0]))
    except Exception:
        raise TokenInvalid("malformed token header") from None
    if not isinstance(header, dict):
        raise TokenInvalid("malformed token header")
    return header


def verify(
    keyring: Keyring,
    token: str,
    *,
    typ: str | Iterable[str],
    issuer: str,
    audience: str | Iterable[str] | None,
    now: float,
    leeway: int = LEEWAY,
    require: Iterable[str] = ("iss", "exp", "iat"),
    allow_expired: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (header, claims) or raises TokenInvalid.

    ``audience=None`` skips the audience check; only callers that check ``aud``
    themselves (logout's ``id_token_hint`` against the client) may pass it.
    """
    header = peek_header(token)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenInvalid("token has no kid")
    if FORBIDDEN_HEADERS & header.keys():
        raise TokenInvalid("token header carries a forbidden parameter")
    expected_typ = {typ} if isinstance(typ, str) else set(typ)
    if str(header.get("typ", "")).lower() not in {t.lower() for t in expected_typ}:
        raise TokenInvalid("unexpected token type")
    found = keyring.verification_key(kid)
    if found is None:
        raise TokenInvalid("unknown or revoked signing key")
    alg, key = found
    if header.get("alg") != alg:  # RFC 8725 §3.1: the key's pinned algorithm, never the token's choice
        raise TokenInvalid("algorithm does not match the signing key")
    claims = verified_claims(token, alg, key)
    check_claims(
        claims, issuer=issuer, audience=audience, now=now, leeway=leeway, require=require, allow_expired=allow_expired
    )
    return header, claims


def check_claims(
    claims: dict[str, Any],
    *,
    issuer: str,
    audience: str | Iterable[str] | None,
    now: float,
    leeway: int = LEEWAY,
    require: Iterable[str] = ("iss", "exp", "iat"),
    allow_expired: bool = False,
) -> None:
    for name in require:
        if name not in claims:
            raise TokenInvalid(f"missing {name} claim")
    if claims.get("iss") != issuer:
        raise TokenInvalid("wrong issuer")
    if audience is not None:
        wanted = {audience} if isinstance(audience, str) else set(audience)
        aud = claims.get("aud")
        got = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
        if not (got & wanted):
            raise TokenInvalid("wrong audience")
    for name in ("exp", "nbf", "iat"):
        if name in claims and not isinstance(claims[name], int | float):
            raise TokenInvalid(f"malformed {name} claim")
    if not allow_expired and claims["exp"] <= now - leeway:
        raise TokenInvalid("token expired")
    if "nbf" in claims and claims["nbf"] > now + leeway:
        raise TokenInvalid("token not yet valid")
    if "iat" in claims and claims["iat"] > now + leeway:
        raise TokenInvalid("token issued in the future")
