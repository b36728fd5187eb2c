"""Audiences the IdP keeps for itself, which no client may register.

A client whose registered ``audience`` appears in a token's ``aud`` may introspect that
token (RFC 7662 §4, see :mod:`idp.oauth.introspection`). Every access token carrying
``openid`` names the issuer as an audience (the UserInfo endpoint), and admin tokens name
``ISSUER/admin``; a client registered for either could read every user's (or every admin's)
tokens. So the issuer's own URL space is reserved:

* the issuer and every URL under it are refused, compared after normalising scheme and host
  case, default ports, percent-encoding and trailing slashes (``HTTPS://IdP.example/`` is the
  issuer, and so is ``https://idp.example:443``);
* two exceptions: the default API audience (``IDP_DEFAULT_AUDIENCE``, ``ISSUER/api`` when empty),
  which resource servers register as; and ``ISSUER/admin``, for a ``service`` client with scope
  ``idp:admin`` only (such a client already holds the admin API).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

ADMIN_SCOPE = "idp:admin"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def admin_audience(issuer: str) -> str:
    return f"{issuer}/admin"


def _normal(uri: str) -> str | None:
    """scheme://host[:port]/path, lower-cased, decoded, no default port, no trailing slash; None: not http(s)."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError:  # e.g. an unclosed IPv6 bracket: no token of ours names it
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        return None
    netloc = parts.netloc.rpartition("@")[2].lower()  # userinfo does not change whom the URL names
    host, port = netloc, ""
    if ":" in netloc and not netloc.endswith("]"):
        host, _, port = netloc.rpartition(":")
    if port == "" or (port.isdigit() and int(port) == _DEFAULT_PORTS[scheme]):
        port = ""
    elif port.isdigit():
        port = str(int(port))
    return f"{scheme}://{host}{':' + port if port else ''}{unquote(parts.path).rstrip('/')}"


def reserved_audience(audience: str, *, issuer: str, api_audience: str, admin: bool) -> bool:
    """Whether ``audience`` (one value) names the IdP itself; ``admin``: the client is an idp:admin service."""
    aud, iss = _normal(audience), _normal(issuer)
    if aud is None or iss is None or (aud != iss and not aud.startswith(iss + "/")):
        return False
    admin_aud = _normal(admin_audience(issuer))
    if admin and aud == admin_aud:
        return False
    return aud in (iss, admin_aud) or aud != _normal(api_audience)
