"""First start of an empty database: keys, and (a local trial) a ready-to-copy demo.

The demo is created by default only for the embedded default (SQLite, in-process store) on a
loopback issuer, and only there are its secrets printed: a start on PostgreSQL, in a container or
behind a public issuer never writes a usable credential to stdout, where log collectors keep it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from idp.crypto import random_token
from idp.services import Services, check_kek
from idp.store.models import MetaRow

_DEMO = "demo_created"


def bootstrap(c: Services) -> dict[str, Any] | None:
    """Check the KEK, make sure signing keys exist, and create the demo once. Returns the demo, if new."""
    try:
        check_kek(c)
    except IntegrityError:  # another worker wrote the check value first
        check_kek(c)
    c.keyring.tick()
    if not c.settings.create_demo:
        return None
    try:
        with c.sessions.begin() as s:
            if s.get(MetaRow, _DEMO) is not None:
                return None
            s.add(MetaRow(key=_DEMO, value="1"))
    except IntegrityError:  # another worker claimed the demo
        return None
    return create_demo(c)


def create_demo(c: Services) -> dict[str, Any]:
    issuer = c.settings.issuer
    web, web_secret = c.clients.create(
        name="Demo Web App",
        kind="web",
        redirect_uris=["http://127.0.0.1:8080/callback"],
        post_logout_redirect_uris=["http://127.0.0.1:8080/"],
        scope="openid profile email offline_access",
    )
    native, _ = c.clients.create(
        name="Demo Mobile App",
        kind="native",
        redirect_uris=["http://127.0.0.1/callback", "com.example.demo:/callback"],
        scope="openid profile offline_access",
    )
    service, service_secret = c.clients.create(
        name="Demo Integrator", kind="service", scope="api:read api:write", audience=f"{issuer}/api"
    )
    password = random_token(12)
    user = c.directory.create("demo", password, email="demo@example.com", name="Demo User")
    return {
        "issuer": issuer,
        "user": {"username": user.username, "password": password},
        "web_client": {"client_id": web.client_id, "client_secret": web_secret, "redirect_uri": web.redirect_uris[0]},
        "native_client": {"client_id": native.client_id, "redirect_uri": native.redirect_uris[0]},
        "service_client": {"client_id": service.client_id, "client_secret": service_secret},
    }


def format_demo(demo: dict[str, Any], *, reveal: bool) -> str:
    """The demo banner; without ``reveal`` (anything but a local trial) client ids only, no secret."""
    if not reveal:
        return _format_withheld(demo)
    iss = demo["issuer"]
    svc = demo["service_client"]
    web = demo["web_client"]
    nat = demo["native_client"]
    return "\n".join(
        [
            "",
            "  idp demo (shown once; secrets are stored only as digests)",
            f"  issuer        {iss}",
            f"  discovery     {iss}/.well-known/openid-configuration",
            f"  user          {demo['user']['username']} / {demo['user']['password']}",
            f"  web app       client_id={web['client_id']} client_secret={web['client_secret']}",
            f"                redirect_uri={web['redirect_uri']}",
            f"  mobile app    client_id={nat['client_id']} (public, PKCE S256) redirect_uri={nat['redirect_uri']}",
            f"  integrator    client_id={svc['client_id']} client_secret={svc['client_secret']}",
            "",
            f"  try:  curl -s -u CLIENT_ID:CLIENT_SECRET -d grant_type=client_credentials {iss}/token",
            "",
        ]
    )


def _format_withheld(demo: dict[str, Any]) -> str:
    return "\n".join(
        [
            "",
            "  idp demo created (IDP_DEMO=true); its secrets are not shown outside a local trial",
            "  (the embedded default on a loopback issuer). The demo user's password is unknown: create",
            "  your own user with `idp users create`; `idp clients rotate-secret CLIENT_ID` issues a secret.",
            f"  web app       client_id={demo['web_client']['client_id']}",
            f"  mobile app    client_id={demo['native_client']['client_id']}",
            f"  integrator    client_id={demo['service_client']['client_id']}",
            "",
        ]
    )
