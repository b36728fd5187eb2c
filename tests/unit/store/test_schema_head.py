"""The schema check at start-up reads one constant instead of importing alembic: keep it the real head."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory

from idp.store.db import SCHEMA_HEAD, alembic_config


def test_schema_head_is_the_newest_migration() -> None:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head == SCHEMA_HEAD, "a new migration was added: set idp.store.db.SCHEMA_HEAD to its revision"


def test_serving_does_not_import_alembic() -> None:
    code = "import sys, idp.app, idp.cli; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
