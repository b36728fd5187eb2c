"""The per-client origin check the client endpoints make once they know the client."""

from __future__ import annotations

import pytest

from idp.clients.model import Client
from idp.clients.origins import OriginRefused, check_client_origin, own_origin

OWN = own_origin("https://idp.test/tenant")
SPA = Client("p", "SPA", "native", "none", redirect_uris=["https://spa.example/cb"],
             allowed_cors_origins=["http://127.0.0.1:5173"])  # fmt: skip
WEB = Client("w", "Web", "web", "client_secret_basic", redirect_uris=["https://web.example/cb"],
             allowed_cors_origins=["https://console.example"])  # fmt: skip


@pytest.mark.parametrize(
    ("client", "origins"),
    [(SPA, []), (SPA, ["https://spa.example"]), (SPA, ["http://127.0.0.1:5173"]), (SPA, [OWN]),
     (WEB, ["https://console.example"]), (WEB, [OWN, "https://console.example"])],
)  # fmt: skip
def test_the_clients_own_origins_pass(client: Client, origins: list[str]) -> None:
    check_client_origin(origins, client, OWN)


@pytest.mark.parametrize(
    ("client", "origins"),
    [(SPA, ["https://console.example"]), (SPA, ["http://127.0.0.1"]), (SPA, ["null"]),
     (WEB, ["https://web.example"]), (WEB, ["https://spa.example"]),
     (SPA, ["https://spa.example", "https://evil.example"])],  # every Origin sent is checked, not the first
)  # fmt: skip
def test_any_other_origin_is_refused_with_403(client: Client, origins: list[str]) -> None:
    with pytest.raises(OriginRefused) as raised:
        check_client_origin(origins, client, OWN)
    assert raised.value.status == 403 and raised.value.error == "invalid_request"
