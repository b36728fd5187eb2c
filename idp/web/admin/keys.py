"""/admin/keys: list signing keys, publish a next key, retire one, or revoke one as compromised."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.keys.keyring import ALGORITHMS, StoredKey
from idp.services import services_of
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import Problem, admin_endpoint, field, json_body, json_ok


def key_json(r: StoredKey) -> dict[str, Any]:
    """Public facts only: never the (encrypted) private key."""
    return {
        "kid": r.kid,
        "alg": r.alg,
        "state": r.state,
        "created_at": r.created_at,
        "activate_after": r.activate_after,
        "activated_at": r.activated_at,
        "retired_at": r.retired_at,
        "remove_after": r.remove_after,
        "compromised_at": r.compromised_at,
    }


async def list_keys(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def load() -> list[StoredKey]:
        c.keyring.refresh(force=True)
        return sorted(c.keyring.rows(), key=lambda r: (r.alg, r.created_at, r.kid))

    return json_ok({"keys": [key_json(r) for r in await run_in_threadpool(load)]})


async def rotate(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await json_body(request)
    alg = field(data, "alg", str)
    if alg is not None and alg not in ALGORITHMS:
        raise Problem(422, f"alg must be one of {', '.join(ALGORITHMS)}.", code="invalid_field")

    def run() -> list[StoredKey]:
        return c.key_admin.rotate(alg, actor=admin.actor)

    return json_ok({"keys": [key_json(r) for r in await run_in_threadpool(run)]})


def pull(action: str) -> Any:
    async def handler(request: Request, admin: AdminPrincipal) -> Response:
        c = services_of(request)
        kid = request.path_params["kid"]

        def run() -> StoredKey:
            try:
                if action == "revoke":  # OIDC Core §10.1.1 / RFC 8725: unpublished, its tokens deny-listed
                    return c.key_admin.revoke(kid, actor=admin.actor)
                return c.key_admin.retire(kid, actor=admin.actor)
            except LookupError:
                raise Problem(404, f"No usable key {kid!r}.", code="not_found") from None

        return json_ok(key_json(await run_in_threadpool(run)))

    handler.__name__ = f"{action}_key"
    return handler


ROUTES: tuple[Route, ...] = (
    admin_endpoint("/admin/keys", list_keys, ["GET"]),
    admin_endpoint("/admin/keys/rotate", rotate, ["POST"]),
    admin_endpoint("/admin/keys/{kid}/retire", pull("retire"), ["POST"]),
    admin_endpoint("/admin/keys/{kid}/revoke", pull("revoke"), ["POST"]),
)
