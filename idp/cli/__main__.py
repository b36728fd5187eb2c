"""``python -m idp.cli``: the same as the ``idp`` console script."""

from __future__ import annotations

import sys

from idp.cli import main

sys.exit(main())
