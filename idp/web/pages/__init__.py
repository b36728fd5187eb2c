"""The hosted pages: sign-in, consent, account, sign-out. Thin routes over idp.sessions and idp.users."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from idp.oauth.token.grant import GrantRegistry
from idp.services import Services
from idp.web.templating import STATIC


def routes(c: Services, grants: GrantRegistry) -> list[BaseRoute]:
    """Built once per app: the static files' folder is checked when the app is created, not at import."""
    from idp.web.pages import account, consent, login, logout

    return [
        *login.ROUTES,
        *consent.ROUTES,
        *account.ROUTES,
        *logout.ROUTES,
        Mount("/static", StaticFiles(packages=[STATIC]), name="static"),
    ]
