"""Which address a request came from, behind trusted proxies or not, and the key its
limits are counted under."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# One subscriber holds a whole IPv6 /64 (RFC 6177), so it is one client to the limits.
IPV6_CLIENT_PREFIX = 64


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """Parse `TRUSTED_PROXIES` entries (addresses or CIDR blocks)."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _address(text: str) -> Address | None:
    """The address `text` spells, in a form with one spelling per address; None when
    it is not an address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # A zone (`fe80::1%eth0`) names an interface of whoever wrote it: it is no
        # part of the client's address, and any text may follow the `%`.
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the right-most
    `X-Forwarded-For` address that is not itself a trusted proxy (the left-most
    when every hop is trusted, as uvicorn does). Always an address in its canonical
    form (IPv4-mapped addresses as IPv4, no zone), or None.

    A header sent by anyone else is ignored, so a client cannot choose its address.
    A hop that is not an address is written by an untrusted party or garbled: the
    client is then the nearest trusted proxy, the one that passed it on.
    """
    peer_address = _address(peer) if peer is not None else None
    if peer_address is None:
        return None
    if not trusted or not forwarded_for or not _trusted(peer_address, trusted):
        return str(peer_address)
    nearest = peer_address
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            return str(nearest)
        if not _trusted(address, trusted):
            return str(address)
        nearest = address
    return str(nearest)


def limit_key(ip: str | None) -> str:
    """The key a client's limits are counted under: an IPv4 address, or the /64 an
    IPv6 address belongs to; `-` when the address is unknown."""
    address = _address(ip) if ip is not None else None
    if address is None:
        return "-"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)
