"""/admin/clients: register, read, change, delete clients; rotate a secret (returned once)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.clients.admin import ClientGone
from idp.clients.model import GRANT_TYPES, Client
from idp.services import Services, services_of
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import Problem, admin_endpoint, field, json_body, json_ok

STR_FIELDS = ("name", "scope", "audience")
BOOL_FIELDS = (
    "first_party",
    "require_pkce",
    "disabled",
    "claims_in_id_token",
    "dpop_bound_access_tokens",
    "backchannel_logout_session_required",
)
LIST_FIELDS = ("redirect_uris", "post_logout_redirect_uris", "allowed_cors_origins", "token_exchange_audiences")


def client_json(cl: Client) -> dict[str, Any]:
    return cl.public_view()


def _changes(data: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    unknown = set(data) - allowed
    if unknown:
        raise Problem(422, f"unknown or read-only field(s): {', '.join(sorted(unknown))}", code="invalid_field")
    out: dict[str, Any] = {}
    for name in data:
        if name in STR_FIELDS:
            out[name] = field(data, name, str, "")
        elif name in LIST_FIELDS or name == "grant_types":
            out[name] = field(data, name, list, [])
            if name == "grant_types" and not set(out[name]) <= GRANT_TYPES:
                served = ", ".join(sorted(GRANT_TYPES))
                raise Problem(422, f"grant_types may contain only {served}.", code="invalid_field")
        elif name == "backchannel_logout_uri":  # a string, or null to remove it
            out[name] = field(data, name, str)
        elif name in BOOL_FIELDS:
            out[name] = field(data, name, bool, False)
        elif name == "jwks":
            out[name] = field(data, name, dict)
        else:  # type, auth_method, *_alg, client_id
            out[name] = field(data, name, str)
    return out


CREATE_FIELDS = frozenset(
    {*STR_FIELDS, *LIST_FIELDS, "type", "auth_method", "jwks", "grant_types", "first_party", "require_pkce",
     "access_token_alg", "id_token_alg", "claims_in_id_token", "dpop_bound_access_tokens", "backchannel_logout_uri",
     "backchannel_logout_session_required"}
)  # fmt: skip
UPDATE_FIELDS = frozenset(
    {*STR_FIELDS, *LIST_FIELDS, "first_party", "jwks", "require_pkce", "access_token_alg", "id_token_alg", "disabled",
     "claims_in_id_token", "dpop_bound_access_tokens", "backchannel_logout_uri", "backchannel_logout_session_required"}
)  # fmt: skip


def get_client(c: Services, client_id: str) -> Client:
    client = c.clients.get(client_id)
    if client is None:
        raise Problem(404, f"No client {client_id!r}.", code="not_found")
    return client


async def list_clients(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    clients = await run_in_threadpool(c.clients.list)
    return json_ok({"clients": [client_json(cl) for cl in clients]})


async def create_client(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    values = _changes(await json_body(request), CREATE_FIELDS)
    if "type" not in values or "name" not in values:
        raise Problem(422, "'name' and 'type' are required.", code="invalid_field")
    kind = values.pop("type")

    client, secret = await run_in_threadpool(lambda: c.client_admin.create(actor=admin.actor, kind=kind, **values))
    body = client_json(client) | ({"client_secret": secret} if secret else {})
    response = json_ok(body, 201)
    response.headers["location"] = f"{c.settings.issuer}/admin/clients/{client.client_id}"
    return response


async def show_client(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    client = await run_in_threadpool(get_client, c, request.path_params["client_id"])
    return json_ok(client_json(client))


async def update_client(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    client_id = request.path_params["client_id"]
    values = _changes(await json_body(request), UPDATE_FIELDS)

    def update() -> Client:
        get_client(c, client_id)
        return c.client_admin.update(client_id, values, actor=admin.actor)

    return json_ok(client_json(await run_in_threadpool(update)))


async def delete_client(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    client_id = request.path_params["client_id"]

    def delete() -> None:
        try:
            c.client_admin.delete(client_id, actor=admin.actor)
        except ClientGone:
            raise Problem(404, f"No client {client_id!r}.", code="not_found") from None

    await run_in_threadpool(delete)
    return Response(status_code=204, headers={"cache-control": "no-store"})


async def rotate_secret(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    client_id = request.path_params["client_id"]

    def rotate() -> str:
        client = get_client(c, client_id)
        if client.secret_digest is None:
            raise Problem(409, f"Client {client_id!r} does not authenticate with a secret.", code="no_secret")
        return c.client_admin.rotate_secret(client_id, actor=admin.actor)

    secret = await run_in_threadpool(rotate)
    return json_ok({"client_id": client_id, "client_secret": secret})


ROUTES: tuple[Route, ...] = (
    admin_endpoint("/admin/clients", list_clients, ["GET"]),
    admin_endpoint("/admin/clients", create_client, ["POST"]),
    admin_endpoint("/admin/clients/{client_id}", show_client, ["GET"]),
    admin_endpoint("/admin/clients/{client_id}", update_client, ["PATCH"]),
    admin_endpoint("/admin/clients/{client_id}", delete_client, ["DELETE"]),
    admin_endpoint("/admin/clients/{client_id}/secret", rotate_secret, ["POST"]),
)
