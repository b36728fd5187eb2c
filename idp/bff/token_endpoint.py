"""The BFF as a confidential client at idp's token endpoint: one POST, authenticated with
``client_secret_basic``, answered by a token response or an RFC 6749 §5.2 error.

Refresh and token exchange both go through :class:`TokenEndpoint`; the errors it raises are what the
proxy turns into answers for the SPA: :class:`SessionEnded` (sign in again), :class:`IdpUnavailable`
(try again later, the session stays), :class:`IdpRefused` (idp said no for a reason that is not the
user's session: a misconfiguration to fix, the session stays).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

log = logging.getLogger(__name__)

# RFC 6749 §5.2: error codes are printable ASCII without '"' and '\\'; anything else is not repeated.
ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")


class BffError(Exception):
    """An error the proxy answers with ``{"error": code, "error_description": ...}`` and ``status``."""

    status = 502
    code = "bad_gateway"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class SessionEnded(BffError):
    """The session cannot carry on (its grant was refused, or it is gone); the SPA signs in again."""

    status = 401
    code = "session_ended"


class IdpUnavailable(BffError):
    """idp did not answer usefully (timeout, connection error, 5xx); retrying later may work."""

    status = 503
    code = "idp_unavailable"


class IdpRefused(BffError):
    """idp refused the request for a reason other than the user's grant (e.g. ``invalid_client``)."""

    status = 502
    code = "idp_refused"


class TokenError(Exception):
    """An RFC 6749 §5.2 error response: ``error`` is the code, never shown with secrets."""

    def __init__(self, error: str, status: int) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value for client_secret_basic. RFC 6749 §2.3.1: both parts are
    form-urlencoded before they are joined and base64-encoded (httpx.BasicAuth does not encode)."""
    raw = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


UrlSource = Callable[[], Awaitable[str]]


class TokenEndpoint:
    """POSTs forms to idp's token endpoint. ``timeout`` bounds each call as a whole (connect, write, read),
    which the refresh lease relies on: a refresh never outlives the lease that makes it single.

    ``url`` is the endpoint, or a coroutine function that finds it (idp's discovery document, read on first
    use so idp need not be up when the BFF starts); that lookup is bounded by ``timeout`` too, so a call
    lasts at most ``2 * timeout``: :meth:`bound` is what a lease must outlive."""

    def __init__(
        self,
        url: str | UrlSource,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self.timeout = timeout
        self._http = http
        self._auth = basic_credentials(client_id, client_secret)

    @property
    def bound(self) -> float:
        """The longest one :meth:`post` can take."""
        return self.timeout if isinstance(self._url, str) else 2 * self.timeout

    async def url(self) -> str:
        if isinstance(self._url, str):
            return self._url
        try:
            async with asyncio.timeout(self.timeout):
                return await self._url()
        except TimeoutError:
            raise IdpUnavailable("idp's discovery document did not arrive in time") from None
        except Exception as exc:  # unreachable, not JSON, another issuer: no token endpoint to call
            log.warning("token endpoint unknown: %s", type(exc).__name__)
            raise IdpUnavailable("idp's token endpoint is not known (discovery failed)") from None

    async def post(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The JSON token response. Raises :class:`TokenError` for a 4xx error response and
        :class:`IdpUnavailable` when idp cannot be reached, times out, answers 5xx or answers nonsense."""
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        url = await self.url()
        try:
            resp = await self._http.post(url, data=dict(form), headers=headers, timeout=httpx.Timeout(self.timeout))
        except httpx.TimeoutException:
            raise IdpUnavailable("the token endpoint timed out") from None
        except httpx.HTTPError as exc:
            log.warning("token endpoint unreachable: %s", type(exc).__name__)
            raise IdpUnavailable("the token endpoint is unreachable") from None
        if resp.status_code >= 500:
            raise IdpUnavailable(f"the token endpoint answered {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise IdpUnavailable("the token endpoint answered something other than a JSON object")
        if resp.status_code != 200:
            error = body.get("error")
            code = error if isinstance(error, str) and ERROR_CODE.fullmatch(error) else "invalid_request"
            raise TokenError(code, resp.status_code)
        return body


def expires_in(body: Mapping[str, Any], default: float) -> float:
    """``expires_in`` from a token response when it is a positive number, else ``default``."""
    value = body.get("expires_in")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return default
    return float(value)
