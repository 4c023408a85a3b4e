"""The address policy as a table: no connection is made by anything here."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from pgqueue.errors import AccessDenied, InvalidFileUrl, StorageUnavailable
from pgqueue.settings import Settings
from pgqueue.storage import fetch
from pgqueue.storage.addresses import (
    AddressPolicy,
    IPAddress,
    allowed_addresses,
    is_public,
    parse_host_literal,
)

STRICT = AddressPolicy()


def no_lookup(host: str, port: int) -> list[IPAddress]:
    raise AssertionError(f"{host!r} is an address literal and must not be looked up")


def check(url: str, policy: AddressPolicy = STRICT) -> list[IPAddress]:
    parsed = httpx.URL(url)
    return allowed_addresses(parsed.raw_host.decode(), parsed.port or 443, policy, no_lookup)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/",
        "https://127.8.9.10/",
        "https://10.1.2.3/",
        "https://172.16.0.1/",
        "https://172.31.255.254/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "https://[fd00::1]/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::10.0.0.1]/",
        "https://[2002:a00:1::]/",
        "https://0.0.0.0/",
        "https://[::]/",
        "https://2130706433/",
        "https://0x7f.1/",
        "https://0x7f000001/",
        "https://127.1/",
        "https://0/",
        "https://224.0.0.1/",
        "https://[ff02::1]/",
        "https://[ff0e::1]/",
        "https://100.64.0.1/",
        "https://255.255.255.255/",
        "https://240.0.0.1/",
    ],
)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(AccessDenied, match="PGQUEUE_ALLOW_PRIVATE_ADDRESSES"):
        check(url)


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("https://93.184.216.34/", "93.184.216.34"),
        ("https://1572395042/", "93.184.216.34"),
        ("https://[2606:2800:220:1:248:1893:25c8:1946]/", "2606:2800:220:1:248:1893:25c8:1946"),
        ("https://[::ffff:93.184.216.34]/", "::ffff:93.184.216.34"),
    ],
)
def test_public_literals_are_allowed_without_lookup(url: str, address: str) -> None:
    assert check(url) == [ipaddress.ip_address(address)]


@pytest.mark.parametrize("url", ["https://0177.0.0.1/", "https://0x7f.0x0.0.1/"])
def test_spellings_httpx_rejects_are_refused_by_fetch_as_well(url: str) -> None:
    with pytest.raises((InvalidFileUrl, AccessDenied)), fetch(url, Settings()):
        pass


def test_allowing_private_addresses_allows_them() -> None:
    allow = AddressPolicy(allow_private=True)
    assert check("https://127.0.0.1/", allow) == [ipaddress.ip_address("127.0.0.1")]
    assert check("https://[fd00::1]/", allow) == [ipaddress.ip_address("fd00::1")]


def test_always_allowed_networks_are_the_only_exception() -> None:
    policy = AddressPolicy(always_allowed=(ipaddress.ip_network("10.20.0.0/16"),))
    assert check("https://10.20.3.4/", policy) == [ipaddress.ip_address("10.20.3.4")]
    with pytest.raises(AccessDenied):
        check("https://10.21.3.4/", policy)


def test_every_resolved_address_is_checked() -> None:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")]

    with pytest.raises(AccessDenied, match=r"files\.example points to 10\.0\.0\.1"):
        allowed_addresses("files.example", 443, STRICT, resolve)


def test_a_name_that_resolves_to_public_addresses_only_is_allowed() -> None:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("2606:4700::1111")]

    assert len(allowed_addresses("files.example", 443, STRICT, resolve)) == 2


def test_a_name_with_no_address_is_transient() -> None:
    with pytest.raises(StorageUnavailable):
        allowed_addresses("files.example", 443, STRICT, lambda host, port: [])


@pytest.mark.parametrize(
    "host",
    [
        "256.1.1.1",
        "1.2.3.4.5",
        "0x100.1.1.1",
        "09.1.1.1",
        "4294967296",
        "fe80::1%eth0",
        "a..b",
        "under score!",
        ":::",
    ],
)
def test_malformed_hosts_are_invalid(host: str) -> None:
    with pytest.raises(InvalidFileUrl):
        allowed_addresses(host, 443, STRICT, no_lookup)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("1.2.3.4.", "1.2.3.4"),
        ("files.example", None),
        ("1.2.3.example", None),
    ],
)
def test_host_literals_in_every_ipv4_spelling(host: str, expected: str | None) -> None:
    literal = parse_host_literal(host)
    assert literal == (ipaddress.ip_address(expected) if expected else None)


def test_embedded_ipv4_forms_are_judged_by_the_ipv4_address() -> None:
    assert not is_public(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))
    assert is_public(ipaddress.ip_address("64:ff9b::5db8:d822"))
