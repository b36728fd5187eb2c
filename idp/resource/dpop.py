"""DPoP proof verification (RFC 9449 §4.3), the one verifier the IdP and resource servers share.

    verifier = DPoPVerifier(replay=MemoryReplayCache(), now=time.time)
    proof = verifier.verify(request.headers["dpop"], method="POST", url="https://idp.example/token")
    proof.jkt  # the RFC 7638 thumbprint of the proof's key: what ``cnf.jkt`` binds a token to

A proof is one compact JWS with ``typ`` ``dpop+jwt``, an asymmetric ``alg`` from :data:`ALGS` (never
``none``, never HS*), a public ``jwk`` in its header that verifies its signature, and the claims ``jti``,
``htm``, ``htu`` and ``iat``. ``htm`` must equal the request's method, ``htu`` its URL without query and
fragment (both sides normalised: scheme and host case, default port, percent-encoding, dot segments);
``iat`` must lie in ``[now - max_age_seconds, now + future_skew_seconds]``; ``ath`` must be the hash of
the access token presented with the proof; with a :class:`NonceSource` the proof must carry one of its
nonces. A proof's ``jti`` is accepted once per key for as long as its ``iat`` keeps it acceptable: the
:class:`ReplayCache` is shared by every worker that verifies proofs for the same URLs (Redis across
processes), and an outage of it refuses the proof rather than letting a replay through.

Every check is done here with ``cryptography``; imports nothing from the IdP, so a resource server needs
only this module. Keys are parsed once per thumbprint.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

if TYPE_CHECKING:  # a resource server with the in-process cache does not import redis
    import redis

__all__ = [
    "ALGS",
    "DPoPError",
    "DPoPProof",
    "DPoPVerifier",
    "HmacNonces",
    "MemoryReplayCache",
    "NonceSource",
    "RedisReplayCache",
    "ReplayCache",
    "ReplayCacheUnavailable",
    "access_token_hash",
    "challenge",
    "normalise_htu",
    "thumbprint",
]

ALGS: tuple[str, ...] = ("ES256", "RS256", "PS256", "EdDSA", "Ed25519")  # EdDSA: Ed25519 only (RFC 8037);
# "Ed25519" is the fully specified name of the same algorithm (RFC 9864 §2.2), which oauth4webapi sends
TYP = "dpop+jwt"
INVALID_PROOF = "invalid_dpop_proof"
USE_NONCE = "use_dpop_nonce"
MAX_PROOF_BYTES = 8192
MAX_RSA_BYTES = 1024  # 8192-bit moduli at most
MAX_CLAIM_CHARS = 512  # jti, nonce, ath: a proof cannot make the replay cache or the logs grow without bound
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})  # RFC 7518 §6.2.2, §6.3.2, §6.4
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
# Which key type (and curve) each algorithm takes.
_KEY_FOR_ALG = {
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),
}


class DPoPError(Exception):
    """A refused proof. ``error`` is the RFC 9449 code, ``description`` is safe to show; ``nonce`` is the
    value to send in ``DPoP-Nonce`` with a ``use_dpop_nonce`` error."""

    def __init__(self, error: str, description: str, *, nonce: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.nonce = nonce


class ReplayCacheUnavailable(Exception):
    """The replay cache cannot answer (Redis down, memory full): the proof must be refused (503), not accepted."""


@dataclass(frozen=True)
class DPoPProof:
    jkt: str
    jti: str
    iat: int
    htm: str
    htu: str
    nonce: str | None
    ath: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _unb64(text: str) -> bytes:
    """Canonical unpadded base64url (RFC 7515 §2, RFC 4648 §3.5): the one encoding of its bytes, else ValueError."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if _b64(raw) != text:  # non-zero pad bits: another spelling of the same bytes
        raise ValueError("not canonical base64url")
    return raw


