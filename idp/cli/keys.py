"""``idp keys``: list, rotate, retire, revoke (compromised), import; through :class:`idp.keys.admin.KeyAdmin`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from idp.cli.common import CliError, leaf, out
from idp.keys.keyring import ALGORITHMS, KeyImportError, StoredKey
from idp.services import Services

ACTOR = "cli"


def _key_dict(r: StoredKey) -> dict[str, Any]:
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
    out(
        args,
        rows,
        "\n".join(
            f"{r['kid']:<18} {r['alg']:<6} {r['state']:<11} created {time.strftime(fmt, time.gmtime(r['created_at']))}"
            f"  signs from {time.strftime(fmt, time.gmtime(r['activate_after']))}"
            for r in rows
        ),
    )


def keys_rotate(c: Services, args: argparse.Namespace) -> None:
    made = c.key_admin.rotate(args.alg, actor=ACTOR)
    out(
        args,
        [_key_dict(r) for r in made],
        "\n".join(f"{r.kid} ({r.alg}) published as next; signs after {time.ctime(r.activate_after)}" for r in made),
    )


def keys_retire(c: Services, args: argparse.Namespace) -> None:
    try:
        r = c.key_admin.retire(args.kid, actor=ACTOR)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    out(args, _key_dict(r), f"{r.kid} retired")


def keys_revoke(c: Services, args: argparse.Namespace) -> None:
    try:
        r = c.key_admin.revoke(args.kid, actor=ACTOR)
    except LookupError as exc:
        raise CliError(str(exc)) from None
    out(args, _key_dict(r), f"{r.kid} marked compromised and removed from the JWKS")


def keys_import(c: Services, args: argparse.Namespace) -> None:
    try:
        pem = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        r = c.key_admin.import_pem(pem, actor=ACTOR)
    except KeyImportError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    out(args, _key_dict(r), f"imported {r.kid} ({r.alg}) as next")


def register(sub: Any) -> None:
    ks = sub.add_parser("keys", help="manage signing keys").add_subparsers(dest="sub", required=True)
    leaf(ks, "list", keys_list, "list keys and their states")
    leaf(ks, "rotate", keys_rotate, "publish a next key (signs after the JWKS cache lifetime)").add_argument(
        "--alg", choices=list(ALGORITHMS)
    )
    leaf(ks, "retire", keys_retire, "stop signing with a key; still verifies").add_argument("kid")
    leaf(ks, "revoke", keys_revoke, "mark a key compromised: unpublished and denied at once").add_argument("kid")
    leaf(ks, "import", keys_import, "import a PEM private key as next").add_argument("file")
