"""DPoP (RFC 9449) at the IdP: which requests need a proof, what a proof binds, and the errors.

* Token endpoint (§5): a valid proof makes the access token ``token_type: DPoP`` with ``cnf.jkt`` (§6.1);
  a public client's refresh-token family is bound to the proof's key, at the code exchange or at its first
  refresh with a proof (a confidential client's only with
  ``IDP_DPOP_BIND_CONFIDENTIAL_REFRESH``: its refresh tokens are bound to its credentials already). A
  client registered with ``dpop_bound_access_tokens`` (§5.2), or any public client with
  ``IDP_DPOP_REQUIRED_FOR_PUBLIC_CLIENTS``, is refused without a proof (``invalid_grant``, as
  node-oidc-provider answers). A code issued for ``dpop_jkt`` (§10) needs a proof by that key.
* UserInfo (§7): ``Authorization: DPoP <token>`` with a proof carrying ``ath``, by the token's key; a
  bound token presented as ``Bearer`` is refused (§7.2).
* Errors: ``invalid_dpop_proof``, ``use_dpop_nonce`` with ``DPoP-Nonce`` (§8); at a resource endpoint with
  ``WWW-Authenticate: DPoP error=… algs=…`` (§7.1). The replay cache unreachable is 503, never a replay
  let through.

The proof itself is checked by :class:`idp.resource.dpop.DPoPVerifier` (``Services.dpop``), the same code
resource servers run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from starlette.datastructures import Headers

from idp.clients.model import Client
from idp.errors import InvalidDPoPProof, InvalidGrant, TemporarilyUnavailable, UseDPoPNonce
from idp.oauth.token.request import TokenRequest
from idp.resource.dpop import USE_NONCE, DPoPError, DPoPProof, ReplayCacheUnavailable
from idp.services import Services

HEADER = "dpop"
NONCE_HEADER = "dpop-nonce"


def proof_of(headers: Headers, *, status: int = 400) -> str | None:
    """The request's one ``DPoP`` header, None when it has none (``status``: 400 at the token endpoint, 401 at
    resources, RFC 9449 §7.1)."""
    proofs = headers.getlist(HEADER)
    if len(proofs) > 1:  # RFC 9449 §4.3 point 1: not more than one DPoP header
        raise InvalidDPoPProof("send one DPoP header", status=status)
    return proofs[0] if proofs else None


def checked(
    c: Services, proof: str, *, method: str, url: str, access_token: str | None = None, status: int = 400
) -> DPoPProof:
    """The verified proof, or the OAuth error for it (``status``: 400 at the token endpoint, 401 at resources)."""
    try:
        return c.dpop.verify(proof, method=method, url=url, access_token=access_token)
    except DPoPError as exc:
        if exc.error == USE_NONCE:  # RFC 9449 §8: the nonce to use goes with the error
            raise UseDPoPNonce(exc.description, nonce=exc.nonce or c.dpop.fresh_nonce() or "", status=status) from None
        raise InvalidDPoPProof(exc.description, status=status) from None
    except ReplayCacheUnavailable as exc:  # RFC 9449 §11.1: a jti we cannot check is not accepted
        unavailable = TemporarilyUnavailable("DPoP proofs cannot be checked right now; retry shortly", detail=str(exc))
        unavailable.retry_after = 1
        raise unavailable from None


def requires_proof(c: Services, client: Client) -> bool:
    """RFC 9449 §5.2: the client's registration, or the deployment's rule for public clients."""
    return client.dpop_bound_access_tokens or (client.is_public and c.settings.dpop_required_for_public_clients)


def binds_refresh(c: Services, client: Client) -> bool:
    """RFC 9449 §5: refresh tokens of public clients are bound to the proof's key; confidential ones on request."""
    return client.is_public or c.settings.dpop_bind_confidential_refresh


def token_constraint(c: Services, request: TokenRequest, headers: Headers) -> TokenRequest:
    """The token endpoint's sender-constraint step: ``request`` with the proof's key thumbprint, if any."""
    proof = proof_of(headers)
    if proof is None:
        if requires_proof(c, request.client):  # RFC 9449 §5.2: no unbound token for this client
            raise InvalidGrant("a DPoP proof is required for this client")
        return request
    verified = checked(c, proof, method="POST", url=f"{c.settings.issuer}/token")  # RFC 9449 §4.3
    return dataclasses.replace(request, dpop_jkt=verified.jkt)


def success_headers(c: Services, headers: Mapping[str, str]) -> dict[str, str]:
    """RFC 9449 §8.2: with nonces on, a response to a DPoP request carries the nonce to use next."""
    nonce = c.dpop.fresh_nonce() if HEADER in headers else None
    return {NONCE_HEADER: nonce} if nonce is not None else {}