def _canonical_members(jwk: Mapping[str, Any]) -> str:
    required = _REQUIRED.get(jwk.get("kty"))  # type: ignore[arg-type]
    if required is None:
        raise ValueError("unsupported key type")
    members = {name: jwk.get(name) for name in required}
    if not all(isinstance(v, str) and v for v in members.values()):
        raise ValueError("key lacks a required member")
    return orjson.dumps(members).decode("ascii")  # keys already sorted, no whitespace (RFC 7638 §3.3)


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint with SHA-256, base64url without padding. ValueError for an unusable JWK."""
    return _b64(hashlib.sha256(_canonical_members(jwk).encode("ascii")).digest())


def access_token_hash(token: str) -> str:
    """The ``ath`` claim for ``token`` (RFC 9449 §4.2): base64url(SHA-256(ASCII of the token))."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def challenge(
    algs: tuple[str, ...] | list[str],
    error: DPoPError | str | None = None,
    description: str | None = None,
    *,
    error_code: str | None = None,
) -> str:
    """A ``WWW-Authenticate`` value for the DPoP scheme (RFC 9449 §7.1): ``algs`` always, the error if any.

    ``error`` is a :class:`DPoPError` (its code and description) or an error code such as ``invalid_token``."""
    if isinstance(error, DPoPError):
        code: str | None = error.error
        description = error.description if description is None else description
    else:
        code = error or error_code
    parts = []
    if code:
        parts.append(f'error="{code}"')
        if description:
            parts.append('error_description="{}"'.format(description.replace('"', "'").replace("\\", "/")))
    parts.append('algs="{}"'.format(" ".join(algs)))
    return "DPoP " + ", ".join(parts)


_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")


def _pct(match: re.Match[str]) -> str:
    byte = int(match.group(1), 16)
    return chr(byte) if byte in _UNRESERVED else "%" + match.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4."""
    out: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = path.endswith(("/.", "/.."))
    return "/" + "/".join(out) + ("/" if trailing and out else "")


@functools.lru_cache(maxsize=256)
def normalise_htu(url: str) -> str:
    """``url`` without query and fragment, normalised by RFC 3986 §6.2.2 and §6.2.3 (RFC 9449 §4.3 point 9).

    Scheme and host lowercased, the scheme's default port dropped, percent-encoding normalised, dot segments
    removed, an empty path made ``/``. ValueError for anything that is not an absolute http(s) URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("not an absolute http(s) URL")
    host = parts.hostname.lower()  # urlsplit keeps IPv6 brackets off hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is no number or out of range
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_PCT.sub(_pct, parts.path or "/"))
    return urlunsplit((scheme, netloc, path, "", ""))


def _int(member: str) -> int:
    return int.from_bytes(_unb64(member), "big")


@functools.lru_cache(maxsize=4096)
def _public_key(canonical: str) -> tuple[str, Any]:
    """(thumbprint, cryptography public key) for the canonical required members of a JWK.

    Cached on those members, which are all that build the key and all that the thumbprint covers: a
    client signs every proof with one key, so each key is parsed once.
    """
    jwk = orjson.loads(canonical)
    kty = jwk["kty"]
    key: Any
    if kty == "EC":
        if jwk["crv"] != "P-256":
            raise ValueError("unsupported curve")
        x, y = _unb64(jwk["x"]), _unb64(jwk["y"])
        if len(x) != 32 or len(y) != 32:  # RFC 7518 §6.2.1.2: the full coordinate length
            raise ValueError("bad coordinate length")
        key = ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1()).public_key()
    elif kty == "RSA":
        n, e = _unb64(jwk["n"]), _unb64(jwk["e"])
        if n[:1] == b"\0" or len(n) * 8 < 2048:  # RFC 7518 §6.3.1.1 no leading zero; §3.3 2048 bits at least
            raise ValueError("RSA modulus too short or not minimal")
        if len(n) > MAX_RSA_BYTES or len(e) > 4:  # a huge modulus or exponent makes every check slow
            raise ValueError("RSA key too large")
        key = rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
    else:
        if jwk["crv"] != "Ed25519":
            raise ValueError("unsupported curve")
        key = ed25519.Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest()), key


_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PKCS1V15, _SHA256 = padding.PKCS1v15(), hashes.SHA256()
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)  # RFC 7518 §3.5: salt = hash length


def _check_signature(alg: str, key: Any, data: bytes, sig: bytes) -> None:
    """Raises InvalidSignature unless ``sig`` is ``alg``'s signature of ``data`` by ``key``."""
    if alg == "ES256":
        if len(sig) != 64:  # RFC 7518 §3.4: R || S, 32 octets each
            raise InvalidSignature
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        key.verify(der, data, _ECDSA_SHA256)
    elif alg == "RS256":
        key.verify(sig, data, _PKCS1V15, _SHA256)
    elif alg == "PS256":
        key.verify(sig, data, _PSS, _SHA256)
    else:
        key.verify(sig, data)


class ReplayCache(Protocol):
    def first_use(self, key: str, ttl_seconds: int) -> bool:
        """True the first time ``key`` is seen within ``ttl_seconds``, False after; raises
        :class:`ReplayCacheUnavailable` when it cannot tell (never True for a key it may have seen)."""
        ...


