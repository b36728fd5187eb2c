"""The names of :mod:`idp.ephemeral`, for the modules that still import them from here.

Delete this module once nothing imports ``idp.store.ephemeral`` (``git grep store.ephemeral``).
"""

from __future__ import annotations

from idp.ephemeral import EphemeralStore, StoreUnavailable

__all__ = ["EphemeralStore", "StoreUnavailable"]
