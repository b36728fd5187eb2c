"""Signing keys: the key-encryption key, the keyring with kid-based rotation and its policy, the JWKS
document, and KeyAdmin (the operator's use cases)."""