class MemoryReplayCache:
    """In-process replay cache: expiring, at most ``max_entries`` live keys, thread-safe.

    Full, it refuses (:class:`ReplayCacheUnavailable`) rather than forgetting a live key early: an
    evicted ``jti`` would be a replay accepted. Keys expire in insertion order (each call drops the expired
    ones at the front), so one with a shorter TTL behind a longer one is dropped when that one is, at most
    ``max_age + future_skew`` late. One process only; workers share a :class:`RedisReplayCache`.
    """

    def __init__(self, max_entries: int = 100_000, *, now: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._now = now
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, in insertion order
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, key: str, ttl_seconds: int) -> bool:
        now = self._now()
        with self._lock:
            seen = self._seen
            while seen:  # expire from the front; a longer-lived entry there only delays the ones behind it
                oldest, until = next(iter(seen.items()))
                if until > now:
                    break
                del seen[oldest]
            expiry = seen.get(key)
            if expiry is not None and expiry > now:
                return False
            if len(seen) >= self._max:  # no O(n) sweep under a flood: what expires leaves from the front
                raise ReplayCacheUnavailable("replay cache full")
            seen.pop(key, None)
            seen[key] = now + ttl_seconds
            return True


class RedisReplayCache:
    """Replay cache shared by every worker and instance: one ``SET key NX EX ttl`` per proof."""

    def __init__(self, client: redis.Redis, *, prefix: str = "dpop:jti:") -> None:
        import redis

        self._client = client
        self._prefix = prefix
        self._errors = redis.RedisError

    def first_use(self, key: str, ttl_seconds: int) -> bool:
        try:
            return bool(self._client.set(self._prefix + key, b"1", nx=True, ex=max(1, ttl_seconds)))
        except self._errors as exc:
            raise ReplayCacheUnavailable(f"replay cache unreachable: {type(exc).__name__}") from None


class NonceSource(Protocol):
    def current(self) -> str:
        """The nonce to hand out now (``DPoP-Nonce``)."""
        ...

    def valid(self, nonce: str) -> bool:
        """Whether ``nonce`` is one this source handed out recently enough."""
        ...


