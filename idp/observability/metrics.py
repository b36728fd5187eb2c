"""Prometheus metrics (prometheus-client).

Counters and histograms live in a per-container registry. With several uvicorn
workers, ``PROMETHEUS_MULTIPROC_DIR`` must be set before the workers start
(``idp serve`` does it, see :mod:`idp.observability.serve`): every worker then
writes its samples to files there and a scrape of any worker merges all of them.

State that every instance shares (signing keys, deny-list size, live sessions
and grants) is read from the database at scrape time by :class:`StateCollector`,
so it is the same whichever worker answers and needs no cross-process merging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from idp.clients.model import GRANT_TYPES

log = logging.getLogger("idp.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0, 86_400.0)
LOGOUT_RESULTS = ("sent", "failed", "dead", "retried")
CLIENT_TYPES = frozenset({"web", "native", "service"})
MAX_CHILDREN = 4096  # label sets are bounded (route templates x methods x statuses); this is a safety net
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# Audit actions -> the dedicated counters (every action is also counted in idp_audit_events_total).
LOGIN_RESULTS = {
    "login": "success",
    "login.succeeded": "success",
    "login.failed": "failure",
    "login.throttled": "throttled",
}
# Replays that revoke what was issued: RFC 9700 §4.14.2 (refresh reuse), RFC 6749 §4.1.2 (code reuse).
REFRESH_REUSE = "refresh_token_reuse"
CODE_REPLAY = "authorization_code_replay"
# Audit action -> revocation kind; deny-list additions are labelled by entry kind (jti, subject, session, client, kid).
REVOCATION_KINDS = {
    "grant_revoked": "grant",
    REFRESH_REUSE: "grant",
    CODE_REPLAY: "grant",
    "session.ended": "session",
    "deny.added": "deny",
}


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The counters the HTTP middleware and the audit listener feed."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._state: list[Collector] = []
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._token_children: dict[tuple[str, str], Any] = {}  # bounded: 5 grants x 4 client types
        r = self.registry
        self.requests = Counter(
            "idp_http_requests_total", "HTTP requests by route template, method and status.",
            ["endpoint", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "idp_http_request_duration_seconds", "Time to the end of the response, by route template.",
            ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "idp_tokens_issued_total", "Successful token responses by grant type and client type.",
            ["grant_type", "client_type"], registry=r,
        )  # fmt: skip
        self.refresh_reuse = Counter(
            "idp_refresh_reuse_detected_total", "Rotated refresh tokens presented again (the family was revoked).",
            registry=r,
        )  # fmt: skip
        self.code_replays = Counter(
            "idp_code_replays_detected_total", "Authorization codes presented twice.", registry=r
        )
        self.revocations = Counter(
            "idp_revocations_total",
            "Grants revoked, sessions ended and deny-list entries added, by kind.",
            ["kind"],
            registry=r,
        )
        self.logins = Counter("idp_logins_total", "Sign-in attempts by result.", ["result"], registry=r)
        self.audit_events = Counter("idp_audit_events_total", "Audit events by action.", ["action"], registry=r)
        self.logout_deliveries = Counter(
            "idp_backchannel_logout_deliveries_total",
            "Back-channel logout attempts by result: sent (200/204), failed (to be retried), dead (past the retry "
            "horizon), retried (dead deliveries an operator sent again).",
            ["result"], registry=r,
        )  # fmt: skip
        self.logout_latency = Histogram(
            "idp_backchannel_logout_delivery_seconds",
            "From the end of the session to the client's 200/204, per delivered logout token.",
            buckets=DELIVERY_BUCKETS, registry=r,
        )  # fmt: skip

    # -- feeding ---------------------------------------------------------------------------------
    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        key = (endpoint, method, status)
        children = self._children.get(key)
        if children is None:  # labels() validates and locks: resolve each label set once
            if len(self._children) > MAX_CHILDREN:
                self._children.clear()
            children = self._children[key] = (
                self.requests.labels(endpoint, method, str(status)),
                self.latency.labels(endpoint, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def token_issued(self, grant_type: str, client_type: str | None) -> None:
        grant = grant_type if grant_type in GRANT_TYPES else "other"
        kind = client_type if client_type in CLIENT_TYPES else "unknown"
        child = self._token_children.get((grant, kind))
        if child is None:
            child = self._token_children[(grant, kind)] = self.tokens.labels(grant, kind)
        child.inc()

    def logout_delivery(self, result: str, latency: float | None = None, n: int = 1) -> None:
        """A back-channel logout attempt's ``result`` (:data:`LOGOUT_RESULTS`); ``latency`` for a delivered one."""
        self.logout_deliveries.labels(result if result in LOGOUT_RESULTS else "failed").inc(n)
        if latency is not None:
            self.logout_latency.observe(max(0.0, latency))

    def login_throttled(self) -> None:
        self.logins.labels("throttled").inc()

    def audit_event(self, action: str, detail: dict[str, Any]) -> None:
        """Listener for :class:`idp.store.audit_repo.SqlAuditLog`: audit actions are code constants (bounded)."""
        action = action[:64]
        self.audit_events.labels(action).inc()
        if action in LOGIN_RESULTS:
            self.logins.labels(LOGIN_RESULTS[action]).inc()
        if action == REFRESH_REUSE:
            self.refresh_reuse.inc()
        elif action == CODE_REPLAY:
            self.code_replays.inc()
        kind = REVOCATION_KINDS.get(action)
        if kind == "deny":
            entry = detail.get("kind")
            kind = f"deny_{entry}" if entry in ("jti", "subject", "session", "client", "kid") else "deny_other"
        if kind is not None:
            self.revocations.labels(kind).inc()

    # -- exposing --------------------------------------------------------------------------------
    def add_state(self, collector: Collector) -> None:
        self._state.append(collector)
        if not multiprocess_enabled():
            self.registry.register(collector)

    def render(self) -> bytes:
        """The exposition text. Blocking (state collectors query the database)."""
        if not multiprocess_enabled():
            return generate_latest(self.registry)
        return generate_latest(self.merged_registry())

    def merged_registry(self) -> CollectorRegistry:
        """Every worker's samples (multiprocess mode) and the shared-state gauges, read at each collection."""
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in self._state:
            registry.register(collector)
        return registry


