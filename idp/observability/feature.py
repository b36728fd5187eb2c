"""Prometheus metrics at ``/metrics``."""

from __future__ import annotations

from idp.feature import Feature
from idp.observability import endpoint

METRICS = Feature(name="metrics", routes=endpoint.ROUTES)
