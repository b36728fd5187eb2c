"""Mutation testing of the security modules with mutmut (``make mutate``; a command, not part of CI).

    make mutate                                   # every module below, one after the other
    make mutate MODULES='idp/tokens/refresh.py'   # one module
    make mutate MUTATE_ARGS=--survivors            # after adding tests: re-run only the mutants that survived
    .venv/bin/mutmut show <mutant name>            # the diff of one mutant (after a run)

Each module is mutated against its own tests only (``TESTS``), on the embedded backend (no PostgreSQL,
Redis, browser or real-time tests): mutmut runs those once to learn which test covers which function, then
runs, for every mutant, only the tests that reach the mutated function. The mutated tree lives in
``mutants/`` (git-ignored); results are cached there, so a second run re-checks only what changed.

The score printed per module is killed / (killed + survived + no tests); timeouts count as killed.
Survivors judged equivalent (no test can tell them from the original) are listed with the reason in
docs/mutation.md. Exit status: 1 when a module scores below ``--min`` (default 90).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

# The tests that target each module. Kept small and fast (unit tests first): a mutant is run against those of
# them that reach it, and a surviving one against all of those.
TESTS: dict[str, list[str]] = {
    "idp/oauth/grants/pkce.py": [
        "tests/unit/oauth/test_pkce.py",
        "tests/unit/oauth/test_rules.py",
        "tests/unit/oauth/grants",
        "tests/integration/test_pkce.py",
    ],
    "idp/clients/model.py": [
        "tests/unit/clients",
        "tests/unit/oauth/test_rules.py",
        "tests/integration/test_redirect_uri.py",
    ],
    "idp/tokens/jwt.py": [
        "tests/unit/tokens/test_jwt_sign.py",
        "tests/unit/tokens/test_jwt_checks.py",
        "tests/unit/tokens/test_jwt_verify.py",
    ],
    "idp/tokens/codes.py": ["tests/unit/tokens/test_codes.py", "tests/integration/test_code_replay.py"],
    "idp/sessions/csrf.py": ["tests/unit/sessions/test_csrf.py", "tests/integration/test_csrf.py"],
    "idp/tokens/refresh.py": [
        "tests/unit/tokens/test_refresh.py",
        "tests/unit/tokens/test_refresh_records.py",
        "tests/unit/tokens/test_refresh_revocation.py",
    ],
    "idp/resource/verifier.py": ["tests/unit/resource"],
    "idp/oauth/client_auth.py": [
        "tests/unit/oauth/test_client_auth.py",
        "tests/unit/oauth/test_rules.py",
        "tests/integration/test_wrong_auth_method.py",
        "tests/integration/test_private_key_jwt.py",
        "tests/integration/test_client_credentials.py",
        "tests/integration/test_token_errors.py",
    ],
    "idp/oauth/authorize.py": [
        "tests/unit/oauth/test_authorize.py",
        "tests/integration/test_authorize_errors.py",
        "tests/integration/test_authorize_resume.py",
    ],
    "idp/denylist/denyset.py": ["tests/unit/denylist/test_denyset.py"],
    "idp/denylist/entries.py": ["tests/unit/denylist/test_entries.py", "tests/unit/denylist/test_denyset.py"],
    "idp/users/throttle.py": ["tests/unit/users/test_throttle.py", "tests/integration/test_throttle.py"],
    "idp/web/pages/forms.py": [
        "tests/unit/web/test_forms.py",
        "tests/integration/test_csrf.py",
        "tests/integration/test_login_flow.py",
        "tests/integration/test_login_attempt.py",
    ],
}

KILLED = {"killed", "timeout", "caught by type check", "segfault"}
COUNTED = KILLED | {"survived", "no tests", "suspicious"}


def _mutmut(module: str, max_children: int, survivors_only: bool) -> None:
    """Run mutmut in this process on ``module`` alone, with that module's tests as the selection."""
    from mutmut import __main__ as mutmut_main
    from mutmut import configuration

    # Mutants are generated for every file of [tool.mutmut] only_mutate (a file generated unmutated once would
    # stay so); the run is narrowed to this module's mutants by name, and the stats run to its tests.
    base = configuration.config()
    configuration._config = dataclasses.replace(base, pytest_add_cli_args_test_selection=list(TESTS[module]))
    names = [module.removesuffix(".py").replace("/", ".") + ".*"]
    if survivors_only and (Path("mutants") / (module + ".meta")).exists():
        # After adding tests: a killed mutant stays killed, so only the others (and any mutmut reset to
        # "not checked" because the tests that reach it changed) are run again.
        names = [line.split(":")[0] for line in _score(module)[1] + _score(module)[3]] or names
    try:
        mutmut_main.cli(["run", "--max-children", str(max_children), *names], standalone_mode=False)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise


def _score(module: str) -> tuple[float, list[str], dict[str, int], list[str]]:
    """(score, the mutants not killed, counts by status, the mutants not checked)."""
    from mutmut.stats import status_by_exit_code

    meta = Path("mutants") / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    counts: dict[str, int] = {}
    survivors, unchecked = [], []
    for name, code in sorted(codes.items()):
        status = status_by_exit_code[code]
        counts[status] = counts.get(status, 0) + 1
        if status in COUNTED - KILLED:
            survivors.append(f"{name}: {status}")
        elif status not in KILLED:
            unchecked.append(name)
    counted = sum(n for s, n in counts.items() if s in COUNTED)
    killed = sum(n for s, n in counts.items() if s in KILLED)
    return (100.0 * killed / counted if counted else 100.0), survivors, counts, unchecked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=list(TESTS), help="source files (default: all of TESTS)")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--min", type=float, default=90.0, help="lowest acceptable score, in percent")
    parser.add_argument(
        "--survivors", action="store_true", help="re-run only the mutants the last run did not kill (after new tests)"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # internal: run one module here
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in TESTS]
    if unknown:
        parser.error(f"not configured in scripts/mutate.py TESTS: {', '.join(unknown)}")
    if args.one:
        _mutmut(args.modules[0], args.max_children, args.survivors)
        return 0
    # The mutated copy in mutants/ must be what the tests import, never a source tree on PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    low = []
    for module in args.modules:
        # One process per module: mutmut keeps its configuration and state in module globals.
        cmd = [sys.executable, "-P", __file__, "--one", "--max-children", str(args.max_children), module]
        cmd += ["--survivors"] if args.survivors else []
        if subprocess.run(cmd, env=env, check=False).returncode != 0:  # noqa: S603 (our own argv, no shell)
            print(f"\n{module}: mutmut failed")
            low.append(module)
            continue
        score, survivors, counts, unchecked = _score(module)
        print(f"\n{module}: {score:.1f}% killed  {counts}")
        for line in survivors:
            print(f"    {line}")
        if unchecked:
            print(f"    ({len(unchecked)} mutants not checked: run again)")
        if score < args.min or unchecked:
            low.append(module)
    if low:
        print(f"\nbelow {args.min:.0f}%: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
