"""OpenID Connect Back-Channel Logout 1.0: the outbox's sender and the feature that runs it."""
