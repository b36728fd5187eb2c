"""The key-encryption key: the operator's base64url of 32 bytes, or a 0600 file made on first start."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from idp.keys.kek import KekError, load_or_create_kek, parse_kek

RAW = bytes(range(32))
UNPADDED = base64.urlsafe_b64encode(RAW).rstrip(b"=").decode()


@pytest.mark.parametrize("text", [UNPADDED, UNPADDED + "=", f"  {UNPADDED}\n"])
def test_padded_unpadded_and_surrounding_space_all_read(text: str) -> None:
    assert parse_kek(text, "IDP_KEK") == RAW


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (base64.urlsafe_b64encode(RAW[:16]).decode(), "must decode to 32 bytes, got 16"),
        (base64.urlsafe_b64encode(RAW + b"x").decode(), "must decode to 32 bytes, got 33"),
        ("a" * 45, "not base64url"),
    ],
)
def test_a_malformed_kek_names_its_setting(text: str, message: str) -> None:
    with pytest.raises(KekError, match=f"^IDP_KEK: {message}"):
        parse_kek(text, "IDP_KEK")


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    assert load_or_create_kek(UNPADDED, path) == RAW
    assert not path.exists()


def test_first_start_creates_a_private_file_that_later_starts_read(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek"
    kek = load_or_create_kek("", path)
    assert len(kek) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_kek("", path) == kek


def test_a_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    load_or_create_kek("", path)
    os.chmod(path, 0o640)
    with pytest.raises(KekError, match="readable by others"):
        load_or_create_kek("", path)


def test_without_create_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KekError, match="does not exist"):
        load_or_create_kek("", tmp_path / "kek", create=False)
    assert not (tmp_path / "kek").exists()
