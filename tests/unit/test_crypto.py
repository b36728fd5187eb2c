from __future__ import annotations

import secrets

import pytest

from idp.crypto import Digester, KeyError_, Sealer, random_token


def test_random_tokens_carry_at_least_256_bits() -> None:
    tok = random_token()
    assert len(tok) >= 43
    assert tok != random_token()


def test_digest_is_keyed_and_constant_time_compared() -> None:
    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    d1, d2 = Digester(k1), Digester(k2)
    assert d1.digest("s") == Digester(k1).digest("s")
    assert d1.digest("s") != d2.digest("s")  # a stolen table is useless without the KEK
    assert d1.matches("s", d1.digest("s"))
    assert not d1.matches("t", d1.digest("s"))
    assert not d1.matches("s", None)


def test_sealed_data_is_bound_to_key_and_context() -> None:
    kek = secrets.token_bytes(32)
    blob = Sealer(kek).seal(b"private key", b"kid-1")
    assert b"private key" not in blob
    assert Sealer(kek).open(blob, b"kid-1") == b"private key"
    with pytest.raises(KeyError_):
        Sealer(kek).open(blob, b"kid-2")
    with pytest.raises(KeyError_):
        Sealer(secrets.token_bytes(32)).open(blob, b"kid-1")


def test_identifiers_never_start_with_a_dash(monkeypatch) -> None:
    """A client_id or kid starting with "-" would read as an option on the command line."""
    from idp import crypto

    values = iter(["-abc", "--x", "ok-1"])
    monkeypatch.setattr(crypto.secrets, "token_urlsafe", lambda n: next(values))
    assert crypto.random_id(3) == "ok-1"


def test_b64url_decode_takes_only_the_canonical_unpadded_form() -> None:
    import base64
    import secrets as _secrets

    import pytest

    from idp.crypto import b64url, b64url_decode

    for n in range(0, 40):
        raw = _secrets.token_bytes(n)
        assert b64url_decode(b64url(raw)) == raw
    assert b64url_decode("Zw") == b"g"
    for bad in ("Z-", "Zx", "Zh", "AB", "AAB", "ZmC"):  # unused low bits set (RFC 4648 §3.5)
        assert base64.urlsafe_b64decode(bad + "=" * (-len(bad) % 4)) is not None  # the stdlib takes them
        with pytest.raises(ValueError):
            b64url_decode(bad)
    for bad in ("Zg==", "Zg=", "Z g", "Zg\n", "Z+g", "Z/g", "A", "AAAAA", "Zé"):
        with pytest.raises(ValueError):
            b64url_decode(bad)
