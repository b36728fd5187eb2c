"""returnTo is only ever a path on the BFF's origin (RFC 9700 §4.11)."""

from __future__ import annotations

import pytest

from idp.bff.returnto import safe_return_to


@pytest.mark.parametrize("value", ["/", "/orders", "/orders?id=7&x=%20y", "/a/b#frag", "/bffx"])
def test_kept(value: str) -> None:
    assert safe_return_to(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None, "", "orders", "//evil.example", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
        "https://evil.example/", "javascript:alert(1)", "/a\r\nSet-Cookie: x=1", "/a\tb", "/a b", "/\x00",
        "/é", "/%2F%2Fevil.example", "/%5Cevil.example", "/%0d%0aX:1", "/bff/login", "/bff", "/" + "a" * 600,
    ],
)  # fmt: skip
def test_refused(value: str | None) -> None:
    assert safe_return_to(value) == "/"
