"""What a token-endpoint grant declares about itself."""

from __future__ import annotations

from typing import ClassVar, Protocol


class TokenGrant(Protocol):
    grant_type: ClassVar[str]
    parameters: ClassVar[frozenset[str]]
    public_clients: ClassVar[bool]
    blocking: ClassVar[bool]