class HmacNonces:
    """Server nonces (RFC 9449 §8) as HMAC(key, time slice): stateless, so every worker and instance with the
    same key hands out and accepts the same nonces. A nonce is valid in its slice and the next one, so a
    client always has at least ``period_seconds`` to use the nonce it was given."""

    def __init__(self, key: bytes, *, period_seconds: int = 300, now: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("nonce key too short")
        self._key = key
        self._period = period_seconds
        self._now = now

    def _for(self, slice_: int) -> str:
        return _b64(
            hmac.new(self._key, b"dpop-nonce\0" + slice_.to_bytes(8, "big", signed=True), "sha256").digest()[:18]
        )

    def current(self) -> str:
        return self._for(int(self._now() // self._period))

    def valid(self, nonce: str) -> bool:
        if not isinstance(nonce, str) or len(nonce) > MAX_CLAIM_CHARS:
            return False
        now = int(self._now() // self._period)
        current, previous = _same(nonce, self._for(now)), _same(nonce, self._for(now - 1))  # both, constant time
        return current or previous


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("ascii"))


def _invalid(description: str) -> DPoPError:
    return DPoPError(INVALID_PROOF, description)


class DPoPVerifier:
    def __init__(
        self,
        *,
        algs: tuple[str, ...] = ALGS,
        max_age_seconds: int = 300,
        future_skew_seconds: int = 60,
        replay: ReplayCache,
        now: Callable[[], float],
        nonces: NonceSource | None = None,
    ) -> None:
        unknown = set(algs) - set(ALGS)
        if unknown or not algs:  # never none, never HS*: only the asymmetric algorithms this module checks
            raise ValueError(f"unsupported DPoP algorithms: {sorted(unknown)}")
        self.algs = tuple(algs)
        self._algs = frozenset(algs)
        self.max_age_seconds = max_age_seconds
        self.future_skew_seconds = future_skew_seconds
        self.replay = replay
        self.nonces = nonces
        self._now = now

    def fresh_nonce(self) -> str | None:
        """The nonce to send in ``DPoP-Nonce`` now, or None when this verifier demands none."""
        return self.nonces.current() if self.nonces is not None else None

    def challenge(self, error: DPoPError | None = None) -> str:
        return challenge(self.algs, error)

    def verify(self, proof: str, *, method: str, url: str, access_token: str | None = None) -> DPoPProof:
        """The checked proof, or DPoPError (``invalid_dpop_proof``, ``use_dpop_nonce``); ReplayCacheUnavailable
        when the replay cache cannot answer. ``url`` is the request's URL as the client addressed it."""
        claims, jkt = self._signed(proof)
        jti, htm, htu, iat = claims.get("jti"), claims.get("htm"), claims.get("htu"), claims.get("iat")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_CLAIM_CHARS:  # RFC 9449 §4.3 point 6
            raise _invalid("the proof needs a jti")
        if not isinstance(htm, str) or not isinstance(htu, str):  # RFC 9449 §4.3 point 6
            raise _invalid("the proof needs htm and htu")
        if not isinstance(iat, int | float) or isinstance(iat, bool):  # RFC 9449 §4.3 point 6
            raise _invalid("the proof needs a numeric iat")
        if htm != method:  # RFC 9449 §4.3 point 8
            raise _invalid("htm does not match the request method")
        try:
            same_url = normalise_htu(htu) == normalise_htu(url)  # RFC 9449 §4.3 point 9
        except ValueError:
            same_url = False
        if not same_url:
            raise _invalid("htu does not match the request URL")
        now = self._now()
        if iat < now - self.max_age_seconds:  # RFC 9449 §4.3 point 11, §11.1
            raise _invalid("the proof is too old")
        if iat > now + self.future_skew_seconds:  # RFC 9449 §4.3 point 11
            raise _invalid("the proof is issued in the future")
        nonce, ath = claims.get("nonce"), claims.get("ath")
        if nonce is not None and (not isinstance(nonce, str) or len(nonce) > MAX_CLAIM_CHARS):
            raise _invalid("malformed nonce")
        if ath is not None and (not isinstance(ath, str) or len(ath) > MAX_CLAIM_CHARS):
            raise _invalid("malformed ath")
        if access_token is not None and not _same(ath, access_token_hash(access_token)):  # RFC 9449 §4.3 point 12
            raise _invalid("ath does not match the access token")
        if self.nonces is not None:
            if nonce is None:  # RFC 9449 §8: the server demands a nonce it provided
                raise DPoPError(USE_NONCE, "the proof needs a server nonce", nonce=self.nonces.current())
            if not self.nonces.valid(nonce):  # RFC 9449 §4.3 point 10, §8.2
                raise DPoPError(USE_NONCE, "the nonce is stale or unknown", nonce=self.nonces.current())
        ttl = int(iat + self.max_age_seconds - now) + 1  # as long as the proof's iat keeps it acceptable
        if not self.replay.first_use(f"{jkt}:{jti}", max(1, ttl)):  # RFC 9449 §11.1: jti used once per key
            raise _invalid("the proof was used before")
        return DPoPProof(
            jkt=jkt, jti=jti, iat=int(iat), htm=htm, htu=htu, nonce=nonce if isinstance(nonce, str) else None, ath=ath
        )

    def _signed(self, proof: str) -> tuple[dict[str, Any], str]:
        """(claims, jkt) of a proof whose header passes and whose signature its own jwk verifies."""
        if not isinstance(proof, str) or len(proof) > MAX_PROOF_BYTES or proof.count(".") != 2:
            raise _invalid("the proof is not one compact JWS")  # RFC 9449 §4.3 points 1-2: a well-formed JWT
        head, body, sig = proof.split(".")
        try:
            header = orjson.loads(_unb64(head))
            claims = orjson.loads(_unb64(body))
            signature = _unb64(sig)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            raise _invalid("the proof is not canonical base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise _invalid("the proof's header and claims must be JSON objects")
        if header.get("typ") != TYP:  # RFC 9449 §4.3 point 4
            raise _invalid("typ must be dpop+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algs:  # RFC 9449 §4.3 point 5: asymmetric, supported
            raise _invalid("unsupported alg")
        if "crit" in header:  # RFC 7515 §4.1.11: no extension is understood here
            raise _invalid("crit is not supported")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):  # RFC 9449 §4.3 point 7
            raise _invalid("the proof needs a jwk header")
        if PRIVATE_MEMBERS & jwk.keys() or jwk.get("kty") == "oct":  # RFC 9449 §4.3 point 7: no private key
            raise _invalid("the jwk must be a public key")
        kty, crv = _KEY_FOR_ALG[alg]
        if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
            raise _invalid("the jwk does not fit alg")
        try:
            jkt, key = _public_key(_canonical_members(jwk))
        except ValueError:
            raise _invalid("the jwk is not a usable public key") from None
        try:
            _check_signature(alg, key, f"{head}.{body}".encode("ascii"), signature)  # RFC 9449 §4.3 point 7
        except (ValueError, InvalidSignature):
            raise _invalid("the signature does not verify with the jwk") from None
        return claims, jkt
