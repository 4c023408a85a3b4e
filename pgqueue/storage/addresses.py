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
_PRIVATE_SETTING = "PGQUEUE_ALLOW_PRIVATE_ADDRESSES"


@dataclass(frozen=True)
class AddressPolicy:
    """What a link may reach. ``from_settings`` is what production uses."""

    allow_private: bool = False
    allow_http: bool = False
    always_allowed: tuple[IPNetwork, ...] = ()
    """Networks allowed even when private addresses are not (a known internal file server)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressPolicy:
        # Plain http is for local test servers only, so it rides on the same switch.
        allow = settings.allow_private_addresses
        return cls(allow_private=allow, allow_http=allow)

    def permits(self, address: IPAddress) -> bool:
        if self.allow_private or any(address in network for network in self.always_allowed):
            return True
        return is_public(address)


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is an ordinary public unicast address, judging embedded IPv4 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
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
        if not policy.permits(address):
            shown = host if literal is None else "the link"
            raise AccessDenied(
                f"{shown} points to {address}, a loopback, private, link-local or otherwise "
                f"non-public address; such links are refused unless {_PRIVATE_SETTING} is on"
            )
    return addresses
