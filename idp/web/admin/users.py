"""/admin/users: create, read, disable/enable, reset a password, list and end sessions, list and reset second
factors, set flags."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.crypto import random_token
from idp.services import Services, services_of
from idp.users.directory import User, UserError
from idp.web.admin.auth import AdminPrincipal
from idp.web.admin.problems import Problem, admin_endpoint, field, json_body, json_ok

GENERATED_PASSWORD_BYTES = 15  # 120 bits, 20 characters


def user_json(u: User) -> dict[str, Any]:
    """Never the password hash."""
    return {
        "id": u.id,
        "username": u.username,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "disabled": u.disabled,
        "flags": list(u.flags),
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    }


def session_json(s: Any) -> dict[str, Any]:
    """The public sid and metadata; never the cookie value, its digest or the CSRF secret."""
    return {
        "sid": s.sid,
        "auth_time": s.auth_time,
        "amr": list(s.amr),
        "factors": dict(s.factors),
        "created_at": s.created_at,
        "last_seen_at": s.last_seen_at,
        "idle_expires_at": s.idle_expires_at,
        "absolute_expires_at": s.absolute_expires_at,
        "user_agent": s.user_agent,
        "ip": s.ip,
    }


async def body_with(request: Request, *allowed: str) -> dict[str, Any]:
    """The JSON body, refused with 422 when it holds a field the operation does not take."""
    data = await json_body(request)
    unknown = set(data) - set(allowed)
    if unknown:
        raise Problem(422, f"unknown field(s): {', '.join(sorted(unknown))}", code="invalid_field")
    return data


def get_user(c: Services, user_id: str) -> User:
    user = c.directory.store.get(user_id) if 0 < len(user_id) <= 64 else None
    if user is None:
        raise Problem(404, f"No user {user_id!r}.", code="not_found")
    return user


async def list_users(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    users = await run_in_threadpool(c.directory.store.list)
    return json_ok({"users": [user_json(u) for u in users]})


async def create_user(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await body_with(request, "username", "password", "email", "name")
    username = field(data, "username", str, required=True)
    password = field(data, "password", str)
    generated = password is None
    if generated:
        password = random_token(GENERATED_PASSWORD_BYTES)

    def create() -> User:
        if c.directory.store.by_username(username.strip()) is not None:
            raise Problem(409, f"User {username.strip()!r} already exists.", code="conflict")
        return c.user_admin.create(
            username, password, actor=admin.actor, email=field(data, "email", str), name=field(data, "name", str)
        )

    user = await run_in_threadpool(create)
    body = user_json(user) | ({"password": password} if generated else {})
    response = json_ok(body, 201)
    response.headers["location"] = f"{c.settings.issuer}/admin/users/{user.id}"
    return response


async def show_user(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    return json_ok(user_json(await run_in_threadpool(get_user, c, request.path_params["user_id"])))


def set_disabled(disabled: bool) -> Any:
    async def handler(request: Request, admin: AdminPrincipal) -> Response:
        c = services_of(request)

        def change() -> User:
            username = get_user(c, request.path_params["user_id"]).username
            return c.user_admin.set_disabled(username, disabled, actor=admin.actor)

        return json_ok(user_json(await run_in_threadpool(change)))

    handler.__name__ = "disable_user" if disabled else "enable_user"
    return handler


async def reset_password(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await body_with(request, "password", "sign_out")
    password = field(data, "password", str)
    generated = password is None
    if generated:
        password = random_token(GENERATED_PASSWORD_BYTES)
    sign_out = field(data, "sign_out", bool, True)

    def reset() -> int:
        user = get_user(c, request.path_params["user_id"])
        return c.user_admin.reset_password(
            user, password, actor=admin.actor, sign_out=sign_out, reason="password reset by admin"
        )

    ended = await run_in_threadpool(reset)
    body: dict[str, Any] = {"user_id": request.path_params["user_id"], "sessions_ended": ended}
    if generated:
        body["password"] = password
    return json_ok(body)


async def list_sessions(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def load() -> list[Any]:
        return c.login_sessions.list_for_user(get_user(c, request.path_params["user_id"]).id)

    return json_ok({"sessions": [session_json(s) for s in await run_in_threadpool(load)]})


async def end_all_sessions(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def end() -> int:
        user = get_user(c, request.path_params["user_id"])
        return c.account.sign_out_everywhere(user.id, actor=admin.actor, reason="signed out everywhere by admin")

    return json_ok({"user_id": request.path_params["user_id"], "sessions_ended": await run_in_threadpool(end)})


async def end_session(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def end() -> None:
        user = get_user(c, request.path_params["user_id"])
        sid = request.path_params["sid"]
        if not c.login_sessions.end_sid(sid, user_id=user.id, actor=admin.actor, reason="ended by admin"):
            raise Problem(404, "No such session for this user.", code="not_found")

    await run_in_threadpool(end)
    return Response(status_code=204, headers={"cache-control": "no-store"})


def factor_json(f: Any) -> dict[str, Any]:
    """What an operator may see of a factor: never its secret."""
    return {"id": f.id, "kind": f.kind, "name": f.name, "created_at": f.created_at,
            "last_used_at": f.last_used_at}  # fmt: skip


async def list_factors(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)

    def load() -> dict[str, Any]:
        user = get_user(c, request.path_params["user_id"])
        factors = [factor_json(f) for f in c.factors.confirmed(user.id)]
        return {"user_id": user.id, "factors": factors, "recovery_codes_left": c.factors.recovery_left(user.id),
                "required": c.factors.required_for(user.flags)}  # fmt: skip

    return json_ok(await run_in_threadpool(load))


async def reset_factors(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await body_with(request, "sign_out")
    sign_out = field(data, "sign_out", bool, True)

    def reset() -> tuple[int, int]:
        user = get_user(c, request.path_params["user_id"])
        return c.user_admin.reset_factors(user, actor=admin.actor, sign_out=sign_out,
                                          reason="second factors reset by admin")  # fmt: skip

    removed, ended = await run_in_threadpool(reset)
    return json_ok({"user_id": request.path_params["user_id"], "factors_removed": removed, "sessions_ended": ended})


async def set_flags(request: Request, admin: AdminPrincipal) -> Response:
    c = services_of(request)
    data = await body_with(request, "flags")
    flags = field(data, "flags", list, required=True)
    if not all(isinstance(f, str) for f in flags):
        raise Problem(422, "flags must be strings", code="invalid_field")

    def change() -> User:
        try:
            return c.user_admin.set_flags(get_user(c, request.path_params["user_id"]), flags, actor=admin.actor)
        except UserError as exc:
            raise Problem(422, str(exc), code="invalid_field") from None

    return json_ok(user_json(await run_in_threadpool(change)))


ROUTES: tuple[Route, ...] = (
    admin_endpoint("/admin/users", list_users, ["GET"]),
    admin_endpoint("/admin/users", create_user, ["POST"]),
    admin_endpoint("/admin/users/{user_id}", show_user, ["GET"]),
    admin_endpoint("/admin/users/{user_id}/disable", set_disabled(True), ["POST"]),
    admin_endpoint("/admin/users/{user_id}/enable", set_disabled(False), ["POST"]),
    admin_endpoint("/admin/users/{user_id}/password", reset_password, ["POST"]),
    admin_endpoint("/admin/users/{user_id}/sessions", list_sessions, ["GET"]),
    admin_endpoint("/admin/users/{user_id}/sessions", end_all_sessions, ["DELETE"]),
    admin_endpoint("/admin/users/{user_id}/sessions/{sid}", end_session, ["DELETE"]),
    admin_endpoint("/admin/users/{user_id}/factors", list_factors, ["GET"]),
    admin_endpoint("/admin/users/{user_id}/factors/reset", reset_factors, ["POST"]),
    admin_endpoint("/admin/users/{user_id}/flags", set_flags, ["PUT"]),
)
