"""The OAuth 2.1 / OpenID Connect protocol: the token endpoint and its grants, client authentication,
the authorization decision, userinfo, introspection and revocation decisions, discovery. The only package
importing Authlib (its RFC 8414 / OIDC Discovery metadata validators, in :mod:`idp.oauth.discovery`)."""
