"""Discovery documents and the JWKS, served as pre-serialised bytes with strong ETags.

:class:`StaticDocuments` holds each document with its response headers already built;
:class:`idp.web.middleware.Edge` answers GET and HEAD from it before the router. The
routes below serve the same answers (and give other methods their 405).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from idp.keys.jwks import JwksDocument
from idp.services import Services
from idp.web.middleware import Headers, secured

DISCOVERY_PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
JWKS_PATH = "/jwks.json"
DISCOVERY_MAX_AGE = 3600


class Document:
    """One static JSON document: its bytes, strong ETag and the headers of its 200 and 304 answers."""

    __slots__ = ("_secured", "body", "etag", "plain")

    def __init__(self, body: bytes, etag: str, max_age: int) -> None:
        self.body = body
        self.etag = etag
        cache = [
            (b"etag", etag.encode()),
            (b"cache-control", f"public, max-age={max_age}".encode()),
            (b"access-control-allow-origin", b"*"),  # public documents: any page may read them (no credentials)
        ]
        length = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
        self.plain = {200: [*cache, *length], 304: cache}  # as an app returns them, for Edge to secure
        self._secured = {status: secured(status, headers) for status, headers in self.plain.items()}

    def status(self, if_none_match: str | None) -> int:
        """304 when ``If-None-Match`` names our ETag (RFC 9110 §13.1.2: weak comparison), else 200."""
        if if_none_match and self.etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
            return 304
        return 200

    def answer(self, if_none_match: bytes | None) -> tuple[int, Headers, bytes]:
        status = self.status(if_none_match.decode("latin-1") if if_none_match else None)
        return status, self._secured[status], self.body if status == 200 else b""


class StaticDocuments:
    """``get(path)``: the document at ``path`` now (the JWKS follows the keyring), or None."""

    def __init__(self, c: Services, metadata: Mapping[str, object]) -> None:
        body = orjson.dumps(metadata)
        discovery = Document(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', DISCOVERY_MAX_AGE)
        self._fixed = dict.fromkeys(DISCOVERY_PATHS, discovery)
        self._c = c
        self._jwks: tuple[JwksDocument, Document] | None = None

    def get(self, path: str) -> Document | None:
        found = self._fixed.get(path)
        if found is None and path == JWKS_PATH:
            found = self.jwks()
        return found

    def jwks(self) -> Document:
        current = self._c.jwks.current()
        cached = self._jwks
        if cached is None or cached[0] is not current:
            cached = self._jwks = (current, Document(current.body, current.etag, self._c.settings.jwks_max_age))
        return cached[1]


def _response(document: Document, request: Request) -> Response:
    status = document.status(request.headers.get("if-none-match"))
    response = Response(document.body if status == 200 else b"", status)
    response.raw_headers = list(document.plain[status])
    return response


def documents_of(conn: HTTPConnection) -> StaticDocuments:
    """The app's documents, from the lifespan state (:func:`idp.app.create_app` yields them as ``documents``)."""
    documents: StaticDocuments = conn.scope["state"]["documents"]
    return documents


async def discovery(request: Request) -> Response:
    found = documents_of(request).get(DISCOVERY_PATHS[0])
    assert found is not None
    return _response(found, request)


async def jwks(request: Request) -> Response:
    return _response(documents_of(request).jwks(), request)


ROUTES: tuple[Route, ...] = (
    *(Route(path, discovery, methods=["GET"]) for path in DISCOVERY_PATHS),
    Route(JWKS_PATH, jwks, methods=["GET"]),
)
