"""idp: an OAuth 2.1 / OpenID Connect identity provider."""

__version__ = "0.1.0"
