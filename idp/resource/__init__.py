"""What resource servers import: JWKS cache, local at+jwt verification, deny-list follower, ASGI middleware."""
