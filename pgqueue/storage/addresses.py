"""Which network addresses a file link may reach, so a job row cannot become a way into the network.

A host is resolved once; every address it resolves to must be allowed, and the caller then
connects to one of exactly those addresses (never resolving the name again), so a name that
answers differently a moment later (DNS rebinding) cannot slip past the check.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pgqueue.errors import AccessDenied, InvalidFileUrl, StorageUnavailable
from pgqueue.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[IPAddress]]
"""Turns ``(host name, port)`` into the addresses a connection may use."""

# Translators that carry an IPv4 address inside an IPv6 one: the packet ends up at the IPv4
# address, so that is the address to judge.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")

# WHATWG URL hosts and inet_aton agree that a host made of numbers only is an IPv4 address in
# one of several spellings (2130706433, 0x7f.1, 0177.0.0.1); treating it as a name would let
# such a spelling bypass a check that only knows dotted quads.
_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$", re.IGNORECASE)
_HOSTS_SETTING = "PGQUEUE_ALLOW_HOSTS"

# Cloud metadata and host services: they hand out credentials to whoever asks from inside the
# instance, so no setting opens them (link-local as a whole is refused as well).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, Azure, GCP, Oracle, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "fd20:ce::254",  # GCP over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a public address)
    )
)
# Private networks the deprecated all-or-nothing setting opened (and still opens, as an alias).
_LEGACY_PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
        "::1/128", "fc00::/7", "fec0::/10",
    )
)


@dataclass(frozen=True)
class AddressPolicy:
    """What a link may reach. ``from_settings`` is what production uses.

    Public unicast addresses are always allowed. Others only when their network is in
    ``allowed_networks`` or the link's host name is in ``allowed_names``; metadata, link-local,
    unspecified and multicast addresses never are.
    """

    allow_http: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_names: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in settings.allow_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry)
        if settings.allow_private_addresses:
            networks.extend(_LEGACY_PRIVATE)
        return cls(
            allow_http=settings.allow_http or settings.allow_private_addresses,
            allowed_networks=tuple(networks),
            allowed_names=frozenset(names),
        )

    def permits(self, address: IPAddress, host: str = "") -> bool:
        if is_forbidden(address):
            return False
        if is_public(address):
            return True
        judged = _judged(address)
        if any(judged in network or address in network for network in self.allowed_networks):
            return True
        return host.lower().rstrip(".") in self.allowed_names


def is_forbidden(address: IPAddress) -> bool:
    """Whether no setting may open ``address``: metadata, link-local, unspecified, multicast."""
    judged = _judged(address)
    return (
        address in METADATA_ADDRESSES
        or judged in METADATA_ADDRESSES
        or judged.is_link_local
        or judged.is_unspecified
        or judged.is_multicast
    )


def _judged(address: IPAddress) -> IPAddress:
    """The address a packet really goes to: the IPv4 one inside an IPv6 form, if any."""
    if isinstance(address, ipaddress.IPv6Address):
        return embedded_ipv4(address) or address
    return address


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is an ordinary public unicast address, judging embedded IPv4 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.is_site_local:  # fec0::/10: deprecated, but still routed inside some sites
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address in METADATA_ADDRESSES
    )


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def parse_host_literal(host: str) -> IPAddress | None:
    """The address a URL host spells directly, or ``None`` when the host is a name.

    Accepts IPv6 without brackets, and IPv4 in every spelling inet_aton accepts. A host made of
    numbers that is not a valid address is refused rather than looked up as a name.
    """
    if ":" in host:
        if "%" in host:
            raise InvalidFileUrl(f"IPv6 zone identifiers are not allowed in links: {host!r}")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidFileUrl(f"not a valid IPv6 address: {host!r}") from None
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts = parts[:-1]
    if not all(_NUMERIC_PART.match(part) for part in parts):
        return None
    numbers = [_parse_number(part, host) for part in parts]
    if len(numbers) > 4:
        raise InvalidFileUrl(f"not a valid IPv4 address: {host!r}")
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise InvalidFileUrl(f"not a valid IPv4 address: {host!r}")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _parse_number(part: str, host: str) -> int:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part)
    except ValueError:
        raise InvalidFileUrl(f"not a valid IPv4 address: {host!r}") from None


def resolve_system(host: str, port: int) -> list[IPAddress]:
    """Resolve with the operating system, keeping its preference order, without duplicates."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StorageUnavailable(f"host {host!r} did not resolve: {exc.strerror}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        # A scope id (fe80::1%eth0) is dropped: the address alone decides the policy.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def allowed_addresses(
    host: str, port: int, policy: AddressPolicy, resolve: Resolver = resolve_system
) -> list[IPAddress]:
    """The addresses ``host`` may be reached at, all checked; raise if any one is refused.

    Every address must pass, not just the first: the client may fall back to any of them.
    """
    literal = parse_host_literal(host)
    if literal is None:
        if not _HOST_NAME.match(host):
            raise InvalidFileUrl(f"not a valid host name: {host!r}")
        addresses = list(resolve(host, port))
        if not addresses:
            raise StorageUnavailable(f"host {host!r} resolved to no address")
    else:
        addresses = [literal]
    for address in addresses:
        if not policy.permits(address, host):
            shown = host if literal is None else "the link"
            if is_forbidden(address):
                raise AccessDenied(
                    f"{shown} points to {address}, a metadata, link-local, multicast or "
                    "unspecified address; such links are always refused"
                )
            raise AccessDenied(
                f"{shown} points to {address}, a loopback, private or otherwise non-public "
                f"address; such links are refused unless {_HOSTS_SETTING} lists the host "
                "or its network"
            )
    return addresses
