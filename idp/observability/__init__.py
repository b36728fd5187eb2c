"""Operability: request ids, structured access logs, Prometheus metrics, audit queries.

Nothing here is on the protocol path: if a metric or a log line cannot be
written, the request still succeeds.
"""
