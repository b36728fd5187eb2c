"""forms.split_pairs is a faster parse_qsl: it must agree with it on every input, errors included."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idp.oauth.forms import MAX_PARAMS, parse_pairs, split_pairs

PIECES = ["a", "b", "=", "&", "+", "%", "%3A", "%20", "%2B", "%26", "%3D", "%00", "%C3%A9", "%ff", "%zz", "é", "\x00"]


def reference(text: str) -> tuple[str, object]:
    try:
        return "ok", parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict")
    except Exception as exc:
        return "error", type(exc)


def ours(text: str) -> tuple[str, object]:
    try:
        return "ok", split_pairs(text)
    except Exception as exc:
        return "error", type(exc)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_agrees_with_parse_qsl(text: str) -> None:
    assert ours(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    ["", "&", "a", "a=", "=b", "&&a=1&", "a=b=c", "a+b=c+d", "x=%ZZ", "x=%C3", "&".join(["a=1"] * MAX_PARAMS)],
)
def test_edge_cases(text: str) -> None:
    assert ours(text) == reference(text)


def test_too_many_fields_is_malformed() -> None:
    assert ours("&".join(["a=1"] * (MAX_PARAMS + 1)))[0] == "error"
    assert reference("&".join(["a=1"] * (MAX_PARAMS + 1)))[0] == "error"


def test_nul_only_from_raw_or_percent_encoded_nul() -> None:
    for bad in ("a=%00", "a=x\x00", "%00=1"):
        with pytest.raises(Exception, match="malformed"):
            parse_pairs(bad)
    assert parse_pairs("a=%2500") == [("a", "%00")]  # an escaped "%" followed by "00" is not NUL
