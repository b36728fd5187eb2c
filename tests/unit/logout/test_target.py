"""Where a logout token may go: private, link-local, metadata and loopback receivers refused unless allowed,
and the connection made to the address that was vetted; the backoff's shape."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from idp.logout.sender import BACKOFF_CAP, backoff
from idp.logout.target import TargetRefused, classify, resolve


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.215.14", "public"), ("2606:4700::1111", "public"),
        ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
        ("169.254.169.254", "private"), ("fe80::1", "private"), ("100.64.0.1", "private"), ("fd00:ec2::254", "private"),
        ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "private"),
        ("0.0.0.0", "forbidden"), ("::", "forbidden"), ("224.0.0.1", "forbidden"), ("255.255.255.255", "forbidden"),
        ("240.0.0.1", "forbidden"),
    ],
)  # fmt: skip
def test_addresses_are_classified(address: str, kind: str) -> None:
    assert classify(ipaddress.ip_address(address)) == kind


def fake_dns(*addresses: str):  # type: ignore[no-untyped-def]
    def getaddrinfo(host, port, type=0):  # type: ignore[no-untyped-def]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in addresses]

    return getaddrinfo


def test_a_public_name_is_pinned_to_its_vetted_address() -> None:
    t = resolve("https://rp.example:8443/bcl?x=1", allow_private=False, allow_loopback=False,
                getaddrinfo=fake_dns("93.184.215.14"))  # fmt: skip
    assert t.url == "https://93.184.215.14:8443/bcl?x=1" and t.host == "rp.example:8443" and t.sni == "rp.example"


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    with pytest.raises(TargetRefused, match="private"):  # DNS rebinding: every answer must be allowed
        resolve("https://rp.example/bcl", allow_private=False, allow_loopback=False,
                getaddrinfo=fake_dns("93.184.215.14", "10.0.0.5"))  # fmt: skip


@pytest.mark.parametrize("uri", ["https://169.254.169.254/latest", "http://[fd00:ec2::254]/", "https://10.0.0.1/"])
def test_metadata_and_private_literals_are_refused_unless_allowed(uri: str) -> None:
    with pytest.raises(TargetRefused):
        resolve(uri, allow_private=False, allow_loopback=True)
    assert resolve(uri, allow_private=True, allow_loopback=False).sni in (None, "169.254.169.254", "10.0.0.1")


def test_loopback_needs_its_own_permission() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        resolve("http://127.0.0.1:9000/bcl", allow_private=True, allow_loopback=False)
    t = resolve("http://[::1]:9000/bcl", allow_private=False, allow_loopback=True)
    assert t.url == "http://[::1]:9000/bcl" and t.sni is None


def test_unspecified_and_multicast_are_never_allowed() -> None:
    for uri in ("http://0.0.0.0/", "https://224.0.0.1/"):
        with pytest.raises(TargetRefused):
            resolve(uri, allow_private=True, allow_loopback=True)


def test_an_unresolvable_name_is_refused_without_raising_anything_else() -> None:
    def failing(*_a, **_k):  # type: ignore[no-untyped-def]
        raise socket.gaierror("nope")

    with pytest.raises(TargetRefused, match="resolve"):
        resolve("https://nowhere.invalid/", allow_private=False, allow_loopback=False, getaddrinfo=failing)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    assert [backoff(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert [backoff(n, lambda: 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]  # the lower half of each step
    assert backoff(40, lambda: 1.0) == BACKOFF_CAP
