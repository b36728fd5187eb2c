"""An attacker's JWT workshop: every forged or misused token the verifiers must refuse.

Tokens are assembled by hand (header, payload, signature) so that headers a JOSE
library would refuse to *produce* (``alg: none``, ``crit``, ``jku``...) can still be sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

from idp.services import Services
from idp.tokens import jwt
from idp.tokens.id_token import IdTokens


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_sign(private: Any, alg: str, signing_input: bytes) -> bytes:
    if alg == "ES256":
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if alg == "RS256":
        return private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "EdDSA":
        return private.sign(signing_input)
    raise ValueError(alg)


def assemble(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes] | None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    signature = sign(signing_input) if sign else b""
    return signing_input.decode() + "." + b64(signature)


class Forge:
    """Claims and keys of one container; ``tokens()`` is the catalogue of attacks."""

    def __init__(self, c: Services, *, audience: str, alg: str | None = None, **defaults: Any) -> None:
        self.c = c
        self.audience = audience
        self.defaults = defaults  # claims every token carries (e.g. the admin client and scope)
        self.alg = alg or c.settings.access_token_alg
        c.keyring.refresh(force=True)
        self.kid, self.private = c.keyring.signer(self.alg)
        self.attacker = ECKey.generate_key("P-256", parameters={"kid": "attacker", "alg": "ES256"})

    def claims(self, **over: Any) -> dict[str, Any]:
        now = int(self.c.clock.now())
        base = {
            "iss": self.c.settings.issuer,
            "sub": "user-1",
            "aud": self.audience,
            "client_id": "client-1",
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_urlsafe(12),
            "scope": "openid profile",
        }
        base.update(self.defaults)
        base.update(over)
        return {k: v for k, v in base.items() if v is not None}

    def header(self, **over: Any) -> dict[str, Any]:
        return {"alg": self.alg, "typ": "at+jwt", "kid": self.kid} | over

    def ours(self, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
        """Signed with our real signing key: only the header/claims are wrong."""
        raw = self.private.raw_value
        return assemble(header or self.header(), claims or self.claims(), lambda m: raw_sign(raw, self.alg, m))

    def valid(self, **claims: Any) -> str:
        return jwt.sign(self.c.keyring, self.alg, "at+jwt", self.claims(**claims))

    def by_attacker(self, header: dict[str, Any], claims: dict[str, Any] | None = None) -> str:
        raw = self.attacker.private_key
        return assemble(header, claims or self.claims(), lambda m: raw_sign(raw, "ES256", m))

    def public_pem(self) -> bytes:
        pub = self.private.raw_value.public_key()
        return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def hs256_with_public_key(self, secret: bytes) -> str:
        header = self.header(alg="HS256")
        return assemble(header, self.claims(), lambda m: hmac.new(secret, m, hashlib.sha256).digest())

    def tampered(self) -> str:
        token = self.valid()
        head, _, sig = token.split(".")
        claims = self.claims(sub="admin", scope="openid profile idp:admin")
        return f"{head}.{b64(json.dumps(claims).encode())}.{sig}"

    def id_token(self) -> str:
        s = self.c.settings
        ids = IdTokens(self.c.keyring, self.c.clock, issuer=s.issuer, ttl=s.id_token_ttl, default_alg=s.id_token_alg)
        # The same audience an access token would have, so only the type tells them apart.
        return ids.issue(client_id=self.audience, sub="user-1", auth_time=self.c.clock.now())

    def tokens(self) -> dict[str, str]:
        """name -> token. Each one must be refused (401 invalid_token / introspection inactive)."""
        now = int(self.c.clock.now())
        other_key = {
            "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "RS256": lambda: rsa.generate_private_key(65537, 2048),
            "EdDSA": ed25519.Ed25519PrivateKey.generate,
        }[self.alg]()
        jwk_header = self.attacker.as_dict(private=False)
        pem = self.public_pem()
        pub_jwk = json.dumps(self.c.keyring.verification_key(self.kid)[1].as_dict(private=False)).encode()  # type: ignore[index]
        return {
            "alg_none": assemble(self.header(alg="none"), self.claims(), None),
            "alg_none_no_kid": assemble({"alg": "none", "typ": "at+jwt"}, self.claims(), None),
            "alg_None_case": assemble(self.header(alg="None"), self.claims(), None),
            "hs256_public_pem": self.hs256_with_public_key(pem),
            "hs256_public_jwk": self.hs256_with_public_key(pub_jwk),
            "alg_swapped_to_other_asymmetric": self.ours(self.header(alg="RS256" if self.alg != "RS256" else "ES256")),
            "tampered_payload": self.tampered(),
            "truncated_signature": self.valid()[:-10],
            "signature_of_other_key_same_kid": assemble(
                self.header(), self.claims(), lambda m: raw_sign(other_key, self.alg, m)
            ),
            "unknown_kid": self.by_attacker(self.header(alg="ES256", kid="no-such-kid")),
            "no_kid": self.ours({"alg": self.alg, "typ": "at+jwt"}),
            "kid_path_traversal": self.by_attacker(self.header(alg="ES256", kid="../../../../../dev/null")),
            "kid_sql": self.by_attacker(self.header(alg="ES256", kid="x' OR '1'='1' --")),
            "kid_nul": self.by_attacker(self.header(alg="ES256", kid=self.kid + "\x00")),
            "kid_not_string": self.ours(self.header(kid=["a", "b"])),
            "jwk_header_injection": self.by_attacker(self.header(alg="ES256", kid="attacker", jwk=jwk_header)),
            "jwk_header_with_our_kid": self.by_attacker(self.header(alg="ES256", jwk=jwk_header)),
            "jku_header": self.by_attacker(self.header(alg="ES256", jku="https://evil.example/jwks.json")),
            "x5u_header": self.by_attacker(self.header(alg="ES256", x5u="https://evil.example/cert.pem")),
            "jku_header_ours": self.ours(self.header(jku="https://evil.example/jwks.json")),
            "x5c_header_ours": self.ours(self.header(x5c=["MIIB"])),
            "crit_header": self.ours(self.header(crit=["exp"])),
            "crit_unknown": self.ours(self.header(crit=["urn:evil"], **{"urn:evil": True})),
            "expired": self.valid(iat=now - 7200, exp=now - 3600),
            "expired_beyond_leeway": self.valid(iat=now - 200, exp=now - jwt.LEEWAY - 1),
            "nbf_future": self.valid(nbf=now + 3600),
            "iat_future": self.valid(iat=now + 3600, exp=now + 7200),
            "exp_not_number": self.valid(exp="9999999999"),
            "missing_exp": self.valid(exp=None),
            "wrong_iss": self.valid(iss="https://evil.example"),
            "iss_trailing_slash": self.valid(iss=self.c.settings.issuer + "/"),
            "wrong_aud": self.valid(aud="https://other.example/api"),
            "aud_missing": self.valid(aud=None),
            "typ_jwt": self.ours(self.header(typ="JWT")),
            "typ_missing": self.ours({"alg": self.alg, "kid": self.kid}),
            "typ_logout": self.ours(self.header(typ="logout+jwt")),
            "id_token_as_access_token": self.id_token(),
            "refresh_token_as_bearer": secrets.token_urlsafe(32),
            "two_parts": ".".join(self.valid().split(".")[:2]),
            "json_payload_array": self.ours(claims=[1, 2]),  # type: ignore[arg-type]
            "oversized": self.valid(pad="A" * 9000),
            "not_base64": "@@@.###.$$$",
        }
