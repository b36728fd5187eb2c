"""A token request after the endpoint's common steps: parsed once, the client authenticated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from idp.clients.model import Client


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a grant sees. ``params`` holds only the grant's declared parameters (single-valued, RFC 6749
    §3.2; empty ones already dropped as omitted, §3.1); ``resources`` the repeated ``resource`` values
    (RFC 8707 §2); ``client`` the client that authenticated; ``headers`` the request's headers (for the
    sender-constraint step, e.g. ``DPoP``); ``dpop_jkt`` the thumbprint of the key of the request's verified
    DPoP proof (RFC 9449), None without one."""

    grant_type: str
    params: Mapping[str, str]
    resources: list[str]
    client: Client
    headers: Mapping[str, str]
    dpop_jkt: str | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name)
