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
from typing import TYPE_CHECKING

from idp.observability.metrics import MULTIPROC_ENV, Metrics

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer


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


def serve_metrics(metrics: Metrics, *, host: str, port: int) -> WSGIServer:
    """Serve every worker's merged samples and ``metrics``' shared-state gauges, in a daemon thread.

    ``metrics`` is the one the supervising process's services already hold: its state gauges read
    the same keyring and database, so no second object graph is built for them.
    """
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=metrics.merged_registry())
    return server
