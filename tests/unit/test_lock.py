"""requirements.lock and requirements-runtime.lock cannot drift from pyproject.toml.

Every dependency pyproject.toml names (runtime, the dev extra, the build backend) is pinned in the
lock at a version its specifier allows, every pin carries hashes, and the runtime lock is the same
versions without the dev tools. `scripts/lock.sh` regenerates both after a change.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(name: str) -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of hashes)} of a lock file."""
    out: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        if m := PIN.match(line):
            current = canonicalize_name(m.group(1))
            out[current] = (m.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = out[current]
            out[current] = (version, hashes + 1)
    return out


def requirements(*groups: str) -> list[Requirement]:
    found = []
    for group in groups:
        if group == "runtime":
            found += PYPROJECT["project"]["dependencies"]
        elif group == "build":
            found += PYPROJECT["build-system"]["requires"]
        else:
            found += PYPROJECT["project"]["optional-dependencies"][group]
    return [Requirement(r) for r in found]


@pytest.mark.parametrize(
    ("lock", "groups"),
    [("requirements.lock", ("runtime", "dev", "build")), ("requirements-runtime.lock", ("runtime", "build"))],
)
def test_the_lock_pins_every_dependency_within_its_specifier(lock: str, groups: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for req in requirements(*groups):
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req} is not in {lock}: run scripts/lock.sh"
        version = pinned[name][0]
        assert req.specifier.contains(version, prereleases=True), f"{lock} pins {name}=={version}, outside {req}"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-runtime.lock"])
def test_every_pin_carries_hashes(lock: str) -> None:
    pinned = pins(lock)
    assert pinned
    assert [name for name, (_, hashes) in pinned.items() if hashes == 0] == []


def test_the_runtime_lock_is_the_full_lock_without_the_dev_tools() -> None:
    full, runtime = pins("requirements.lock"), pins("requirements-runtime.lock")
    assert {name: full[name][0] for name in runtime} == {name: v for name, (v, _) in runtime.items()}
    dev_only = {canonicalize_name(r.name) for r in requirements("dev")}
    assert not dev_only & runtime.keys()


def test_the_floors_are_past_published_advisories() -> None:
    """Releases below these have published advisories affecting what idp uses (forms, Host, JOSE)."""
    floors = {canonicalize_name(r.name): r.specifier for r in requirements("runtime")}
    for name, vulnerable in [("starlette", "1.3.0"), ("python-multipart", "0.0.30"), ("authlib", "1.6.11")]:
        assert not floors[name].contains(vulnerable), f"{name} {vulnerable} is still allowed"


def test_setup_installs_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q --require-hashes -r requirements.lock" in makefile
    assert "pip install -q --no-deps --no-build-isolation -e ." in makefile
    assert re.search(r"^\$\(STAMP\):.*requirements\.lock", makefile, flags=re.M), "a new lock must reinstall"
