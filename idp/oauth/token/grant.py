"""What a token-endpoint grant declares about itself, and the registry the endpoint dispatches over.

A grant is a small object with class-level declarations; the endpoint (:mod:`idp.oauth.token.endpoint`)
reads them to decide everything that is the same for every grant: which form parameters reach it, whether
a public client may use it, and whether it may run on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from idp.errors import UnsupportedGrantType

if TYPE_CHECKING:
    from idp.oauth.token.request import TokenRequest
    from idp.services import Services


class TokenGrant(Protocol):
    """One ``grant_type`` at the token endpoint (RFC 6749 §4, §6; later RFC 8628, RFC 8693)."""

    grant_type: ClassVar[str]
    parameters: ClassVar[frozenset[str]]
    """The form parameters the grant reads besides ``grant_type``; anything else is dropped before it runs."""
    public_clients: ClassVar[bool]
    """Whether a public client (``none``) may use it; RFC 6749 §4.4: client_credentials is confidential only."""
    blocking: ClassVar[bool]
    """Whether :meth:`issue` does I/O (codes, refresh families, users): it then runs in the threadpool."""

    def issue(self, services: Services, request: TokenRequest) -> dict[str, Any]:
        """The token response body (RFC 6749 §5.1); raises :class:`idp.errors.OAuthError` to refuse."""
        ...


class GrantRegistry(Mapping[str, TokenGrant]):
    """The grants the endpoint serves, by ``grant_type``; immutable once built."""

    def __init__(self, grants: Iterable[TokenGrant]) -> None:
        by_type: dict[str, TokenGrant] = {}
        for grant in grants:
            if grant.grant_type in by_type:
                raise ValueError(f"grant_type {grant.grant_type!r} is registered twice")
            by_type[grant.grant_type] = grant
        self._grants = by_type

    def lookup(self, grant_type: str) -> TokenGrant:
        """The grant for ``grant_type``; RFC 9700 §2.4: no password grant, no implicit; only what is here."""
        grant = self._grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantType("unsupported grant_type")
        return grant

    @property
    def grant_types(self) -> list[str]:
        """For discovery's ``grant_types_supported`` (RFC 8414 §2), in registration order."""
        return list(self._grants)

    def __getitem__(self, grant_type: str) -> TokenGrant:
        return self._grants[grant_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._grants)

    def __len__(self) -> int:
        return len(self._grants)
