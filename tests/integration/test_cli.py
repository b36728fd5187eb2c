"""The `idp` command: every sub-command, --json output, and exit code 2 with one clear line on bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from idp.cli import main
from idp.config import Settings
from idp.services import Services
from idp.store.models import ClientRow
from tests.oauthkit import cli_environment


@pytest.fixture
def env(container: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Services:
    cli_environment(monkeypatch, settings)
    container.keyring.tick()
    return container


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_clients_lifecycle(env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "clients", "create", "--name", "Billing", "--type", "service", "--scope", "api:read", "--json"
    )
    assert code == 0
    created = json.loads(out)
    secret, cid = created["client_secret"], created["client_id"]
    assert len(secret) >= 43  # >= 256 bits
    with env.sessions() as s:
        row = s.get(ClientRow, cid)
        assert row is not None and secret.encode() not in (row.secret_digest or b"")
        assert row.secret_digest == env.digester.digest(secret)  # stored as a keyed digest only
    code, out, _ = run(capsys, "clients", "list", "--json")
    assert [c["client_id"] for c in json.loads(out)] == [cid]
    code, out, _ = run(capsys, "clients", "show", cid)
    assert "Billing" in out and secret not in out
    code, out, _ = run(capsys, "clients", "rotate-secret", cid, "--json")
    new_secret = json.loads(out)["client_secret"]
    assert new_secret != secret
    client = env.clients.get(cid)
    assert client and env.clients.check_secret(client, new_secret) and not env.clients.check_secret(client, secret)
    assert run(capsys, "clients", "delete", cid)[0] == 0
    code, _, err = run(capsys, "clients", "show", cid)
    assert code == 2 and "no client" in err


def test_clients_cors_origins_and_id_token_claims(env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "clients", "create", "--name", "SPA", "--type", "web", "--redirect-uri",
                       "https://spa.example/cb", "--cors-origin", "https://spa.example", "--claims-in-id-token",
                       "--json")  # fmt: skip
    assert code == 0, out
    created = json.loads(out)
    assert created["allowed_cors_origins"] == ["https://spa.example"] and created["claims_in_id_token"] is True
    cid = created["client_id"]
    code, out, _ = run(capsys, "clients", "update", cid, "--cors-origin", "http://127.0.0.1:5173",
                       "--no-claims-in-id-token", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["allowed_cors_origins"] == ["http://127.0.0.1:5173"]
    stored = env.clients.get(cid)
    assert stored is not None and not stored.claims_in_id_token
    assert run(capsys, "clients", "update", cid, "--no-cors-origins")[0] == 0
    env.clients.invalidate(cid)
    assert env.clients.get(cid).allowed_cors_origins == []  # type: ignore[union-attr]
    code, _, err = run(capsys, "clients", "update", cid, "--cors-origin", "https://spa.example/path")
    assert code == 2 and "without a path" in err
    code, _, err = run(capsys, "clients", "update", "nobody", "--name", "x")
    assert code == 2 and "no client" in err
    assert run(capsys, "clients", "update", cid)[0] == 2  # nothing to change


def test_clients_token_exchange_registration(env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    code, out, err = run(capsys, "clients", "create", "--name", "BFF", "--type", "web", "--redirect-uri",
                         "https://bff.example/cb", "--grant-type", "authorization_code", "--grant-type", grant,
                         "--token-exchange-audience", "https://orders.example", "--json")  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["grant_types"] == ["authorization_code", grant]
    assert created["token_exchange_audiences"] == ["https://orders.example"]
    cid = created["client_id"]
    code, out, _ = run(capsys, "clients", "update", cid, "--token-exchange-audience", "https://a.example",
                       "--token-exchange-audience", "https://b.example", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["token_exchange_audiences"] == ["https://a.example", "https://b.example"]
    assert run(capsys, "clients", "update", cid, "--no-token-exchange-audiences")[0] == 0
    env.clients.invalidate(cid)
    assert env.clients.get(cid).token_exchange_audiences == []  # type: ignore[union-attr]
    code, _, err = run(capsys, "clients", "update", cid, "--token-exchange-audience", "https://idp.test/admin")
    assert code == 2 and "reserved" in err


def test_client_validation_errors_exit_2(env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "clients", "create", "--name", "W", "--type", "web", "--redirect-uri", "http://x.com/cb")
    assert code == 2 and err.startswith("idp: error: ") and "https" in err
    with env.sessions() as s:
        assert s.query(ClientRow).count() == 0  # nothing written


BAD_LOGOUT = ["--post-logout-redirect-uri", "https://rp.example/bye#"]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--type", "native", "--redirect-uri", "http://127.0.0.1:99999/cb"], "port"),  # the registry's raw rules
        (["--type", "web", "--redirect-uri", "https://:p@rp.example/cb"], "userinfo"),
        (["--type", "web", "--redirect-uri", "https://rp.example/cb", *BAD_LOGOUT], "fragment"),
        (["--type", "service", "--audience", "HTTPS://IDP.test/"], "reserved"),  # the issuer: every user token
        (["--type", "service", "--audience", "https://idp.test/admin"], "reserved"),  # without idp:admin
    ],
)
def test_clients_create_refuses_what_the_registry_refuses(
    env: Services, capsys: pytest.CaptureFixture[str], args: list[str], names: str
) -> None:
    code, _, err = run(capsys, "clients", "create", "--name", "X", *args)
    assert code == 2 and err.startswith("idp: error: ") and names in err, err
    with env.sessions() as s:
        assert s.query(ClientRow).count() == 0


def test_users_create_reads_password_from_stdin(
    env: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    code, out, _ = run(capsys, "users", "create", "--username", "alice", "--password-stdin", "--json")
    assert code == 0
    sub = json.loads(out)["id"]
    assert sub != "alice"  # sub is stable and not the username
    assert env.directory.authenticate("alice", "correct horse battery") is not None
    assert run(capsys, "users", "disable", "alice")[0] == 0
    assert env.directory.authenticate("alice", "correct horse battery") is None
    assert run(capsys, "users", "enable", "alice")[0] == 0
    code, out, _ = run(capsys, "users", "list", "--json")
    assert json.loads(out)[0]["username"] == "alice"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = run(capsys, "users", "create", "--username", "bob", "--password-stdin")
    assert code == 2 and "password" in err


def test_users_passwords_are_checked_against_the_common_list(
    env: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """NIST SP 800-63B §5.1.1.2, in `users create` and `users set-password` alike."""
    monkeypatch.setattr("sys.stdin", io.StringIO("12345678\n"))
    code, _, err = run(capsys, "users", "create", "--username", "bob", "--password-stdin")
    assert code == 2 and "too common" in err and env.directory.store.by_username("bob") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("bob.builder1\n"))
    code, _, err = run(capsys, "users", "create", "--username", "bob.builder", "--password-stdin")
    assert code == 2 and "username or email" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert run(capsys, "users", "create", "--username", "bob", "--password-stdin")[0] == 0
    for weak, message in (("password", "too common"), ("BOB2024!", "username or email"), ("short", "8-1024")):
        monkeypatch.setattr("sys.stdin", io.StringIO(weak + "\n"))
        code, _, err = run(capsys, "users", "set-password", "bob", "--password-stdin")
        assert code == 2 and message in err, err
    assert env.directory.authenticate("bob", "correct horse battery") is not None  # unchanged


def test_users_set_password_signs_out_everywhere_unless_kept(
    env: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = env.directory.create("bob", "correct horse battery")
    env.login_sessions.login(bob.id)
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new passphrase\n"))
    code, out, _ = run(capsys, "users", "set-password", "bob", "--password-stdin", "--json")
    assert code == 0 and json.loads(out) == {"username": "bob", "sessions_ended": 1}
    assert env.directory.authenticate("bob", "a brand new passphrase") is not None
    assert env.directory.authenticate("bob", "correct horse battery") is None
    env.login_sessions.login(bob.id)
    monkeypatch.setattr("sys.stdin", io.StringIO("another new passphrase\n"))
    code, out, _ = run(capsys, "users", "set-password", "bob", "--password-stdin", "--keep-sessions", "--json")
    assert json.loads(out)["sessions_ended"] == 0 and len(env.login_sessions.list_for_user(bob.id)) == 1
    assert run(capsys, "users", "set-password", "bob")[0] == 2  # never on the command line
    assert run(capsys, "users", "set-password", "nobody", "--password-stdin")[0] == 2


def test_keys_commands(env: Services, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "keys", "list", "--json")
    active = [k for k in json.loads(out) if k["state"] == "active"]
    assert {k["alg"] for k in active} == {"ES256", "EdDSA", "RS256"}
    code, out, _ = run(capsys, "keys", "rotate", "--alg", "ES256", "--json")
    nxt = json.loads(out)[0]
    assert nxt["state"] == "next"
    es_active = next(k["kid"] for k in active if k["alg"] == "ES256")
    assert run(capsys, "keys", "retire", es_active)[0] == 0
    code, out, _ = run(capsys, "keys", "revoke", nxt["kid"], "--json")
    assert json.loads(out)["state"] == "compromised"
    weak = tmp_path / "weak.pem"
    weak.write_bytes(
        rsa.generate_private_key(65537, 1024).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    code, _, err = run(capsys, "keys", "import", str(weak))
    assert code == 2 and "2048" in err
    code, _, err = run(capsys, "keys", "import", str(tmp_path / "missing.pem"))
    assert code == 2


def test_bad_setting_exits_2_naming_it(
    env: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDP_ACCESS_TOKEN_TTL", "5")
    code, _, err = run(capsys, "clients", "list")
    assert code == 2 and "IDP_ACCESS_TOKEN_TTL" in err and err[-1] == "\n" and err.count("\n") == 1


def test_foreign_kek_is_refused(
    env: Services, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from idp.services import check_kek

    check_kek(env)  # the database now holds the check value for the real KEK
    monkeypatch.setenv("IDP_KEK", "A" * 43)
    code, _, err = run(capsys, "keys", "list")
    assert code == 2 and "IDP_KEK" in err and "does not match" in err
    monkeypatch.setenv("IDP_KEK", "not-base64!!")
    code, _, err = run(capsys, "keys", "list")
    assert code == 2 and "IDP_KEK" in err


def test_unreachable_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IDP_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("IDP_KEK_FILE", str(tmp_path / "kek"))
    monkeypatch.delenv("IDP_KEK", raising=False)
    code, _, err = run(capsys, "db", "upgrade")
    assert code == 2 and "IDP_DATABASE_URL" in err and "cannot connect" in err


def test_serve_refuses_an_unmigrated_database(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IDP_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.setenv("IDP_KEK_FILE", str(tmp_path / "kek"))
    monkeypatch.delenv("IDP_KEK", raising=False)
    monkeypatch.delenv("IDP_REDIS_URL", raising=False)
    code, _, err = run(capsys, "serve", "--port", "1")
    assert code == 2 and "idp db upgrade" in err
    assert (tmp_path / "kek").stat().st_mode & 0o777 == 0o600  # created 0600 on first start
    code, _, err = run(capsys, "serve", "--workers", "2")
    assert code == 2 and "IDP_REDIS_URL" in err


def test_serve_refuses_a_newer_schema(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "new.db"
    monkeypatch.setenv("IDP_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("IDP_KEK_FILE", str(tmp_path / "kek"))
    monkeypatch.delenv("IDP_KEK", raising=False)
    monkeypatch.delenv("IDP_REDIS_URL", raising=False)
    assert run(capsys, "db", "upgrade")[0] == 0
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff_future'")
    code, _, err = run(capsys, "serve")
    assert code == 2 and "newer" in err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["clients", "create", "--type", "nope"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "serve" in capsys.readouterr().out


def test_clients_disable_and_enable_do_what_the_admin_api_does(
    env: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    """What they store (how it reaches running servers at once: test_client_changes.py)."""
    client, _ = env.clients.create(name="Billing", kind="service", scope="api:read")
    cid = client.client_id
    later = {"sub": cid, "client_id": cid, "iat": int(env.clock.now()) + 300}

    def stored() -> tuple[bool, bool]:
        env.clients.invalidate_all()
        env.denylist.sync()
        return env.clients.get_active(cid) is None, env.denylist.is_denied(later)

    assert run(capsys, "clients", "disable", cid)[0] == 0
    assert stored() == (True, True)  # every token issued while it is off is denied, not only those before
    assert run(capsys, "clients", "enable", cid)[0] == 0
    assert stored() == (False, False)
    assert [e.action for e in env.audit.query() if e.client_id == cid].count("client.updated") == 2
    code, _, err = run(capsys, "clients", "disable", "nope")
    assert code == 2 and "no client" in err


def test_clients_update_disabled_goes_through_the_admin_use_case(
    env: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    """``clients update --disabled`` denies live tokens as ``clients disable`` and the admin API do."""
    client, _ = env.clients.create(name="Billing", kind="service", scope="api:read")
    cid = client.client_id
    issued = {"sub": cid, "client_id": cid, "iat": int(env.clock.now()) - 1}

    def stored() -> tuple[bool, bool]:
        env.clients.invalidate_all()
        env.denylist.sync()
        return env.clients.get_active(cid) is None, env.denylist.is_denied(issued)

    assert run(capsys, "clients", "update", cid, "--disabled")[0] == 0
    assert stored() == (True, True)  # the live token is denied, not only the registration off
    assert run(capsys, "clients", "update", cid, "--no-disabled", "--name", "Billing 2")[0] == 0
    assert stored() == (False, True)  # enabled again; tokens issued before stay denied
    assert env.clients.get(cid).name == "Billing 2"  # type: ignore[union-attr]
    assert [e.action for e in env.audit.query() if e.client_id == cid].count("client.updated") == 2  # one each


def test_clients_dpop_bound_access_tokens(env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "clients", "create", "--name", "App", "--type", "native", "--redirect-uri",
                       "http://127.0.0.1/cb", "--dpop-bound-access-tokens", "--json")  # fmt: skip
    assert code == 0, out
    created = json.loads(out)
    assert created["dpop_bound_access_tokens"] is True
    cid = created["client_id"]
    code, out, _ = run(capsys, "clients", "update", cid, "--no-dpop-bound-access-tokens", "--json")
    assert code == 0 and json.loads(out)["dpop_bound_access_tokens"] is False
    env.clients.invalidate(cid)
    assert not env.clients.get(cid).dpop_bound_access_tokens  # type: ignore[union-attr]
    code, out, _ = run(capsys, "clients", "create", "--name", "Plain", "--type", "native", "--redirect-uri",
                       "http://127.0.0.1/cb", "--json")  # fmt: skip
    assert json.loads(out)["dpop_bound_access_tokens"] is False
