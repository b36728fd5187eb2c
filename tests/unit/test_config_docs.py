from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_and_configuration_reference_are_current() -> None:
    r = subprocess.run(
        [sys.executable, "scripts/gen_config_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout
    text = (ROOT / ".env.example").read_text()
    for var in ("IDP_ISSUER", "IDP_DATABASE_URL", "IDP_REDIS_URL", "IDP_ACCESS_TOKEN_TTL", "IDP_KEK"):
        assert f"# {var}=" in text
