"""New passwords: length, the common/breached list, context-specific words (NIST SP 800-63B §5.1.1.2)."""

from __future__ import annotations

import gzip
import importlib.resources

import pytest

from idp.users.password_policy import IS_IDENTIFIER, LIST, TOO_COMMON, common_passwords, password_problem


@pytest.mark.parametrize(
    "password", ["password", "12345678", "Password1", "PASSWORD1", "iloveyou", "qwertyuiop", "letmein1", "trustno1 "]
)
def test_common_and_breached_passwords_are_refused(password):
    assert password_problem(password, username="alice") == TOO_COMMON


@pytest.mark.parametrize(
    ("password", "username", "email"),
    [
        ("alice.smith", "alice.smith", None),
        ("ALICE.SMITH", "alice.smith", None),
        ("alice.smith2024!", "alice.smith", None),
        ("  2024 alice.smith", "Alice.Smith", None),
        ("a.smith@example.com", "asmith", "a.smith@example.com"),
        ("jsmith1985", "asmith", "JSmith1985@example.com"),
        ("jsmith1985!!", "asmith", "jsmith1985@example.com"),
    ],
)
def test_the_username_or_email_is_refused(password, username, email):
    assert password_problem(password, username=username, email=email) == IS_IDENTIFIER


@pytest.mark.parametrize(
    "password", ["correct horse battery staple", "a brand new passphrase", "alice.smith's garden gnome", "Tr0ub4dor&3x"]
)
def test_good_passwords_pass(password):
    assert password_problem(password, username="alice.smith", email="alice.smith@example.com") is None


def test_length_is_checked_first():
    assert password_problem("1234567") == "password must be 8-1024 characters"
    assert password_problem("x" * 1025) == "password must be 8-1024 characters"
    assert password_problem("x" * 1024) is None


def test_the_list_is_compact_sorted_package_data_loaded_once():
    raw = importlib.resources.files("idp.users").joinpath(LIST).read_bytes()
    assert len(raw) < 100_000  # small enough to ship in the wheel
    words = gzip.decompress(raw).decode().split("\n")[:-1]
    assert words == sorted(set(words)) and all(len(w) >= 8 and w == w.casefold() for w in words)
    assert len(words) > 15_000
    common_passwords.cache_clear()
    assert common_passwords() is common_passwords()  # a frozenset read once, on first use
    assert common_passwords.cache_info().misses == 1
