"""The hosted pages: sign-in, consent, account, sign-out. Thin routes over idp.sessions and idp.users."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from idp.container import Container
from idp.web.templating import STATIC


def routes(c: Container) -> list[BaseRoute]:
    from idp.web.pages import account, consent, login, logout

    return [
        *login.routes(c),
        *consent.routes(c),
        *account.routes(c),
        *logout.routes(c),
        Mount("/static", StaticFiles(packages=[STATIC]), name="static"),
    ]
