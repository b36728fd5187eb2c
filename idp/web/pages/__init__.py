"""The hosted pages: sign-in, consent, account, sign-out: HTTP over idp.sessions and idp.users."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from idp.web.pages import account, account_factors, consent, factor, login, logout, passkeys
from idp.web.templating import STATIC

ROUTES: tuple[BaseRoute, ...] = (
    *passkeys.ROUTES,  # before /login and /account: more specific paths
    *login.ROUTES,
    *factor.ROUTES,
    *consent.ROUTES,
    *account.ROUTES,
    *account_factors.ROUTES,
    *logout.ROUTES,
    # The stylesheet and scripts, from the package (idp/templates/static).
    Mount("/static", StaticFiles(packages=[STATIC]), name="static"),
)
