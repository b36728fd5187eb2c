"""DPoP-bound access tokens at a resource server (RFC 9449 §7), framework-free.

A token whose claims carry ``cnf.jkt`` is bound to the key with that RFC 7638 thumbprint.
It is accepted only with the ``DPoP`` authorization scheme and exactly one ``DPoP`` header
holding a proof signed by that key, for this request's method and URL, carrying the
token's hash (``ath``), issued within the ``iat`` window and never seen before (its
``jti`` in the replay cache). A bound token sent as ``Bearer`` is refused: the binding is
what makes a copied token useless, and a downgrade would drop it (§7.2). An unbound token
sent with the ``DPoP`` scheme is refused too: there is no key to hold the proof to.

The proof itself is checked by :class:`idp.resource.dpop.DPoPVerifier`, the same code the
IdP runs at its token and userinfo endpoints. The replay cache is in-process by default
(one worker: a proof replayed to another worker of the same API would pass there, so an
API with several workers or instances passes a shared ``RedisReplayCache``). With
``nonces`` (for example ``HmacNonces``) the API demands its own server nonce (§9).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from idp.resource.dpop import (
    ALGS,
    DPoPError,
    DPoPProof,
    DPoPVerifier,
    MemoryReplayCache,
    NonceSource,
    ReplayCache,
    ReplayCacheUnavailable,
)
from idp.resource.errors import AuthError

# A proof is made for one request, right before it is sent: its iat may lie this far in the past (and the
# verifier's 60 s in the future, for clients whose clocks run ahead).
MAX_AGE_SECONDS = 60
# The in-process replay cache holds each jti for at most max age + future skew + 1 s (121 s): 250,000 entries
# keep up with ~2,000 DPoP requests/s per process even then (more than one core verifies, bench/RESULTS.md),
# in ~60 MB at most. Full, it refuses (503) rather than forget a jti early.
REPLAY_ENTRIES = 250_000


def bound_jkt(claims: dict[str, Any]) -> str | None:
    """The thumbprint the token is bound to, None for a bearer token; AuthError for a binding we cannot check."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    # RFC 7800 §3.1 / RFC 9449 §6.1: a confirmation method we cannot verify (mTLS x5t#S256, a raw jwk)
    # must not be mistaken for none at all: the token would become a bearer token again.
    if not isinstance(jkt, str) or not jkt or set(cnf) != {"jkt"}:
        raise AuthError(401, "invalid_token", "the token is bound by an unsupported confirmation method")
    return jkt


class DPoPCheck:
    """The DPoP rules of one API: which algorithms, how fresh, the replay cache, optional nonces."""

    def __init__(
        self,
        *,
        now: Callable[[], float],
        algs: Iterable[str] = ALGS,
        max_age_seconds: int = MAX_AGE_SECONDS,
        replay: ReplayCache | None = None,
        nonces: NonceSource | None = None,
        required: bool = False,
    ) -> None:
        self.nonces = nonces
        self.required = required
        self.verifier = DPoPVerifier(  # ValueError for an algorithm outside ALGS (never none, never HS*)
            algs=tuple(algs),
            max_age_seconds=max_age_seconds,
            replay=replay if replay is not None else MemoryReplayCache(REPLAY_ENTRIES),
            now=now,
            nonces=nonces,
        )
        self.algs = self.verifier.algs

    def refusal(self, error: str, description: str) -> AuthError:
        """A refusal with the DPoP challenge (RFC 9449 §7.1), and a fresh nonce when the API issues them."""
        nonce = self.nonces.current() if self.nonces is not None else None
        return AuthError(401, error, description, scheme="DPoP", nonce=nonce)

    def check(
        self, token: str, claims: dict[str, Any], *, scheme: str, proofs: Sequence[str], method: str, url: str
    ) -> DPoPProof | None:
        """The verified proof of a bound token, None for an accepted bearer token; else AuthError."""
        jkt = bound_jkt(claims)
        if scheme != "dpop":
            if jkt is not None:  # RFC 9449 §7.2: a DPoP-bound token presented as a bearer token is refused
                raise AuthError(401, "invalid_token", "a DPoP-bound token must be sent with the DPoP scheme")
            if self.required:  # an API that accepts only sender-constrained tokens
                raise self.refusal("invalid_token", "this API accepts only DPoP-bound tokens")
            return None
        if jkt is None:  # RFC 9449 §7.1: the DPoP scheme is for bound tokens; nothing to hold the proof to
            raise self.refusal("invalid_token", "the token is not DPoP-bound")
        if len(proofs) != 1:  # RFC 9449 §4.3 (1): exactly one DPoP header
            raise self.refusal("invalid_dpop_proof", "exactly one DPoP proof header is required")
        try:
            # RFC 9449 §4.3 / §7.1: typ, alg, public jwk, signature, htm, htu, iat window, jti, ath, nonce
            proof = self.verifier.verify(proofs[0], method=method, url=url, access_token=token)
        except DPoPError as exc:
            raise self.refusal(exc.error, exc.description) from None
        except ReplayCacheUnavailable:  # the replay cannot be ruled out: refuse for now, never accept
            raise AuthError(503, "temporarily_unavailable", "cannot check the DPoP proof for replay") from None
        if not hmac.compare_digest(proof.jkt, jkt):  # RFC 9449 §7.1: the proof's key is the token's key
            raise self.refusal("invalid_token", "the DPoP proof key does not match the token's binding")
        return proof
