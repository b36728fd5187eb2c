"""The hosted pages: sign-in, consent, account, sign-out. Thin routes over idp.sessions and idp.users."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from idp.services import Services
from idp.web.templating import templates_dir


def routes(c: Services) -> list[BaseRoute]:
    from idp.web.pages import account, consent, login, logout

    return [
        *login.routes(c),
        *consent.routes(c),
        *account.routes(c),
        *logout.routes(c),
        Mount("/static", StaticFiles(directory=templates_dir() / "static"), name="static"),
    ]
