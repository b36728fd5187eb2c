"""``idp.resource.__all__`` is the package's public API: resource servers code against it.

The set is pinned here so that adding, renaming or dropping a name is a deliberate change (and a
note to integrators), not a side effect of a refactoring.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import idp.resource

ROOT = Path(__file__).resolve().parents[3]

PUBLIC = {
    "AccessTokenVerifier",
    "AuthError",
    "AuthRequirement",
    "BearerAuthMiddleware",
    "ClientCredentials",
    "ClientSecret",
    "DenyListFollower",
    "HmacNonces",
    "Introspector",
    "JwksCache",
    "MemoryReplayCache",
    "Principal",
    "PrivateKeyJwt",
    "RedisReplayCache",
    "ResourceProtector",
    "TokenInvalid",
    "principal_of",
    "requires_auth",
    "requires_scope",
}


def test_all_is_the_pinned_public_api() -> None:
    assert len(idp.resource.__all__) == len(set(idp.resource.__all__)), "a name is listed twice"
    assert set(idp.resource.__all__) == PUBLIC


def test_every_listed_name_is_importable_from_the_package() -> None:
    namespace: dict[str, object] = {}
    exec("from idp.resource import *", namespace)  # the star import a resource server may write
    assert namespace.keys() >= PUBLIC


def test_nothing_public_in_the_package_is_left_out_of_all() -> None:
    public = {
        name
        for name, value in vars(idp.resource).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(idp.resource.__all__)


def test_what_the_guides_and_examples_import_is_public() -> None:
    star = re.compile(r"^\s*from idp\.resource import ([\w, ]+)$", re.M)
    sources = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*.py")]
    imported = {name.strip() for path in sources for m in star.finditer(path.read_text()) for name in m[1].split(",")}
    assert imported, "the guides no longer import from idp.resource: update this test"
    assert imported <= PUBLIC
