"""The address policy as a table: no connection is made by anything here."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import httpx
import pytest

from pgqueue.errors import AccessDenied, InvalidFileUrl, StorageUnavailable
from pgqueue.settings import Settings, SettingsError, load_settings
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
    with pytest.raises(AccessDenied, match=r"PGQUEUE_ALLOW_HOSTS|always refused"):
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


def test_the_deprecated_switch_still_allows_private_addresses() -> None:
    allow = AddressPolicy.from_settings(Settings(allow_private_addresses=True))
    assert allow.allow_http
    assert check("https://127.0.0.1/", allow) == [ipaddress.ip_address("127.0.0.1")]
    assert check("https://[fd00::1]/", allow) == [ipaddress.ip_address("fd00::1")]


def test_allowed_networks_are_the_only_exception() -> None:
    policy = AddressPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))
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


# --- allowlists (issue 20, item 6) ------------------------------------------------------------

METADATA = [
    "169.254.169.254",
    "169.254.170.2",
    "fd00:ec2::254",
    "fd20:ce::254",
    "100.100.100.200",
    "168.63.129.16",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "fe80::1",
    "169.254.1.1",
]
EVERYTHING = "0.0.0.0/0,::/0,169.254.0.0/16,fe80::/10,fd00::/8,100.64.0.0/10,168.63.129.16"


def resolving_to(address: str) -> Callable[[str, int], list[IPAddress]]:
    def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(address)]

    return resolve


@pytest.mark.parametrize("address", METADATA)
@pytest.mark.parametrize(
    "settings",
    [
        Settings(allow_hosts=EVERYTHING),
        Settings(allow_hosts="metadata.internal,files.example"),
        Settings(allow_private_addresses=True),
    ],
    ids=["every-network-listed", "the-name-listed", "deprecated-switch"],
)
def test_metadata_and_link_local_addresses_are_refused_whatever_is_allowed(
    address: str, settings: Settings
) -> None:
    policy = AddressPolicy.from_settings(settings)
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(AccessDenied, match="always refused"):
        check(f"https://{literal}/latest/meta-data/", policy)
    with pytest.raises(AccessDenied, match="always refused"):
        allowed_addresses("metadata.internal", 443, policy, resolving_to(address))


def test_a_listed_network_opens_only_that_network() -> None:
    policy = AddressPolicy.from_settings(Settings(allow_hosts="10.20.0.0/16,fd12:3456::/32"))
    assert check("https://10.20.3.4/", policy) == [ipaddress.ip_address("10.20.3.4")]
    assert check("https://[fd12:3456::9]/", policy) == [ipaddress.ip_address("fd12:3456::9")]
    assert check("https://[::ffff:10.20.3.4]/", policy)
    for other in ("https://10.21.3.4/", "https://127.0.0.1/", "https://192.168.1.1/"):
        with pytest.raises(AccessDenied, match="PGQUEUE_ALLOW_HOSTS"):
            check(other, policy)


def test_a_listed_name_opens_that_name_only() -> None:
    policy = AddressPolicy.from_settings(Settings(allow_hosts="MinIO.lan."))
    private = resolving_to("192.168.1.20")
    assert allowed_addresses("minio.lan", 9000, policy, private) == [
        ipaddress.ip_address("192.168.1.20")
    ]
    with pytest.raises(AccessDenied, match="PGQUEUE_ALLOW_HOSTS"):
        allowed_addresses("nas.lan", 443, policy, private)


def test_the_allowlist_does_not_open_plain_http() -> None:
    assert not AddressPolicy.from_settings(Settings(allow_hosts="10.0.0.0/8")).allow_http
    assert AddressPolicy.from_settings(Settings(allow_http=True)).allow_http


@pytest.mark.parametrize("address", ["fec0::1", "feff::1", "fec0::a00:1"])
def test_site_local_ipv6_counts_as_private(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(AccessDenied, match="PGQUEUE_ALLOW_HOSTS"):
        check(f"https://[{address}]/")
    opened = AddressPolicy.from_settings(Settings(allow_hosts="fec0::/10"))
    assert check(f"https://[{address}]/", opened)


@pytest.mark.parametrize("entry", ["not a host", "10.0.0.0/33", "a..b", "http://x"])
def test_a_malformed_allowlist_entry_stops_start_up(entry: str) -> None:
    with pytest.raises(SettingsError, match="PGQUEUE_ALLOW_HOSTS"):
        load_settings(environ={"PGQUEUE_ALLOW_HOSTS": f"minio.lan,{entry}"})
