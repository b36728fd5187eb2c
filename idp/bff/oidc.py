"""The BFF as a confidential OIDC client of idp, on Authlib's Starlette integration.

Authorization code with PKCE (S256) and a nonce, ``client_secret_basic`` at the token endpoint. Authlib checks
``state`` (against the login record's copy), sends the verifier and validates the ID token (signature by a
key of idp's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``, ``at_hash``). Here, besides: the ``iss`` parameter of
the authorization response (RFC 9207) before the code is redeemed, and the ID token's ``iss``/``aud``/``sub``
once more, so a change of Authlib defaults cannot loosen them silently.

Authlib keeps its per-flow state in ``request.session``; the BFF puts a plain dict there for the one request
(the server-side login record's flow, :mod:`idp.bff.login`), so no session middleware (and no signed or
sealed cookie) is involved.
"""

from __future__ import annotations

import warnings
from typing import Any
from urllib.parse import urlencode

import authlib.deprecate  # noqa: F401  (it installs an "always" filter; the one below must come after)
import httpx
from starlette.requests import Request
from starlette.responses import Response

from idp.bff.token_endpoint import basic_credentials

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # Authlib notes its httpx fallback on import
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.starlette_client import OAuth

__all__ = ["OAuthError", "OidcClient", "SignInFailed"]

NAME = "idp"


class SignInFailed(Exception):
    """The authorization response or the token exchange did not check out; ``error`` is OAuth-shaped."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class OidcClient:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        scopes: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self._transport = transport
        self._timeout = timeout
        client_kwargs: dict[str, Any] = {
            "scope": scopes,
            "code_challenge_method": "S256",  # PKCE
            "token_endpoint_auth_method": "client_secret_basic",
            "timeout": timeout,
        }
        if transport is not None:
            client_kwargs["transport"] = transport  # Authlib hands client_kwargs to httpx.AsyncClient
        self._oauth = OAuth()
        self._oauth.register(
            NAME,
            client_id=client_id,
            client_secret=client_secret,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs=client_kwargs,
        )
        self.app: Any = self._oauth.create_client(NAME)

    async def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = await self.app.load_server_metadata()
        if metadata.get("issuer") != self.issuer:  # OIDC Discovery §4.3: the issuer the document names is ours
            raise SignInFailed("server_error", "the discovery document names another issuer")
        return metadata

    async def authorize_redirect(self, request: Request, redirect_uri: str) -> Response:
        """The redirect to idp's authorization endpoint; Authlib writes state, nonce, verifier to the session."""
        await self.metadata()
        response: Response = await self.app.authorize_redirect(request, redirect_uri)
        return response

    async def finish(self, request: Request) -> dict[str, Any]:
        """The token response (with ``userinfo``: the ID token's checked claims) for this callback request."""
        metadata = await self.metadata()
        params = request.query_params
        iss_expected = "iss" in params or metadata.get("authorization_response_iss_parameter_supported")
        if iss_expected and params.get("iss") != self.issuer:  # RFC 9207 §2.4: mix-up defence, before the code
            raise SignInFailed("invalid_request", "the authorization response comes from another issuer")
        try:
            token: dict[str, Any] = await self.app.authorize_access_token(request, leeway=60)
        except OAuthError as exc:
            raise SignInFailed(exc.error or "invalid_request", exc.description or "sign-in failed") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed("temporarily_unavailable", f"idp could not be reached ({type(exc).__name__})") from None
        except Exception as exc:  # joserfc's errors: the ID token does not verify
            raise SignInFailed("invalid_grant", f"the ID token does not verify ({type(exc).__name__})") from None
        claims = token.get("userinfo")
        if not token.get("id_token") or not isinstance(claims, dict):
            raise SignInFailed("invalid_grant", "no ID token")  # OIDC Core §3.1.3.3: openid asks for one
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if claims.get("iss") != self.issuer or self.client_id not in audiences:  # OIDC Core §3.1.3.7 (2), (3)
            raise SignInFailed("invalid_grant", "the ID token is not for this client from this issuer")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise SignInFailed("invalid_grant", "the ID token names nobody")
        return token

    async def userinfo(self, token: dict[str, Any]) -> dict[str, Any]:
        """idp's userinfo for this token (name, email…: idp may keep them out of the ID token)."""
        info: dict[str, Any] = dict(await self.app.userinfo(token=token))
        return info

    async def revoke(self, token: str, *, hint: str = "refresh_token") -> bool:
        """RFC 7009 revocation at idp (client_secret_basic); True when idp answered 200."""
        metadata = await self.metadata()
        endpoint = metadata.get("revocation_endpoint")
        if not endpoint:
            return False
        auth = {"authorization": basic_credentials(self.client_id, self._client_secret)}
        async with httpx.AsyncClient(transport=self._transport, timeout=self._timeout, trust_env=False) as http:
            r = await http.post(endpoint, data={"token": token, "token_type_hint": hint}, headers=auth)
        return r.status_code == 200

    async def end_session_url(self, *, id_token: str | None, post_logout_redirect_uri: str, state: str = "") -> str:
        """RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2) at idp's end_session_endpoint."""
        metadata = await self.metadata()
        params = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if state:
            params["state"] = state
        if id_token:
            params["id_token_hint"] = id_token  # lets idp end its session without asking
        return f"{metadata['end_session_endpoint']}?{urlencode(params)}"
