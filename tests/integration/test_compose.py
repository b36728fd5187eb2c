"""docker-compose.yml and Dockerfile, checked without a Docker engine.

``docker-compose config`` (Compose v1, Debian's ``docker-compose`` package, which
scripts/test-setup.sh installs) validates, interpolates and normalises the file
without talking to an engine. Its output is YAML; PyYAML is not a project
dependency, so it is parsed with PyYAML when importable, else with the Python
interpreter docker-compose itself runs on (Compose v1 depends on PyYAML).

Missing tools skip locally and fail when ``CI`` is set. The Dockerfile checks
are plain text and always run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import _unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

TEST_KEK = "test-kek-from-the-environment-not-a-real-key"
SERVICES = ("postgres", "redis", "idp")
# a 32-byte key in base64/base64url (43-44 chars) or hex (64 chars) written out literally
KEY_LITERAL = re.compile(r"(?<![\w$/+-])(?:[A-Za-z0-9_+/-]{43}={0,2}|[0-9a-fA-F]{64})(?![\w/+-])")


def _missing(what: str) -> None:
    _unavailable(f"{what} (scripts/test-setup.sh installs it)")


def _compose_bin() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        _missing("docker-compose is not installed")
    return path


def _compose(compose_bin: str, env_file: Path, *args: str, kek: str | None = TEST_KEK):
    # Start from a clean slate: no IDP_*/COMPOSE_* from the caller, an empty --env-file so
    # a developer's .env cannot change the result, and IDP_KEK only when asked for.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "COMPOSE_"))}
    if kek is not None:
        env["IDP_KEK"] = kek
    cmd = [compose_bin, "--env-file", str(env_file), "--project-directory", str(ROOT)]
    return subprocess.run(
        [*cmd, "-f", str(COMPOSE_FILE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _load_yaml(text: str, compose_bin: str) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    shebang = Path(compose_bin).read_bytes()[:256].split(b"\n", 1)[0].decode(errors="replace")
    if shebang.startswith("#!") and "python" in shebang:
        proc = subprocess.run(
            [
                *shlex.split(shebang[2:]),
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
            ],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode == 0:
            return json.loads(proc.stdout)
    _missing("no YAML parser: PyYAML is not importable and docker-compose is not a Python script")
    return None


@pytest.fixture(scope="module")
def compose_bin() -> str:
    return _compose_bin()


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def config(compose_bin: str, env_file: Path) -> dict[str, Any]:
    proc = _compose(compose_bin, env_file, "config")
    assert proc.returncode == 0, proc.stderr
    return _load_yaml(proc.stdout, compose_bin)


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, Any]:
    return config["services"]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    out = []
    for line in logical:
        if not line:
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


# --- docker-compose config ----------------------------------------------------------------


def test_compose_config_is_valid(compose_bin: str, env_file: Path) -> None:
    proc = _compose(compose_bin, env_file, "config", "-q")
    assert proc.returncode == 0, proc.stderr


def test_compose_requires_kek_from_environment(compose_bin: str, env_file: Path) -> None:
    proc = _compose(compose_bin, env_file, "config", "-q", kek=None)
    assert proc.returncode != 0, "compose must refuse to run without IDP_KEK"
    assert "IDP_KEK" in proc.stderr


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        check = services[name].get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable"), f"{name} has no healthcheck"
        assert test[0] != "NONE", f"{name} disables its healthcheck"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]
    assert "ping" in services["redis"]["healthcheck"]["test"]
    assert "/healthz" in " ".join(services["idp"]["healthcheck"]["test"])


def test_idp_waits_for_healthy_postgres_and_redis(services: dict[str, Any]) -> None:
    depends = services["idp"]["depends_on"]
    assert isinstance(depends, dict), "use the long depends_on form with conditions"
    for name in ("postgres", "redis"):
        assert depends[name]["condition"] == "service_healthy", name


def test_idp_environment(services: dict[str, Any]) -> None:
    env = services["idp"]["environment"]
    db = urlsplit(env["IDP_DATABASE_URL"])
    assert db.scheme in ("postgresql", "postgres") and db.hostname == "postgres"
    redis = urlsplit(env["IDP_REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis"
    assert env["IDP_KEK"] == TEST_KEK, "IDP_KEK must come from the host environment"
    issuer = urlsplit(env["IDP_ISSUER"])
    assert issuer.scheme == "https" and issuer.netloc, "default issuer must be an https URL"
    assert env["IDP_DEMO"] == "false", "a deployment creates no demo and prints no secret"


def test_idp_trusts_the_forwarded_address_from_the_network_gateway(config: dict[str, Any]) -> None:
    """The TLS proxy's connections arrive from the gateway: without trusting it, every client would share one
    address for the per-address limits."""
    env = config["services"]["idp"]["environment"]
    gateways = [pool["gateway"] for pool in config["networks"]["default"]["ipam"]["config"]]
    assert env["IDP_TRUSTED_PROXIES"] in gateways


def test_postgres_data_is_on_a_volume(services: dict[str, Any]) -> None:
    assert services["postgres"]["image"].startswith("postgres:16")
    volumes = services["postgres"].get("volumes") or []
    assert any("/var/lib/postgresql/data" in str(v) for v in volumes)


def _fixed_host_port(port: Any) -> bool:
    if isinstance(port, dict):  # long syntax (Compose v2 normalises to this)
        return str(port.get("published") or "").isdigit()
    parts = str(port).split("/", 1)[0].split(":")
    host = parts[-2] if len(parts) >= 2 else ""
    return host.isdigit()


def test_idp_can_be_scaled(services: dict[str, Any]) -> None:
    idp = services["idp"]
    assert "container_name" not in idp, "container_name prevents --scale"
    fixed = [p for p in idp.get("ports") or [] if _fixed_host_port(p)]
    assert not fixed, f"fixed host ports collide between replicas: {fixed}"
    assert idp.get("build"), "idp is built from this repository"


# --- plain-text checks ------------------------------------------------------------------


def test_compose_file_hardcodes_no_kek() -> None:
    text = COMPOSE_FILE.read_text()
    values = re.findall(r"^\s*-?\s*IDP_KEK\s*[:=]\s*(.*)$", text, flags=re.M)
    assert values, "idp must receive IDP_KEK"
    for value in values:
        assert re.fullmatch(r"""["']?\$\{IDP_KEK(?::?[?-][^}]*)?\}["']?""", value.strip()), value
    assert not KEY_LITERAL.findall(text), "key-like literal in docker-compose.yml"


def test_dockerfile_runs_as_non_root_with_healthcheck() -> None:
    instructions = _dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    assert froms and froms[0].split()[0] == "python:3.11-slim"

    users = [args.split(":")[0] for word, args in instructions if word == "USER"]
    assert users, "Dockerfile needs a USER instruction"
    assert users[-1] not in ("root", "0"), "final USER must not be root"

    checks = [args for word, args in instructions if word == "HEALTHCHECK"]
    assert checks and not checks[-1].upper().startswith("NONE")
    assert "http://127.0.0.1:8000/healthz" in checks[-1]

    assert any(word == "EXPOSE" and "8000" in args.split() for word, args in instructions)
    runs = " ".join(args for word, args in instructions if word == "RUN")
    assert "pip install --no-cache-dir --require-hashes -r requirements-runtime.lock" in runs  # the hashed lock
    assert "pip install --no-cache-dir --no-deps --no-build-isolation ." in runs  # nothing unhashed on top
    start = " ".join(args for word, args in instructions if word in ("ENTRYPOINT", "CMD"))
    assert "idp db upgrade" in start and "idp serve" in start and "0.0.0.0" in start


def test_image_bakes_in_no_secrets() -> None:
    instructions = _dockerfile_instructions()
    for word, args in instructions:
        if word in ("ENV", "ARG"):
            assert "IDP_KEK" not in args and "PASSWORD" not in args.upper(), args
    assert not KEY_LITERAL.findall(DOCKERFILE.read_text())
    ignored = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    assert {".env", ".git", ".venv", "data"} <= ignored
    assert "keys" in ignored or "keys/*" in ignored
