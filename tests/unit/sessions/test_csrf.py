"""CSRF tokens: bound to the session secret and purpose; the login form's to the pre-session cookie."""

from __future__ import annotations

import os

from idp.clock import FrozenClock
from idp.crypto import Digester
from idp.sessions.csrf import LoginFormCsrf, check_session_token, session_token


def test_session_token_is_bound_to_secret_and_purpose():
    secret, other = os.urandom(32), os.urandom(32)
    token = session_token(secret, "account")
    assert check_session_token(secret, "account", token)
    assert not check_session_token(other, "account", token)
    assert not check_session_token(secret, "logout", token)
    assert not check_session_token(secret, "consent:abc", session_token(secret, "consent:abd"))
    for bad in (None, "", token[:-1], token + "A", "x" * 1000):
        assert not check_session_token(secret, "account", bad)


def test_login_token_is_bound_to_the_cookie_and_expires():
    clock = FrozenClock(1_000_000.0)
    csrf = LoginFormCsrf(Digester(os.urandom(32)).digest, clock, ttl=3600)
    cookie = csrf.new_cookie()
    token = csrf.issue(cookie)
    assert csrf.check(cookie, token) == "ok"
    assert csrf.check(csrf.new_cookie(), token) == "bad"  # an attacker's token does not fit the victim's cookie
    assert csrf.check(None, token) == "bad"
    assert csrf.check(cookie, None) == "bad"
    exp, mac = token.split(".")
    assert csrf.check(cookie, f"{int(exp) + 10000}.{mac}") == "bad"  # the expiry is authenticated
    for junk in ("", ".", "abc", "1.2.3", "-1.x", "9" * 40 + ".x"):
        assert csrf.check(cookie, junk) == "bad"
    clock.advance(3600)
    assert csrf.check(cookie, token) == "expired"


def test_login_token_needs_the_server_key():
    clock = FrozenClock(1_000_000.0)
    ours = LoginFormCsrf(Digester(os.urandom(32)).digest, clock)
    theirs = LoginFormCsrf(Digester(os.urandom(32)).digest, clock)
    cookie = ours.new_cookie()
    assert ours.check(cookie, theirs.issue(cookie)) == "bad"


def test_the_pre_session_cookie_carries_128_random_bits():
    from idp.crypto import b64url_decode

    cookies = {LoginFormCsrf.new_cookie() for _ in range(50)}
    assert len(cookies) == 50
    assert {len(b64url_decode(c)) for c in cookies} == {16}  # 128 bits (ASVS V7.2.3), well inside the 64-char bound


def test_login_token_length_bounds_are_inclusive():
    """A cookie of up to 64 characters, a token of up to MAX_TOKEN_LEN and an expiry of up to 12 digits are read;
    one more is refused, even for a genuine token."""
    from idp.sessions.csrf import MAX_TOKEN_LEN

    digest = Digester(os.urandom(32)).digest
    clock = FrozenClock(1_000_000.0)
    csrf = LoginFormCsrf(digest, clock, ttl=3600)
    assert csrf.check("c" * 64, csrf.issue("c" * 64)) == "ok"
    assert csrf.check("c" * 65, csrf.issue("c" * 65)) == "bad"
    long_mac = LoginFormCsrf(lambda text: digest(text) * 4 + digest(text)[:16], clock, ttl=3600)  # 144 bytes
    token = long_mac.issue("c")
    assert len(token) == MAX_TOKEN_LEN and long_mac.check("c", token) == "ok"
    far = FrozenClock(999_999_000_000.0)  # expiries of 12 digits, then 13
    late = LoginFormCsrf(digest, far, ttl=3600)
    token = late.issue("c")
    assert len(token.split(".")[0]) == 12 and late.check("c", token) == "ok"
    far.advance(9_000_000_000_000)
    token = late.issue("c")
    assert len(token.split(".")[0]) == 13 and late.check("c", token) == "bad"
