"""A software passkey for the bench: the credential the fixtures register and the assertion a sign-in sends.

Counter-less, as many platform passkeys are (the signature counter stays 0, which WebAuthn L3 §6.1.1 allows),
so any number of concurrent sign-ins of one credential are all valid. User presence and verification set.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

FLAGS_UP_UV = 0x05


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_credential() -> dict[str, str]:
    """A fresh ES256 key: its credential id, COSE public key and PEM private key (base64url / text)."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return {"credential_id": b64u(secrets.token_bytes(16)), "public_key": b64u(cose), "private_key": pem.decode()}


def assertion(credential: dict[str, Any], user_handle: str, options: dict[str, Any], origin: str) -> str:
    """The ``PublicKeyCredential`` JSON ``navigator.credentials.get`` would give for these options."""
    key = credential.get("_key")
    if key is None:
        key = credential["_key"] = serialization.load_pem_private_key(credential["private_key"].encode(), None)
    auth_data = hashlib.sha256(options["rpId"].encode()).digest() + bytes([FLAGS_UP_UV]) + bytes(4)
    client_data = json.dumps({"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}).encode()
    signature = key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
    cid = credential["credential_id"]
    return json.dumps({
        "id": cid, "rawId": cid, "type": "public-key", "clientExtensionResults": {},
        "response": {"clientDataJSON": b64u(client_data), "authenticatorData": b64u(auth_data),
                     "signature": b64u(signature), "userHandle": b64u(user_handle.encode())},
    })  # fmt: skip