class StateCollector(Collector):
    """Gauges computed from shared state at scrape time."""

    def __init__(
        self,
        keys: Callable[[], Iterable[Any]],
        now: Callable[[], float],
        counts: Callable[[float], dict[str, dict[str, int]]] | None = None,
    ) -> None:
        self._keys = keys
        self._now = now
        self._counts = counts

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time; no fixed description

    def collect(self) -> Iterator[Metric]:
        now = self._now()
        states = GaugeMetricFamily("idp_signing_keys", "Signing keys by algorithm and state.", labels=["alg", "state"])
        ages = GaugeMetricFamily(
            "idp_signing_key_age_seconds",
            "Age of each published signing key since it was created (alert when the active one is older than the "
            "rotation period).",
            labels=["kid", "alg", "state"],
        )
        errors = GaugeMetricFamily("idp_state_scrape_errors", "1 when the shared state could not be read.")
        failed = 0
        try:
            tally: dict[tuple[str, str], int] = {}
            for row in self._keys():
                tally[(row.alg, row.state)] = tally.get((row.alg, row.state), 0) + 1
                if row.state in ("next", "active", "retired"):
                    ages.add_metric([row.kid, row.alg, row.state], max(0.0, now - row.created_at))
            for (alg, state), n in sorted(tally.items()):
                states.add_metric([alg, state], n)
        except Exception:
            log.exception("cannot read signing keys for metrics")
            failed = 1
        yield states
        yield ages
        if self._counts is not None:
            try:
                counts = self._counts(now)
            except Exception:
                log.exception("cannot read state counts for metrics")
                counts, failed = {}, 1
            deny = GaugeMetricFamily("idp_denylist_entries", "Live deny-list entries by kind.", labels=["kind"])
            for kind, n in sorted(counts.get("deny", {}).items()):
                deny.add_metric([kind], n)
            yield deny
            sessions = GaugeMetricFamily("idp_login_sessions_active", "Live login sessions.")
            sessions.add_metric([], counts.get("sessions", {}).get("active", 0))
            yield sessions
            grants = GaugeMetricFamily("idp_grants_active", "Unrevoked, unexpired refresh-token families.")
            grants.add_metric([], counts.get("grants", {}).get("active", 0))
            yield grants
            outbox = GaugeMetricFamily(
                "idp_backchannel_logout_queue",
                "Back-channel logout outbox rows by state (due: pending and due now).",
                labels=["state"],
            )
            for state, n in sorted(counts.get("logout_outbox", {}).items()):
                outbox.add_metric([state], n)
            yield outbox
        errors.add_metric([], failed)
        yield errors
