"""The ``idp`` command. Bad arguments or settings: one clear line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from idp.cli_deny import configure as register_deny
from idp.cli_sessions import configure as register_sessions
from idp.clients.model import ClientValidationError
from idp.config import ConfigError, Settings, load_settings
from idp.events import KeyCompromised, UserDisabled
from idp.keys.keyring import ALGORITHMS, KeyImportError
from idp.observability import serve as observability_serve
from idp.observability.audit import register as register_audit
from idp.observability.logs import configure_logging
from idp.services import Services, StartupError, build_services, check_kek, ping_database
from idp.store.db import SchemaError, check_schema, upgrade
from idp.users.directory import UserError

EXIT_USAGE = 2
Handler = Callable[[Services, argparse.Namespace], Any]
# Other packages add sub-commands here: name -> (configure(subparsers), handler lookup).
EXTENSIONS: list[Callable[[Any], None]] = []
EXTENSIONS.append(register_audit)  # idp audit list
EXTENSIONS.append(register_deny)  # idp deny ...
EXTENSIONS.append(register_sessions)  # idp sessions list|end|end-all


class CliError(Exception):
    pass


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def _container(*, check: bool = True) -> Services:
    c = build_services(load_settings())
    ping_database(c)
    if check:
        check_schema(c.engine)
        check_kek(c)
    return c


# -- serve / db ---------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load_settings()
    if args.workers > 1 and settings.embedded:
        raise CliError("--workers > 1 needs IDP_REDIS_URL: the in-process store is not shared between workers")
    # Before anything imports prometheus-client: workers share metrics through files (idp.observability.serve).
    observability_serve.prepare(args.workers, settings.metrics_port)
    c = _container()
    c.close()
    warning = proxy_warning(settings)
    if warning:
        configure_logging(settings.log_level)  # once, in the process that starts the workers
        logging.getLogger("idp").warning(warning)
    if settings.metrics_port:
        observability_serve.start_metrics_server(settings)
    uvicorn.run(
        "idp.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,  # ours (idp.observability) replaces it; uvicorn would still format its arguments per request
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
        timeout_graceful_shutdown=20,
        http=http_protocol(args.http, settings),
        h11_max_incomplete_event_size=settings.request_head_max_bytes,  # h11's own head bound, the same size
    )
    return 0


def proxy_warning(settings: Settings) -> str | None:
    """The start-up warning for an https issuer with no trusted proxies, or None.

    Without ``IDP_TRUSTED_PROXIES`` the client address is the TCP peer. Behind a TLS proxy that is the proxy,
    so every person shares one address for the per-address limits (parked sign-ins, login throttling): one
    client filling its allowance refuses everyone. A server terminating TLS itself is right to leave it
    empty, hence a warning, not a refusal."""
    if not settings.issuer.startswith("https://") or settings.trusted_proxies.strip():
        return None
    return (
        "IDP_TRUSTED_PROXIES is empty with an https issuer: if a TLS proxy forwards to idp, every client has "
        "the proxy's address and the per-address limits (sign-ins waiting, login throttle) are shared by all; "
        "set it to the proxy's address (docs/operations.md)"
    )


HTTP_CHOICES = ("idp", "httptools", "h11")


def http_protocol(choice: str, settings: Settings) -> Any:
    """uvicorn's ``http`` setting: ``idp`` is uvicorn's httptools protocol writing each response in one
    ``write``, with request heads bounded in size and time (:mod:`idp.web.http_protocol`); without
    httptools installed, uvicorn's own choice. A partial of a module-level class: workers unpickle it."""
    if choice != "idp":
        return choice
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "auto"
    from idp.web.http_protocol import OneWriteProtocol

    return functools.partial(
        OneWriteProtocol,
        max_head_bytes=settings.request_head_max_bytes,
        head_timeout=settings.request_head_timeout,
    )


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    c = build_services(load_settings())
    ping_database(c)
    upgrade(c.engine)
    c.close()
    print("database is at the latest schema")
    return 0


# -- clients ---------------------------------------------------------------------------------------
CORS_HELP = "an origin (https://app.example) whose pages may call token/userinfo/revoke/introspect for this client"
CLAIMS_HELP = "put the granted profile and email claims in the ID token too (else only in userinfo)"


def _client_dict(cl: Any) -> dict[str, Any]:
    return cl.public_view()  # type: ignore[no-any-return]


