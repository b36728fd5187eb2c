"""Back-channel logout (OIDC BCL 1.0 §2.4-§2.8) on both backends, to a real receiving RP on loopback.

The outbox is written in the transaction that ends the sessions (every way a session ends), the sender
delivers at least once with backoff, a retry horizon and a dead letter an operator retries; a slow RP
holds only its own slots; two senders over one database send each token once.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from idp.logout.feature import make_sender
from idp.logout.sender import LogoutSender
from idp.tokens.logout_token import EVENT
from tests.integration.bcl_support import Receiver, claims_of, until
from tests.oauthkit import make_user, tokens_for, web_client

pytestmark = pytest.mark.timing  # live receivers on loopback (backoff and leases still run on the FrozenClock)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "backchannel_logout_allow_loopback": True,
        "backchannel_logout_timeout": 0.5,
        "backchannel_logout_poll_seconds": 0.05,
    }


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def alice(container):
    container.keyring.tick()  # the signing keys a started app would have
    return make_user(container)


def bcl_client(container, receiver, **kw):
    client, _secret = web_client(container, backchannel_logout_uri=receiver.uri, **kw)
    return client


def session_into(container, user, *clients):
    cookie, session = container.login_sessions.login(user.id)
    for cl in clients:
        container.login_sessions.signed_into(session.sid, cl.client_id)
    return cookie, session


def signed_out(container, user, receiver):
    """A client with a back-channel receiver, a session of ``user`` signed into it, signed out everywhere."""
    rp = bcl_client(container, receiver)
    session_into(container, user, rp)
    container.account.sign_out_everywhere(user.id)
    return rp


async def deliver(sender: LogoutSender) -> None:
    """One claim round and its attempts, to the end."""
    await asyncio.gather(*await sender.dispatch())


def rows(container, **kw):
    return container.logout_outbox.list(**kw)


# -- registration and what a session remembers ---------------------------------------------------------------


async def test_the_code_exchange_records_the_client_and_logout_delivers_a_valid_token(
    client, container, alice, receiver
):
    rp, secret = web_client(container, backchannel_logout_uri=receiver.uri, backchannel_logout_session_required=True)
    body = await tokens_for(container, client, rp, secret, alice, scope="openid")
    id_claims = container.id_tokens.verify(body["id_token"], client_id=rp.client_id)
    sid = id_claims["sid"]  # the ID token carries the sid the logout token will name
    container.account.sign_out_everywhere(alice.id)
    await until(lambda: receiver.ok())
    got = receiver.received[0]
    assert got.content_type == "application/x-www-form-urlencoded"  # BCL §2.5
    claims = claims_of(container, got.token, rp.client_id)
    assert claims["sid"] == sid and claims["sub"] == alice.id and claims["events"] == {EVENT: {}}
    assert "nonce" not in claims  # BCL §2.4
    await until(lambda: rows(container, state="delivered"))


async def test_a_client_without_a_backchannel_uri_is_not_recorded(client, container, alice):
    rp, secret = web_client(container)
    await tokens_for(container, client, rp, secret, alice, scope="openid")
    container.account.sign_out_everywhere(alice.id)
    assert rows(container) == []


# -- every way a session ends writes the outbox, in the same transaction ---------------------------------------


def _rp_logout(c, user, cookie, sid):
    c.login_sessions.end(cookie, actor=user.id, reason="logout")


def _account_device(c, user, cookie, sid):
    assert c.account.end_session(user.id, sid)


def _everywhere(c, user, cookie, sid):
    c.account.sign_out_everywhere(user.id)


def _admin_or_cli_one(c, user, cookie, sid):
    assert c.login_sessions.end_sid(sid, user_id=user.id, actor="admin:ops", reason="ended by admin")


def _admin_or_cli_all(c, user, cookie, sid):
    c.account.sign_out_everywhere(user.id, actor="cli:ops", reason="lost laptop")


def _disabled(c, user, cookie, sid):
    c.user_admin.set_disabled(user.username, True, actor="admin:ops")


def _denied_subject(c, user, cookie, sid):
    c.deny_admin.deny("subject", user.id, reason="stolen", actor="admin:ops")


def _password_reset(c, user, cookie, sid):
    c.user_admin.reset_password(user, "another good passphrase 42", actor="admin:ops", sign_out=True, reason="reset")


ENDINGS = [_rp_logout, _account_device, _everywhere, _admin_or_cli_one, _admin_or_cli_all, _disabled, _denied_subject,
           _password_reset]  # fmt: skip


@pytest.mark.parametrize("end", ENDINGS, ids=lambda f: f.__name__.strip("_"))
def test_every_way_a_session_ends_owes_each_of_its_clients_a_token(container, alice, receiver, end):
    one, two = bcl_client(container, receiver, name="One"), bcl_client(container, receiver, name="Two")
    cookie, session = session_into(container, alice, one, two)
    end(container, alice, cookie, session.sid)
    owed = rows(container)
    assert sorted(d.client_id for d in owed) == sorted([one.client_id, two.client_id])  # every RP of the session
    assert {(d.sid, d.sub, d.state) for d in owed} == {(session.sid, alice.id, "pending")}


def test_a_password_change_owes_tokens_for_the_other_sessions_only(container, alice, receiver):
    rp = bcl_client(container, receiver)
    here_cookie, here = session_into(container, alice, rp)
    _, there = session_into(container, alice, rp)
    container.account.change_password(here, here_cookie, "correct horse battery staple", "a new passphrase 42!",
                                      "a new passphrase 42!", ip="127.0.0.1")  # fmt: skip
    assert [d.sid for d in rows(container)] == [there.sid]


def test_an_expired_session_owes_nothing(container, alice, receiver):
    rp = bcl_client(container, receiver)
    cookie, _ = session_into(container, alice, rp)
    container.clock.advance(container.login_sessions.absolute_ttl + 1)
    assert container.login_sessions.current(cookie) is None
    assert rows(container) == []


def test_the_outbox_commits_with_the_end_or_not_at_all(container, alice, receiver):
    rp = bcl_client(container, receiver)
    cookie, session = session_into(container, alice, rp)
    store = container.login_sessions._store

    def broken(*_args):
        raise RuntimeError("participant failed")

    store.on_end.append(broken)
    with pytest.raises(RuntimeError):
        container.login_sessions.end(cookie, actor=alice.id, reason="logout")
    store.on_end.remove(broken)
    assert container.login_sessions.get_by_sid(session.sid) is not None  # the end rolled back...
    assert rows(container) == []  # ...and with it the outbox rows
    container.login_sessions.end(cookie, actor=alice.id, reason="logout")
    assert len(rows(container)) == 1


def test_a_disabled_client_or_one_without_a_uri_is_owed_nothing(container, alice, receiver):
    off = bcl_client(container, receiver, name="Off")
    gone = bcl_client(container, receiver, name="Gone")
    _, session = session_into(container, alice, off, gone)
    container.client_admin.set_disabled(off.client_id, True, actor="admin:ops")
    container.client_admin.update(gone.client_id, {"backchannel_logout_uri": None}, actor="admin:ops")
    container.account.sign_out_everywhere(alice.id)
    assert rows(container) == []


# -- delivery: success, faults, recovery ---------------------------------------------------------------------


async def test_a_500_is_retried_with_backoff_and_delivered_after_recovery(container, alice, receiver, caplog):
    signed_out(container, alice, receiver)
    sender = make_sender(container, rng=lambda: 1.0)
    receiver.status = 500
    await deliver(sender)
    (d,) = rows(container)
    assert d.state == "pending" and d.attempts == 1 and d.last_status == 500 and "500" in d.last_error
    assert d.next_attempt_at == container.clock.now() + 2.0  # backoff: 2 s after the first failure
    receiver.status = 200
    await deliver(sender)
    assert len(receiver.received) == 1  # not due yet: nothing sent
    container.clock.advance(2.0)
    await deliver(sender)
    (d,) = rows(container)
    assert d.state == "delivered" and d.attempts == 2 and d.last_status == 200
    assert [r.answered for r in receiver.received] == [500, 200]
    await deliver(sender)
    container.clock.advance(3600)
    await deliver(sender)
    assert len(receiver.received) == 2  # never again once it answered 200
    await sender.stop()
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert all(r.token not in logged and r.token.split(".")[2] not in logged for r in receiver.received)


async def test_a_receiver_that_times_out_gets_its_token_after_recovery(container, alice, receiver):
    signed_out(container, alice, receiver)
    sender = make_sender(container, rng=lambda: 0.0)
    receiver.delay = 2.0  # past the 0.5 s timeout
    started = time.monotonic()
    await deliver(sender)
    assert time.monotonic() - started < 1.5
    (d,) = rows(container)
    assert d.state == "pending" and "no answer" in d.last_error and d.last_status is None
    receiver.delay = 0.0
    container.clock.advance(1.0)  # the jitter drew the lower half: 1 s
    await deliver(sender)
    assert rows(container)[0].state == "delivered"
    await sender.stop()


async def test_a_receiver_down_for_a_while_gets_its_token_when_it_is_back(container, alice, receiver):
    signed_out(container, alice, receiver)
    sender = make_sender(container, rng=lambda: 1.0)
    port = receiver.server.port
    receiver.stop()
    for _ in range(3):  # 2, 4, 8 s of backoff: still down
        await deliver(sender)
        container.clock.advance(3600)
    (d,) = rows(container)
    assert d.state == "pending" and d.attempts == 3 and d.last_status is None
    receiver.start(port)
    await deliver(sender)
    assert rows(container)[0].state == "delivered" and len(receiver.ok()) == 1
    await sender.stop()


async def test_past_the_horizon_it_is_dead_and_an_operator_retries_it(container, alice, receiver):
    from idp.logout.admin import retry_dead

    signed_out(container, alice, receiver)
    sender = make_sender(container, rng=lambda: 1.0)
    receiver.status = 503
    await deliver(sender)
    container.clock.advance(24 * 3600)  # the next backoff would end past the 24 h horizon
    await deliver(sender)
    (d,) = rows(container)
    assert d.state == "dead" and d.attempts == 2
    await deliver(sender)
    assert len(receiver.received) == 2  # a dead delivery is not sent
    receiver.status = 204
    assert retry_dead(container, actor="cli:ops") == [d.id]
    await deliver(sender)
    assert rows(container)[0].state == "delivered"  # BCL §2.8: 204 is success too
    actions = [e.action for e in container.audit.query(limit=50)]
    assert {"logout.dead", "logout.retried", "logout.delivered"} <= set(actions)
    await sender.stop()


async def test_redirects_are_not_followed_and_a_big_answer_is_not_read(container, alice, receiver):
    signed_out(container, alice, receiver)
    sender = make_sender(container)
    receiver.status = 307
    await deliver(sender)
    assert rows(container)[0].last_status == 307 and receiver.strays == []  # never followed
    receiver.status = 299  # 200 with 2 MB of body
    container.clock.advance(3600)
    await deliver(sender)
    assert rows(container)[0].state == "delivered"
    await sender.stop()


async def test_a_slow_rp_does_not_delay_another(container, alice, receiver):
    fast_rp = bcl_client(container, receiver, name="Fast")
    slow_receiver = Receiver(hold=threading.Event()).start()
    try:
        slow_rp, _ = web_client(container, name="Slow", backchannel_logout_uri=slow_receiver.uri)
        for _ in range(6):
            session_into(container, alice, slow_rp, fast_rp)
        container.account.sign_out_everywhere(alice.id)
        sender = make_sender(container)
        sender.settings.timeout, sender.settings.lease = 5.0, 25.0  # the held requests must not time out here
        await sender.start()
        await until(lambda: len(receiver.ok()) == 6, timeout=3)  # while the slow RP holds its requests
        await until(lambda: slow_receiver.in_flight == 4, timeout=3)
        assert slow_receiver.received == []  # it holds its per-client limit (4) of them, no more
        slow_receiver.hold.set()
        await until(lambda: len(rows(container, state="delivered")) == 12, timeout=5)
        assert slow_receiver.max_in_flight == 4 and len(slow_receiver.ok()) == 6
        await sender.stop()
    finally:
        slow_receiver.hold.set()
        slow_receiver.stop()


async def test_a_private_or_metadata_address_is_refused(container, alice, receiver):
    rp, _ = web_client(container, backchannel_logout_uri="https://169.254.169.254/latest?secret=1")
    session_into(container, alice, rp)
    container.account.sign_out_everywhere(alice.id)
    sender = make_sender(container)
    await deliver(sender)
    (d,) = rows(container)
    assert d.state == "pending" and "refused" in d.last_error and "private" in d.last_error
    assert "secret" not in d.last_error  # the query is never written down
    await sender.stop()


# -- several instances, restarts -----------------------------------------------------------------------------


@pytest.fixture
def second(settings, clock):
    from idp.services import build_services

    c = build_services(settings, clock=clock)
    yield c
    c.close()


async def test_two_instances_send_each_token_once(container, second, alice, receiver):
    rps = [bcl_client(container, receiver, name=f"RP{i}") for i in range(3)]
    for _ in range(8):
        session_into(container, alice, *rps)
    container.account.sign_out_everywhere(alice.id)
    a, b = make_sender(container), make_sender(second)
    a.settings.per_client = b.settings.per_client = 64
    receiver.delay = 0.05
    await asyncio.gather(deliver(a), deliver(b), deliver(a), deliver(b))
    await deliver(a)
    got = [_claims(r.token) for r in receiver.ok()]
    assert len(got) == 24 and len(rows(container, state="delivered")) == 24
    for r in receiver.ok():
        claims_of(container, r.token, _claims(r.token)["aud"])  # each verifies for its own client
    assert len({(c["aud"], c["sid"]) for c in got}) == 24  # each (client, session) exactly once
    await a.stop()
    await b.stop()


def _claims(token: str) -> dict:
    import base64

    import orjson

    part = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_a_graceful_restart_mid_delivery_loses_nothing_and_sends_nothing_twice(
    container, second, alice, receiver
):
    rp = bcl_client(container, receiver)
    for _ in range(4):
        session_into(container, alice, rp)
    container.account.sign_out_everywhere(alice.id)
    a = make_sender(container)
    await a.start()
    receiver.delay = 0.3
    await until(lambda: receiver.in_flight > 0, timeout=3)
    await a.stop()  # mid-delivery: the attempts under way finish and are recorded
    b = make_sender(second)
    container.clock.advance(3600)
    for _ in range(3):
        await deliver(b)
    assert len(rows(container, state="delivered")) == 4
    sids = [_claims(r.token)["sid"] for r in receiver.ok()]
    assert len(sids) == len(set(sids)) == 4  # none sent twice to a receiver that answered 200
    await b.stop()


async def test_a_crashed_instance_s_claims_are_sent_by_another_after_the_lease(container, second, alice, receiver):
    rp = bcl_client(container, receiver)
    _, session = session_into(container, alice, rp)
    container.account.sign_out_everywhere(alice.id)
    a, b = make_sender(container), make_sender(second)
    receiver.status = 200
    receiver.hold = threading.Event()
    tasks = await a.dispatch()
    await until(lambda: receiver.in_flight == 1, timeout=3)
    await a.abort()  # a crash: the attempt is dropped, nothing recorded
    assert tasks and all(t.done() for t in tasks)
    receiver.hold.set()
    await deliver(b)
    assert rows(container)[0].state == "pending"  # still leased to the crashed instance
    container.clock.advance(a.settings.lease)
    await deliver(b)
    assert rows(container)[0].state == "delivered"
    assert session.sid in {_claims(r.token)["sid"] for r in receiver.ok()}
    await b.stop()


# -- the running server --------------------------------------------------------------------------------------


async def test_the_browser_logout_never_waits_for_an_rp(client, container, alice, receiver):
    from tests.oauthkit import sign_in_fast

    rp = bcl_client(container, receiver, post_logout_redirect_uris=["https://rp.example/bye"])
    sid = sign_in_fast(container, client, alice)
    container.login_sessions.signed_into(sid, rp.client_id)
    receiver.hold = threading.Event()
    hint = container.id_tokens.issue(client_id=rp.client_id, sub=alice.id, auth_time=None, sid=sid)
    started = time.monotonic()
    r = await client.get(
        "/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": "https://rp.example/bye"}
    )
    assert r.status_code == 303 and time.monotonic() - started < 2.0
    assert container.login_sessions.get_by_sid(sid) is None
    await until(lambda: receiver.in_flight == 1, timeout=3)  # the sender is on it, the browser is not waiting
    receiver.hold.set()
    await until(lambda: rows(container, state="delivered"))


async def test_metrics_count_deliveries_and_the_queue(client, container, alice, receiver):
    signed_out(container, alice, receiver)

    def sent() -> float:
        return container.metrics.logout_deliveries.labels("sent")._value.get()

    await until(lambda: sent() == 1)
    text = (await asyncio.to_thread(container.metrics.render)).decode()
    assert 'idp_backchannel_logout_deliveries_total{result="sent"} 1.0' in text
    assert "idp_backchannel_logout_delivery_seconds_count 1.0" in text
    assert 'idp_backchannel_logout_queue{state="pending"} 0.0' in text


def test_a_reauthentication_keeps_the_sid_and_its_clients(container, alice, receiver):
    rp = bcl_client(container, receiver)
    cookie, session = session_into(container, alice, rp)
    container.clock.advance(120)
    _, again = container.login_sessions.login(alice.id, previous_cookie=cookie)  # a new cookie, the same sid
    assert again.sid == session.sid
    container.account.sign_out_everywhere(alice.id)
    assert [(d.client_id, d.sid) for d in rows(container)] == [(rp.client_id, session.sid)]


def test_a_client_recorded_after_its_session_ended_is_ignored(container, alice, receiver):
    rp = bcl_client(container, receiver)
    cookie, session = session_into(container, alice)
    container.login_sessions.end(cookie, actor=alice.id, reason="logout")
    container.login_sessions.signed_into(session.sid, rp.client_id)  # a code exchanged after the logout
    container.login_sessions.signed_into(session.sid, rp.client_id)
    assert rows(container) == []
