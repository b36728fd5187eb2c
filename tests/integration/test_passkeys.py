"""The passkey service over both backends, with real ceremonies from a software authenticator."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp.sessions.passkeys import CEREMONY_TTL, MAX_PASSKEYS, PasskeyError
from idp.store.models import AuditEventRow
from tests.passkeykit import SoftAuthenticator

BINDING = "sid-of-this-browser"


def actions(c) -> list[str]:
    with c.sessions() as s:
        return list(s.scalars(select(AuditEventRow.action).order_by(AuditEventRow.id)))


def authenticator(c, **kw) -> SoftAuthenticator:
    return SoftAuthenticator(origin=c.passkeys.origin, rp_id=c.passkeys.rp_id, **kw)


def register(c, user_id: str, auth: SoftAuthenticator, *, name: str = "Laptop", **kw):
    ceremony = c.passkeys.registration_options(user_id, "alice", "Alice", binding=BINDING)
    response = auth.create(ceremony.options, **kw)
    return c.passkeys.register(user_id, binding=BINDING, ceremony_id=ceremony.id, response=response, name=name, ip="")


def sign_in(c, auth: SoftAuthenticator, *, user_id: str | None = None, binding: str = BINDING, **kw):
    ceremony = c.passkeys.authentication_options(binding=binding, user_id=user_id)
    return c.passkeys.authenticate(binding=binding, ceremony_id=ceremony.id, response=auth.get(ceremony.options, **kw),
                                   ip="")  # fmt: skip


@pytest.fixture
def alice(container) -> str:
    return container.directory.create("alice", "correct horse battery staple", name="Alice").id


def test_rp_is_the_issuer(container):
    assert container.passkeys.rp_id == "idp.test"
    assert container.passkeys.origin == "https://idp.test"


def test_registration_options_ask_for_a_discoverable_credential_with_user_verification(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    options = container.passkeys.registration_options(alice, "alice", "Alice", binding=BINDING).options
    assert options["rp"] == {"id": "idp.test", "name": "idp.test"}
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert options["user"]["name"] == "alice"
    assert [d["id"] for d in options["excludeCredentials"]] == [_b64(auth.credential_id)]


def _b64(data: bytes) -> str:
    from tests.passkeykit import b64u

    return b64u(data)


def test_register_then_sign_in_passwordless(container, alice):
    auth = authenticator(container)
    passkey = register(container, alice, auth, name="  My   laptop ")
    assert passkey.name == "My laptop"
    assert passkey.transports == ("internal",)
    assert passkey.backup_eligible is False
    stored = container.passkeys.list(alice)
    assert [p.id for p in stored] == [passkey.id]
    assert stored[0].credential_id == auth.credential_id

    result = sign_in(container, auth)
    assert result.passkey.user_id == alice
    assert result.user_verified is True
    assert result.methods == ("hwk", "user")
    again = container.passkeys.list(alice)[0]
    assert again.sign_count == 1
    assert again.last_used_at == container.clock.now()
    assert actions(container)[-1] == "passkey.added"


def test_a_synced_passkey_is_swk_and_its_backup_state_is_updated(container, alice):
    auth = authenticator(container, backup_eligible=True)
    passkey = register(container, alice, auth)
    assert passkey.backup_eligible and not passkey.backed_up
    auth.backed_up = True
    result = sign_in(container, auth)
    assert result.methods == ("swk", "user")
    assert container.passkeys.list(alice)[0].backed_up is True


def test_backup_eligibility_cannot_change(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    auth.backup_eligible = True
    with pytest.raises(PasskeyError):
        sign_in(container, auth)


def test_registration_needs_user_verification(container, alice):
    with pytest.raises(PasskeyError):
        register(container, alice, authenticator(container), uv=False)
    assert container.passkeys.list(alice) == []
    assert actions(container)[-1] == "passkey.registration_failed"


@pytest.mark.parametrize("where", ["origin", "rp_id"])
def test_registration_from_another_origin_or_rp_is_refused(container, alice, where):
    kw = {"origin": "https://evil.test"} if where == "origin" else {"rp_id": "evil.test"}
    with pytest.raises(PasskeyError):
        register(container, alice, authenticator(container), **kw)
    assert container.passkeys.list(alice) == []


def test_passwordless_sign_in_needs_user_verification(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    with pytest.raises(PasskeyError):
        sign_in(container, auth, uv=False)


def test_as_a_second_factor_user_verification_is_preferred_not_required(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    ceremony = container.passkeys.authentication_options(binding=BINDING, user_id=alice)
    assert ceremony.options["userVerification"] == "preferred"
    assert [d["id"] for d in ceremony.options["allowCredentials"]] == [_b64(auth.credential_id)]
    result = container.passkeys.authenticate(
        binding=BINDING, ceremony_id=ceremony.id, response=auth.get(ceremony.options, uv=False), ip=""
    )
    assert result.methods == ("hwk",)


def test_a_second_factor_ceremony_refuses_another_persons_passkey(container, alice):
    bob = container.directory.create("bob", "correct horse battery staple").id
    bobs = authenticator(container)
    register(container, bob, bobs)
    register(container, alice, authenticator(container))
    with pytest.raises(PasskeyError):
        sign_in(container, bobs, user_id=alice)


def test_passwordless_options_let_the_authenticator_choose(container):
    options = container.passkeys.authentication_options(binding=BINDING).options
    assert options.get("allowCredentials", []) == []
    assert options["userVerification"] == "required"
    assert options["rpId"] == "idp.test"


def test_a_challenge_is_used_once(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    ceremony = container.passkeys.authentication_options(binding=BINDING)
    response = auth.get(ceremony.options)
    container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=response, ip="")
    with pytest.raises(PasskeyError, match="expired"):
        container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=response, ip="")


def test_a_challenge_expires(container, alice, clock):
    auth = authenticator(container)
    register(container, alice, auth)
    ceremony = container.passkeys.authentication_options(binding=BINDING)
    clock.advance(CEREMONY_TTL + 1)
    if container.settings.redis_url:  # Redis expires on its own clock: the stored TTL is the bound
        container.ephemeral.delete(f"passkey:signin:{ceremony.id}")
    with pytest.raises(PasskeyError):
        container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=auth.get(ceremony.options),
                                        ip="")  # fmt: skip


def test_a_ceremony_is_bound_to_the_browser_that_started_it(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    ceremony = container.passkeys.authentication_options(binding=BINDING)
    with pytest.raises(PasskeyError, match="elsewhere"):
        container.passkeys.authenticate(binding="another-browser", ceremony_id=ceremony.id,
                                        response=auth.get(ceremony.options), ip="")  # fmt: skip


def test_a_challenge_from_another_ceremony_is_refused(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    first = container.passkeys.authentication_options(binding=BINDING)
    second = container.passkeys.authentication_options(binding=BINDING)
    with pytest.raises(PasskeyError):
        container.passkeys.authenticate(binding=BINDING, ceremony_id=second.id, response=auth.get(first.options),
                                        ip="")  # fmt: skip


def test_a_sign_count_that_does_not_grow_is_refused_and_audited(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    sign_in(container, auth, count=5)
    with pytest.raises(PasskeyError, match="copied"):
        sign_in(container, auth, count=5)
    with pytest.raises(PasskeyError, match="copied"):
        sign_in(container, auth, count=3)
    assert actions(container)[-1] == "passkey.sign_count_regressed"
    assert container.passkeys.list(alice)[0].sign_count == 5
    sign_in(container, auth, count=6)


def test_an_authenticator_without_a_counter_keeps_zero(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    sign_in(container, auth, count=0)
    sign_in(container, auth, count=0)
    assert container.passkeys.list(alice)[0].sign_count == 0


def test_a_forged_signature_is_refused(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    ceremony = container.passkeys.authentication_options(binding=BINDING)
    response = json.loads(auth.get(ceremony.options))
    other = json.loads(authenticator(container, credential_id=auth.credential_id).get(ceremony.options))
    response["response"]["signature"] = other["response"]["signature"]
    with pytest.raises(PasskeyError):
        container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=json.dumps(response), ip="")
    assert actions(container)[-1] == "passkey.failed"


def test_a_user_handle_that_is_not_the_credentials_is_refused(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    with pytest.raises(PasskeyError):
        sign_in(container, auth, user_handle=b"someone-else")


def test_a_passwordless_sign_in_needs_the_user_handle(container, alice):
    """WebAuthn §7.2 step 6: nobody was identified before the ceremony, so the response must name its user."""
    auth = authenticator(container)
    register(container, alice, auth)
    with pytest.raises(PasskeyError):
        sign_in(container, auth, user_handle=b"")  # the authenticator answers without userHandle
    assert sign_in(container, auth, user_id=alice, user_handle=b"").passkey.user_id == alice  # as a second factor


def test_an_unknown_credential_is_refused(container, alice):
    with pytest.raises(PasskeyError, match="not registered"):
        sign_in(container, authenticator(container, user_handle=alice.encode()))


@pytest.mark.parametrize("response", ["", "{}", "not json", '{"id": 1}', "[" * 5000])
def test_malformed_responses_are_refused_cleanly(container, alice, response):
    ceremony = container.passkeys.authentication_options(binding=BINDING)
    with pytest.raises(PasskeyError):
        container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=response, ip="")
    reg = container.passkeys.registration_options(alice, "alice", "Alice", binding=BINDING)
    with pytest.raises(PasskeyError):
        container.passkeys.register(alice, binding=BINDING, ceremony_id=reg.id, response=response, name="", ip="")


def test_the_same_credential_cannot_be_registered_twice(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    bob = container.directory.create("bob", "correct horse battery staple").id
    with pytest.raises(PasskeyError, match="already"):
        register(container, bob, auth)


def test_a_registration_ceremony_belongs_to_its_user(container, alice):
    bob = container.directory.create("bob", "correct horse battery staple").id
    ceremony = container.passkeys.registration_options(alice, "alice", "Alice", binding=BINDING)
    with pytest.raises(PasskeyError):
        response = authenticator(container).create(ceremony.options)
        container.passkeys.register(bob, binding=BINDING, ceremony_id=ceremony.id, response=response, name="", ip="")


def test_at_most_ten_passkeys(container, alice):
    for _ in range(MAX_PASSKEYS):
        register(container, alice, authenticator(container))
    with pytest.raises(PasskeyError, match="already have"):
        container.passkeys.registration_options(alice, "alice", "Alice", binding=BINDING)


def test_rename_and_remove_only_ones_own(container, alice):
    passkey = register(container, alice, authenticator(container))
    bob = container.directory.create("bob", "correct horse battery staple").id
    assert not container.passkeys.rename(bob, passkey.id, "Mine now")
    assert not container.passkeys.remove(bob, passkey.id)
    assert not container.passkeys.rename(alice, passkey.id, "\x07")
    assert container.passkeys.rename(alice, passkey.id, "Phone")
    assert container.passkeys.list(alice)[0].name == "Phone"
    assert container.passkeys.remove(alice, passkey.id)
    assert container.passkeys.list(alice) == []
    assert actions(container)[-2:] == ["passkey.renamed", "passkey.removed"]


def test_a_removed_passkey_no_longer_signs_in(container, alice):
    auth = authenticator(container)
    passkey = register(container, alice, auth)
    container.passkeys.remove(alice, passkey.id)
    with pytest.raises(PasskeyError, match="not registered"):
        sign_in(container, auth)


def test_reset_removes_every_passkey(container, alice):
    register(container, alice, authenticator(container))
    register(container, alice, authenticator(container))
    assert container.passkeys.reset(alice, actor="admin") == 2
    assert container.passkeys.list(alice) == []
    assert actions(container)[-1] == "passkey.reset"


def test_a_deleted_user_takes_the_passkeys(container, alice):
    register(container, alice, authenticator(container))
    from idp.store.models import UserRow, WebAuthnCredentialRow

    with container.sessions.begin() as s:
        s.delete(s.get(UserRow, alice))
    with container.sessions() as s:
        assert s.scalars(select(WebAuthnCredentialRow)).all() == []


def test_ceremonies_per_address_are_capped_under_concurrency(container, clock):
    from concurrent.futures import ThreadPoolExecutor

    from idp.sessions.passkeys import CEREMONIES_PER_ADDRESS, TooManyCeremonies

    def start(_: int) -> bool:
        try:
            container.passkeys.authentication_options(binding=BINDING, ip="203.0.113.7")
            return True
        except TooManyCeremonies:
            return False

    with ThreadPoolExecutor(8) as pool:
        started = list(pool.map(start, range(CEREMONIES_PER_ADDRESS + 20)))
    assert sum(started) == CEREMONIES_PER_ADDRESS
    with pytest.raises(TooManyCeremonies) as refused:
        container.passkeys.authentication_options(binding=BINDING, ip="203.0.113.7")
    assert 0 < refused.value.retry_after <= CEREMONY_TTL
    container.passkeys.authentication_options(binding=BINDING, ip="203.0.113.8")  # another address
    container.passkeys.authentication_options(binding=BINDING, ip="2001:db8::1")
    clock.advance(CEREMONY_TTL)
    container.passkeys.authentication_options(binding=BINDING, ip="203.0.113.7")  # the next window


def test_an_answered_ceremony_gives_its_place_back(container, alice):
    auth = authenticator(container)
    register(container, alice, auth)
    container.passkeys.per_address = 2
    for _ in range(5):
        ceremony = container.passkeys.authentication_options(binding=BINDING, ip="203.0.113.9")
        response = auth.get(ceremony.options)
        container.passkeys.authenticate(binding=BINDING, ceremony_id=ceremony.id, response=response, ip="")