def clients_create(c: Services, args: argparse.Namespace) -> None:
    jwks = None
    if args.jwks:
        try:
            jwks = json.loads(Path(args.jwks).read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"--jwks: cannot read a JWKS from {args.jwks}: {exc}") from None
    client, secret = c.clients.create(
        name=args.name,
        kind=args.type,
        redirect_uris=args.redirect_uri,
        post_logout_redirect_uris=args.post_logout_redirect_uri,
        scope=args.scope,
        audience=args.audience or "",
        first_party=args.first_party,
        auth_method=args.auth_method,
        jwks=jwks,
        require_pkce=not args.no_pkce,
        access_token_alg=args.access_token_alg,
        id_token_alg=args.id_token_alg,
        allowed_cors_origins=args.cors_origin,
        claims_in_id_token=args.claims_in_id_token,
    )
    data = _client_dict(client) | ({"client_secret": secret} if secret else {})
    text = f"client_id     {client.client_id}"
    if secret:
        text += f"\nclient_secret {secret}\n(the secret is shown once; only its digest is stored)"
    c.audit.record("client.created", actor="cli", client_id=client.client_id)
    _out(args, data, text)


def clients_update(c: Services, args: argparse.Namespace) -> None:
    changes: dict[str, Any] = {}
    for name in ("name", "scope", "audience"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    for flag, name in (("redirect_uri", "redirect_uris"), ("post_logout_redirect_uri", "post_logout_redirect_uris")):
        if getattr(args, flag):
            changes[name] = getattr(args, flag)
    if args.cors_origin or args.no_cors_origins:
        changes["allowed_cors_origins"] = [] if args.no_cors_origins else args.cors_origin
    if args.claims_in_id_token is not None:
        changes["claims_in_id_token"] = args.claims_in_id_token
    if args.disabled is not None:
        changes["disabled"] = args.disabled
    if not changes:
        raise CliError("nothing to change (see idp clients update --help)")
    try:  # the admin API's use case: disabling here writes the client cut-off too
        client = c.client_admin.update(args.client_id, changes, actor="cli")
    except LookupError as exc:
        raise CliError(str(exc)) from None
    _out(args, _client_dict(client), f"updated {client.client_id}: {', '.join(sorted(changes))}")


def clients_list(c: Services, args: argparse.Namespace) -> None:
    rows = [_client_dict(cl) for cl in c.clients.list()]
    _out(args, rows, "\n".join(f"{r['client_id']}  {r['type']:<8} {r['name']}" for r in rows) or "(no clients)")


def clients_show(c: Services, args: argparse.Namespace) -> None:
    cl = c.clients.get(args.client_id)
    if cl is None:
        raise CliError(f"no client {args.client_id!r}")
    d = _client_dict(cl)
    _out(args, d, "\n".join(f"{k:<26}{v}" for k, v in d.items()))


def clients_delete(c: Services, args: argparse.Namespace) -> None:
    """The admin API's DELETE: the registration goes, and so do its live tokens (a client cut-off)."""
    try:
        c.client_admin.delete(args.client_id, actor="cli")
    except LookupError as exc:
        raise CliError(str(exc)) from None
    _out(args, {"deleted": args.client_id}, f"deleted {args.client_id}")


def _clients_set_disabled(disabled: bool) -> Handler:
    def handler(c: Services, args: argparse.Namespace) -> None:
        try:
            c.client_admin.set_disabled(args.client_id, disabled, actor="cli")
        except LookupError as exc:
            raise CliError(str(exc)) from None
        _out(args, {"client_id": args.client_id, "disabled": disabled}, f"{args.client_id}: disabled={disabled}")

    return handler


def clients_rotate(c: Services, args: argparse.Namespace) -> None:
    try:
        secret = c.client_admin.rotate_secret(args.client_id, actor="cli")
    except LookupError as exc:
        raise CliError(str(exc)) from None
    _out(args, {"client_id": args.client_id, "client_secret": secret}, f"client_secret {secret}")


# -- users -----------------------------------------------------------------------------------------
def users_create(c: Services, args: argparse.Namespace) -> None:
    if not args.password_stdin:
        raise CliError("--password-stdin is required (passwords never go on the command line)")
    password = sys.stdin.readline().rstrip("\n")
    user = c.directory.create(args.username, password, email=args.email, name=args.name)
    c.audit.record("user.created", actor="cli", subject=user.id)
    _out(args, {"id": user.id, "username": user.username}, f"created {user.username} (sub {user.id})")


def users_set_password(c: Services, args: argparse.Namespace) -> None:
    """A new password (the same rules as everywhere: idp.users.password_policy); other sessions end unless kept."""
    if not args.password_stdin:
        raise CliError("--password-stdin is required (passwords never go on the command line)")
    user = c.directory.store.by_username(args.username)
    if user is None:
        raise CliError(f"no user {args.username!r}")
    user = c.directory.set_password(user, sys.stdin.readline().rstrip("\n"))
    ended = 0
    if not args.keep_sessions:  # a reset usually means the old password is known to someone else
        ended = len(c.login_sessions.end_all_for_user(user.id, actor="cli", reason="password reset"))
        c.signout.everything_for_user(user.id, actor="cli", reason="password reset")
    c.audit.record("user.password_reset", actor="cli", subject=user.id, signed_out=not args.keep_sessions)
    _out(args, {"username": user.username, "sessions_ended": ended}, f"password set for {user.username}")


def users_list(c: Services, args: argparse.Namespace) -> None:
    rows = [
        {"id": u.id, "username": u.username, "email": u.email, "disabled": u.disabled} for u in c.directory.store.list()
    ]
    _out(
        args,
        rows,
        "\n".join(f"{r['id']}  {r['username']}{'  (disabled)' if r['disabled'] else ''}" for r in rows) or "(no users)",
    )


def _users_set_disabled(disabled: bool) -> Handler:
    def handler(c: Services, args: argparse.Namespace) -> None:
        user = c.directory.set_disabled(args.username, disabled)
        if disabled:
            c.events.publish(UserDisabled(user.id, actor="cli"))
        c.audit.record("user.disabled" if disabled else "user.enabled", actor="cli", subject=user.id)
        _out(args, {"username": user.username, "disabled": disabled}, f"{user.username}: disabled={disabled}")

    return handler


# -- keys ------------------------------------------------------------------------------------------
def _key_dict(r: Any) -> dict[str, Any]:
    return {
        "kid": r.kid,
        "alg": r.alg,
        "state": r.state,
        "created_at": r.created_at,
        "activate_after": r.activate_after,
        "remove_after": r.remove_after,
    }


def keys_list(c: Services, args: argparse.Namespace) -> None:
    c.keyring.refresh(force=True)
    rows = [_key_dict(r) for r in sorted(c.keyring.rows(), key=lambda r: (r.alg, r.created_at))]
    fmt = "%Y-%m-%d %H:%M:%S"
    _out(
        args,
        rows,
        "\n".join(
            f"{r['kid']:<18} {r['alg']:<6} {r['state']:<11} created {time.strftime(fmt, time.gmtime(r['created_at']))}"
            f"  signs from {time.strftime(fmt, time.gmtime(r['activate_after']))}"
            for r in rows
        ),
    )


def keys_rotate(c: Services, args: argparse.Namespace) -> None:
    algs = [args.alg] if args.alg else list(c.keyring.policy.algorithms)
    made = [c.keyring.rotate(alg) for alg in algs]
    for r in made:
        c.audit.record("key.rotated", actor="cli", kid=r.kid, alg=r.alg)
    _out(
        args,
        [_key_dict(r) for r in made],
        "\n".join(f"{r.kid} ({r.alg}) published as next; signs after {time.ctime(r.activate_after)}" for r in made),
    )


def keys_retire(c: Services, args: argparse.Namespace) -> None:
    try:
        r = c.keyring.retire(args.kid)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    c.audit.record("key.retired", actor="cli", kid=r.kid)
    _out(args, _key_dict(r), f"{r.kid} retired")


def keys_revoke(c: Services, args: argparse.Namespace) -> None:
    try:
        r = c.keyring.revoke(args.kid)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    c.events.publish(KeyCompromised(r.kid, actor="cli"))
    c.audit.record("key.compromised", actor="cli", kid=r.kid)
    _out(args, _key_dict(r), f"{r.kid} marked compromised and removed from the JWKS")


def keys_import(c: Services, args: argparse.Namespace) -> None:
    try:
        pem = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        r = c.keyring.add_imported(pem)
    except KeyImportError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    c.audit.record("key.imported", actor="cli", kid=r.kid, alg=r.alg)
    _out(args, _key_dict(r), f"imported {r.kid} ({r.alg}) as next")


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idp", description="OAuth 2.1 / OpenID Connect identity provider.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP server (uvicorn)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument(
        "--http",
        choices=HTTP_CHOICES,
        default="idp",
        help="HTTP/1.1 implementation: idp (default; uvicorn's httptools, one write per response), httptools, h11",
    )
    s.set_defaults(run=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations").set_defaults(run=cmd_db_upgrade)

    def leaf(group: Any, name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        q = group.add_parser(name, help=help_)
        q.add_argument("--json", action="store_true", help="machine-readable output")
        q.set_defaults(handler=handler)
        return q

    cl = sub.add_parser("clients", help="manage clients").add_subparsers(dest="sub", required=True)
    q = leaf(cl, "create", clients_create, "register a client; prints the secret once")
    q.add_argument("--name", required=True)
    q.add_argument("--type", required=True, choices=["web", "native", "service"])
    q.add_argument("--redirect-uri", action="append", default=[])
    q.add_argument("--post-logout-redirect-uri", action="append", default=[])
    q.add_argument("--scope", default="")
    q.add_argument("--audience")
    q.add_argument("--first-party", action="store_true", help="skip the consent screen")
    q.add_argument("--auth-method", choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])
    q.add_argument("--jwks", help="file with the client's public JWKS (private_key_jwt)")
    q.add_argument("--no-pkce", action="store_true", help="confidential web OIDC clients sending nonce only")
    q.add_argument("--access-token-alg", choices=list(ALGORITHMS))
    q.add_argument("--id-token-alg", choices=list(ALGORITHMS))
    q.add_argument("--cors-origin", action="append", default=[], help=CORS_HELP)
    q.add_argument("--claims-in-id-token", action="store_true", help=CLAIMS_HELP)
    q = leaf(cl, "update", clients_update, "change a registered client (lists given here replace the old ones)")
    q.add_argument("client_id")
    q.add_argument("--name")
    q.add_argument("--scope")
    q.add_argument("--audience")
    q.add_argument("--redirect-uri", action="append", default=[])
    q.add_argument("--post-logout-redirect-uri", action="append", default=[])
    q.add_argument("--cors-origin", action="append", default=[], help=CORS_HELP)
    q.add_argument("--no-cors-origins", action="store_true", help="remove every extra CORS origin")
    q.add_argument("--claims-in-id-token", action=argparse.BooleanOptionalAction, default=None, help=CLAIMS_HELP)
    q.add_argument(
        "--disabled",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="disable (deny its live tokens) or, with --no-disabled, enable the client",
    )
    leaf(cl, "list", clients_list, "list clients")
    for name, handler, help_ in (
        ("show", clients_show, "show one client"),
        ("delete", clients_delete, "delete a client and deny its live tokens"),
        ("disable", _clients_set_disabled(True), "disable a client and deny its live tokens"),
        ("enable", _clients_set_disabled(False), "enable a client again (tokens issued before stay denied)"),
        ("rotate-secret", clients_rotate, "issue a new secret (printed once)"),
    ):
        leaf(cl, name, handler, help_).add_argument("client_id")

    us = sub.add_parser("users", help="manage users").add_subparsers(dest="sub", required=True)
    q = leaf(us, "create", users_create, "create a user; the password is read from stdin")
    q.add_argument("--username", required=True)
    q.add_argument("--email")
    q.add_argument("--name")
    q.add_argument("--password-stdin", action="store_true")
    q = leaf(us, "set-password", users_set_password, "set a user's password, read from stdin")
    q.add_argument("username")
    q.add_argument("--password-stdin", action="store_true")
    q.add_argument("--keep-sessions", action="store_true", help="do not sign the user out everywhere")
    leaf(us, "list", users_list, "list users")
    leaf(us, "disable", _users_set_disabled(True), "disable a user and end their sessions").add_argument("username")
    leaf(us, "enable", _users_set_disabled(False), "enable a user").add_argument("username")

    ks = sub.add_parser("keys", help="manage signing keys").add_subparsers(dest="sub", required=True)
    leaf(ks, "list", keys_list, "list keys and their states")
    leaf(ks, "rotate", keys_rotate, "publish a next key (signs after the JWKS cache lifetime)").add_argument(
        "--alg", choices=list(ALGORITHMS)
    )
    leaf(ks, "retire", keys_retire, "stop signing with a key; still verifies").add_argument("kid")
    leaf(ks, "revoke", keys_revoke, "mark a key compromised: unpublished and denied at once").add_argument("kid")
    leaf(ks, "import", keys_import, "import a PEM private key as next").add_argument("file")

    for extend in EXTENSIONS:
        extend(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "run"):
            return int(args.run(args) or 0)
        c = _container()
        try:
            args.handler(c, args)
        finally:
            c.close()
        return 0
    except (ConfigError, StartupError, SchemaError, CliError, ClientValidationError, UserError) as exc:
        print(f"idp: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
