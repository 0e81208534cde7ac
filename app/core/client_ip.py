"""Which address a request came from, behind trusted proxies or not."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """Parse `TRUSTED_PROXIES` entries (addresses or CIDR blocks)."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]
) -> bool:
    return any(address in network for network in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the right-most
    `X-Forwarded-For` address that is not itself a trusted proxy (the left-most
    when every hop is trusted, as uvicorn does).

    A header sent by anyone else is ignored, so a client cannot choose its address.
    """
    if peer is None or not trusted or not forwarded_for:
        return peer
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    first = None
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            # An unreadable hop: nothing left of it can be trusted.
            return peer
        if not _trusted(address, trusted):
            return str(address)
        first = address
    return str(first) if first is not None else peer
