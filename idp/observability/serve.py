"""What ``idp serve`` sets up before uvicorn starts its workers.

* Several workers (or ``IDP_METRICS_PORT``): prometheus-client's multiprocess mode.
  ``PROMETHEUS_MULTIPROC_DIR`` must name an empty directory *before* any worker
  imports prometheus-client; we create a private temporary one unless the operator
  set it (then its stale ``*.db`` files from a previous run are removed).
* ``IDP_METRICS_PORT``: the supervising process serves the merged metrics of every
  worker on ``IDP_METRICS_HOST:IDP_METRICS_PORT`` without authentication.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from idp.observability.metrics import MULTIPROC_ENV


def prepare(workers: int, metrics_port: int) -> str | None:
    """Call first thing in ``serve``; returns the multiprocess directory, if any."""
    if workers <= 1 and not metrics_port:
        return None
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="idp-metrics-")
        atexit.register(shutil.rmtree, path, True)
        os.environ[MULTIPROC_ENV] = path
    return path


def start_metrics_server(settings: Any) -> Any:
    """Serve merged metrics (and the shared-state gauges) on the metrics port, in a daemon thread."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from idp.observability.metrics import StateCollector
    from idp.services import build_services
    from idp.store.stats_repo import SqlStateCounts

    c = build_services(settings)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(StateCollector(c.keyring.rows, c.clock.now, SqlStateCounts(c.sessions)))
    server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    return server
