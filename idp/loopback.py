"""Loopback hosts: where plain http is allowed (the issuer, RFC 8252 §7.3 native redirects, local demos)."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal (IPv6 in brackets or not); no name resolution."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
