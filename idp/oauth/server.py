"""Authlib's AuthorizationServer, configured with our hardened grants.

Client authentication happens before Authlib runs (:mod:`idp.oauth.client_auth`,
one method per client); Authlib's client-auth registry only hands back the client
that was already authenticated. Authlib's errors are translated into
:mod:`idp.errors` so one handler renders every error.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from idp import errors
from idp.clients.model import AUTH_METHODS, Client
from idp.oauth.grants.authorization_code import CodeGrant
from idp.oauth.grants.client_credentials import ClientCredentialsGrant
from idp.oauth.grants.openid import IdTokenExtension
from idp.oauth.grants.pkce import Pkce
from idp.oauth.grants.refresh_token import RotatingRefreshTokenGrant
from idp.services import Services

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_ERRORS: dict[str, type[errors.OAuthError]] = {
    "invalid_request": errors.InvalidRequest,
    "invalid_client": errors.InvalidClient,
    "invalid_grant": errors.InvalidGrant,
    "unauthorized_client": errors.UnauthorizedClient,
    "unsupported_grant_type": errors.UnsupportedGrantType,
    "invalid_scope": errors.InvalidScope,
    "access_denied": errors.AccessDenied,
}


class OAuthClient(ClientMixin):
    """Authlib's view of a registered :class:`Client`."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # redirect_uri is always required (OIDC Core §3.1.2.1)

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.client.scopes)
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.client.redirect_uri_allowed(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # secrets are checked in idp.oauth.client_auth, never here

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.client.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.client.allows_grant("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "client_credentials" and self.client.is_public:
            return False  # RFC 6749 §4.4: confidential clients only
        return self.client.allows_grant(grant_type)  # ASVS V10.4.4: per-client grant types


_CHECKED: dict[str, dict[str, Any]] = {}  # token endpoint URI -> a fresh request's attributes, once Authlib passed it


class TokenRequest(OAuth2Request):
    """A token request whose client is already authenticated; ``form`` is the single-valued body.

    Authlib's constructor re-parses the URI on every request to check it is https (or loopback);
    the URI is our own token endpoint, the same every time, so that check runs once per URI and
    later requests start from a copy of the attributes it left.
    """

    def __init__(self, uri: str, headers: Any, form: dict[str, str], resources: list[str], client: Client) -> None:
        checked = _CHECKED.get(uri)
        if checked is None:
            super().__init__("POST", uri, headers=headers)  # raises InsecureTransportError for a plain-http URI
            if len(_CHECKED) < 16:
                _CHECKED[uri] = dict(vars(self))
        else:
            self.__dict__.update(checked)
            self.headers = headers
        self.payload = BasicOAuth2Payload(form)
        self._form = form
        self.resources = resources
        self.authenticated = OAuthClient(client)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


def _preauthenticated(method: str) -> Any:
    def check(query_client: Any, request: TokenRequest) -> OAuthClient | None:
        found = request.authenticated
        return found if found.client.auth_method == method else None

    return check


class IdpAuthorizationServer(AuthorizationServer):
    def __init__(self, c: Services) -> None:
        super().__init__(scopes_supported=None)
        self.c = c
        for method in AUTH_METHODS:
            self.register_client_auth_method(method, _preauthenticated(method))
        self.register_grant(CodeGrant, [Pkce(), IdTokenExtension()])
        self.register_grant(RotatingRefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = self.c.clients.get_active(client_id)
        return OAuthClient(client) if client else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Persistence happens inside the grants (families, codes); CC tokens are not stored."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuth2Request)
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Any:
        raise translate(error)

    def token(self, request: TokenRequest) -> dict[str, Any]:
        """Run the grant for an authenticated token request; returns the response body or raises OAuthError."""
        _, body, _ = self.create_token_response(request)
        return body


def translate(error: OAuth2Error) -> errors.OAuthError:
    cls = _ERRORS.get(error.error or "", errors.InvalidRequest)
    return cls(error.description or "")
