"""Where a logout token may be sent: the receiver's address is resolved and vetted before each POST, and the
connection goes to the address that was vetted (no second resolution a DNS rebinding could answer).

Refused unless an operator allows them: private (RFC 1918, IPv6 ULA), shared (RFC 6598), link-local (which
holds the cloud metadata service, 169.254.169.254 and fd00:ec2::254), and loopback addresses; always refused:
unspecified, multicast, reserved and broadcast ones. IPv4-mapped IPv6 is judged as the IPv4 address it maps.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class TargetRefused(Exception):
    """The receiver cannot be sent to; the message names the reason (no secret in it)."""


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the vetted address in place of the host name
    host: str  # the Host header
    sni: str | None  # the TLS server name (and the name the certificate must match); None for plain http


def classify(ip: IPAddress) -> str:
    """``public``, ``loopback``, ``private`` or ``forbidden``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return "loopback"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip == ipaddress.IPv4Address("255.255.255.255"):
        return "forbidden"
    if ip in METADATA or ip.is_link_local or ip.is_private or not ip.is_global:
        return "private"  # is_private covers RFC 1918, ULA, documentation ranges; not is_global: RFC 6598 too
    return "public"


def allowed(ip: IPAddress, *, allow_private: bool, allow_loopback: bool) -> bool:
    kind = classify(ip)
    return kind == "public" or (kind == "private" and allow_private) or (kind == "loopback" and allow_loopback)


def resolve(uri: str, *, allow_private: bool, allow_loopback: bool, getaddrinfo: object = socket.getaddrinfo) -> Target:
    """The vetted target of ``uri`` (blocking: a DNS lookup). Every address the name resolves to must be
    allowed; the first is used."""
    parts = urlsplit(uri)
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise TargetRefused("not an http(s) URI with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = getaddrinfo(host, port, type=socket.SOCK_STREAM)  # type: ignore[operator]
        except OSError as exc:
            raise TargetRefused(f"cannot resolve the host ({exc.__class__.__name__})") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
        if not addresses:
            raise TargetRefused("the host resolves to no address")
    for ip in addresses:
        if not allowed(ip, allow_private=allow_private, allow_loopback=allow_loopback):
            raise TargetRefused(f"the host resolves to a {classify(ip)} address ({ip}), not allowed")
    ip = addresses[0]
    netloc = (f"[{ip}]" if ip.version == 6 else str(ip)) + f":{port}"
    host_header = parts.netloc.rpartition("@")[2]
    url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return Target(url=url, host=host_header, sni=host if parts.scheme == "https" else None)
