"""``idp clients``: register, change, list, show, delete, disable/enable a client; rotate its secret.

Every change goes through :class:`idp.clients.admin.ClientAdmin`, as the admin API's do: the same
deny-list cut-offs and the same audit events.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from idp.cli.common import CliError, Handler, leaf, out
from idp.clients.model import GRANT_TYPES, Client
from idp.keys.keyring import ALGORITHMS
from idp.services import Services

ACTOR = "cli"
CORS_HELP = "an origin (https://app.example) whose pages may call token/userinfo/revoke/introspect for this client"
BCL_HELP = "where logout tokens are POSTed when a session ends (https, or loopback http; no fragment)"
BCL_SID_HELP = "the client needs sid in logout tokens (backchannel_logout_session_required; always sent here)"
CLAIMS_HELP = "put the granted profile and email claims in the ID token too (else only in userinfo)"
GRANT_HELP = "a grant type (repeat for several); default: the type's (e.g. add token exchange with its full URN)"
EXCHANGE_HELP = "an audience (https URI or client id) this client may exchange tokens for (RFC 8693; repeat)"
DPOP_HELP = "refuse token requests without a DPoP proof (RFC 9449 §5.2): every access token is key-bound"


def _client_dict(cl: Client) -> dict[str, Any]:
    return cl.public_view()


def clients_create(c: Services, args: argparse.Namespace) -> None:
    jwks = None
    if args.jwks:
        try:
            jwks = json.loads(Path(args.jwks).read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"--jwks: cannot read a JWKS from {args.jwks}: {exc}") from None
    client, secret = c.client_admin.create(
        actor=ACTOR,
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
        dpop_bound_access_tokens=args.dpop_bound_access_tokens,
        backchannel_logout_uri=args.backchannel_logout_uri,
        backchannel_logout_session_required=args.backchannel_logout_session_required,
        grant_types=args.grant_type or None,
        token_exchange_audiences=args.token_exchange_audience,
    )
    data = _client_dict(client) | ({"client_secret": secret} if secret else {})
    text = f"client_id     {client.client_id}"
    if secret:
        text += f"\nclient_secret {secret}\n(the secret is shown once; only its digest is stored)"
    out(args, data, text)


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
    if args.token_exchange_audience or args.no_token_exchange_audiences:
        exchange = [] if args.no_token_exchange_audiences else args.token_exchange_audience
        changes["token_exchange_audiences"] = exchange
    for name in ("claims_in_id_token", "dpop_bound_access_tokens", "backchannel_logout_session_required"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.backchannel_logout_uri is not None or args.no_backchannel_logout_uri:
        changes["backchannel_logout_uri"] = None if args.no_backchannel_logout_uri else args.backchannel_logout_uri
    if args.disabled is not None:
        changes["disabled"] = args.disabled
    if not changes:
        raise CliError("nothing to change (see idp clients update --help)")
    try:  # disabling here writes the client cut-off too
        client = c.client_admin.update(args.client_id, changes, actor=ACTOR)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    out(args, _client_dict(client), f"updated {client.client_id}: {', '.join(sorted(changes))}")


def clients_list(c: Services, args: argparse.Namespace) -> None:
    rows = [_client_dict(cl) for cl in c.clients.list()]
    out(args, rows, "\n".join(f"{r['client_id']}  {r['type']:<8} {r['name']}" for r in rows) or "(no clients)")


def clients_show(c: Services, args: argparse.Namespace) -> None:
    cl = c.clients.get(args.client_id)
    if cl is None:
        raise CliError(f"no client {args.client_id!r}")
    d = _client_dict(cl)
    out(args, d, "\n".join(f"{k:<26}{v}" for k, v in d.items()))


def clients_delete(c: Services, args: argparse.Namespace) -> None:
    """The registration goes, and so do its live tokens (a client cut-off)."""
    try:
        c.client_admin.delete(args.client_id, actor=ACTOR)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    out(args, {"deleted": args.client_id}, f"deleted {args.client_id}")


def _clients_set_disabled(disabled: bool) -> Handler:
    def handler(c: Services, args: argparse.Namespace) -> None:
        try:
            c.client_admin.set_disabled(args.client_id, disabled, actor=ACTOR)
        except LookupError as exc:
            raise CliError(str(exc)) from None
        out(args, {"client_id": args.client_id, "disabled": disabled}, f"{args.client_id}: disabled={disabled}")

    return handler


def clients_rotate(c: Services, args: argparse.Namespace) -> None:
    try:
        secret = c.client_admin.rotate_secret(args.client_id, actor=ACTOR)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    out(args, {"client_id": args.client_id, "client_secret": secret}, f"client_secret {secret}")


def register(sub: Any) -> None:
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
    q.add_argument("--dpop-bound-access-tokens", action=argparse.BooleanOptionalAction, default=False, help=DPOP_HELP)
    q.add_argument("--backchannel-logout-uri", help=BCL_HELP)
    q.add_argument("--backchannel-logout-session-required", action="store_true", help=BCL_SID_HELP)
    q.add_argument("--grant-type", action="append", default=[], choices=sorted(GRANT_TYPES), help=GRANT_HELP)
    q.add_argument("--token-exchange-audience", action="append", default=[], help=EXCHANGE_HELP)
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
    q.add_argument("--dpop-bound-access-tokens", action=argparse.BooleanOptionalAction, default=None, help=DPOP_HELP)
    q.add_argument("--backchannel-logout-uri", help=BCL_HELP)
    q.add_argument("--no-backchannel-logout-uri", action="store_true", help="stop back-channel logout")
    q.add_argument("--token-exchange-audience", action="append", default=[], help=EXCHANGE_HELP)
    q.add_argument("--no-token-exchange-audiences", action="store_true", help="remove every token exchange audience")
    q.add_argument(
        "--backchannel-logout-session-required", action=argparse.BooleanOptionalAction, default=None, help=BCL_SID_HELP
    )
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
