"""The token endpoint: its grants and their registry."""
