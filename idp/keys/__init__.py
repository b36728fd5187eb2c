"""Signing keys: the key-encryption key, the keyring with kid-based rotation, the JWKS document."""
