"""idp.bff: a backend-for-frontend. The browser holds an opaque session id in a ``__Host-`` cookie; the
BFF holds the user's tokens server-side (encrypted), signs in as a confidential OIDC client of idp, and
proxies API calls to upstreams with a short-lived access token for each (forwarded or exchanged, RFC 8693).

It talks to idp over HTTP only: it imports :mod:`idp.resource` (to verify what idp signs) and leaf
helpers, never the server's internals.
"""
