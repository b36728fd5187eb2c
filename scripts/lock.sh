#!/usr/bin/env bash
# Regenerate the hashed lock files from pyproject.toml (needs uv: `pip install uv`).
#
#   scripts/lock.sh                  # re-resolve within the current pins
#   scripts/lock.sh --upgrade        # newest releases allowed by pyproject.toml
#
# requirements.lock          runtime + dev extras + the build backend: `make venv` and CI install it
# requirements-runtime.lock  runtime + the build backend, the same versions: the Dockerfile installs it
#
# Both are resolved for every platform (--universal) on Python 3.11, with the hash of every
# published file, and installed with `pip install --require-hashes`. Extra arguments go to
# both `uv pip compile` runs. tests/unit/test_lock.py checks that they match pyproject.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UV=${UV:-uv}
build=$(python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')
common=(--universal --python-version 3.11 --generate-hashes --quiet --custom-compile-command scripts/lock.sh)
printf '%s\n' "$build" | "$UV" pip compile "${common[@]}" pyproject.toml - --extra dev -o requirements.lock "$@"
printf '%s\n' "$build" | "$UV" pip compile "${common[@]}" pyproject.toml - -c requirements.lock \
  -o requirements-runtime.lock "$@"
