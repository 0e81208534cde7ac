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
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]
) -> bool:
    return any(address in network for network in networks)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the right-most
    `X-Forwarded-For` address that is not itself a trusted proxy.

    A header sent by anyone else is ignored, so a client cannot choose its address.
    """
    if peer is None or not trusted or not forwarded_for:
        return peer
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, trusted):
        return peer
    for hop in reversed(forwarded_for.split(",")):
        address = _address(hop)
        if address is None:
            # An unreadable hop: nothing left of it can be trusted.
            return peer
        if not _trusted(address, trusted):
            return str(address)
    return peer
