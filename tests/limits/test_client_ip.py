"""Which address counts as the client: the socket peer, or what a trusted proxy says."""

from __future__ import annotations

import pytest
import respx

from app.core.client_ip import client_ip, parse_networks
from tests.conftest import ClientFactory
from tests.helpers import SEND, from_ip, retry_after, too_many
from tests.twilio_fixtures import form, mock_start

KG = "+996555123456"
KG_2 = "+996555123457"

PROXIES = parse_networks(["10.0.0.0/8", "192.0.2.1", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # No header, or no trusted proxies: the socket peer.
        ("10.0.0.5", None, "10.0.0.5"),
        ("10.0.0.5", "", "10.0.0.5"),
        # A peer outside the trusted proxies: its header is ignored.
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),
        ("198.51.100.7", "203.0.113.9, 10.0.0.1", "198.51.100.7"),
        # A trusted peer: the right-most address that is not a trusted proxy.
        ("10.0.0.5", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "1.1.1.1, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "1.1.1.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        ("10.0.0.5", "1.1.1.1,203.0.113.9,10.1.2.3,192.0.2.1", "203.0.113.9"),
        ("192.0.2.1", "  203.0.113.9  ", "203.0.113.9"),
        # Garbage written by the client left of the real address is never reached.
        ("10.0.0.5", "not-an-ip, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.5", "unknown, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
        # A garbage hop where a proxy's entry should be: trust nothing left of it.
        ("10.0.0.5", "203.0.113.9, garbage", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.9, 10.1.2.3, ", "10.0.0.5"),
        # Every hop a trusted proxy: the client is inside; the left-most hop, as uvicorn.
        ("10.0.0.5", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
        # IPv6 peers and hops.
        ("2001:db8:ffff::1", "2001:db8:1::7", "2001:db8:1::7"),
        ("2001:db8:ffff::1", "2001:DB8:1:0:0:0:0:7", "2001:db8:1::7"),
        ("2001:db8:ffff::1", "203.0.113.9, 2001:db8:ffff::2", "203.0.113.9"),
        ("10.0.0.5", "2001:db8:1::7", "2001:db8:1::7"),
        ("2001:db8:1::7", "203.0.113.9", "2001:db8:1::7"),
    ],
)
def test_client_ip(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.5", "203.0.113.9", ()) == "10.0.0.5"


def test_no_peer() -> None:
    assert client_ip(None, "203.0.113.9", PROXIES) is None


def test_unreadable_peer_is_not_trusted() -> None:
    assert client_ip("testclient", "203.0.113.9", PROXIES) == "testclient"


async def test_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(rate_limit_send_per_ip="1/hour") as client:
        first = await client.post(SEND, json={"phone": KG}, headers=from_ip("203.0.113.1"))
        second = await client.post(SEND, json={"phone": KG_2}, headers=from_ip("203.0.113.2"))

    assert first.status_code == 200
    assert form(start.calls.last.request)["DeviceIp"] == "127.0.0.1"
    # The per-IP limit still sees one client, 127.0.0.1.
    assert second.status_code == 429
    assert second.json() == too_many(retry_after(second, 3600))
    assert start.call_count == 1


async def test_forwarded_for_ignored_when_the_peer_is_not_a_listed_proxy(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(trusted_proxies=["10.0.0.0/8"]) as client:
        sent = await client.post(SEND, json={"phone": KG}, headers=from_ip("203.0.113.1"))

    assert sent.status_code == 200
    assert form(start.calls.last.request)["DeviceIp"] == "127.0.0.1"


async def test_behind_trusted_proxies_the_right_most_untrusted_address_is_the_client(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    settings = {"trusted_proxies": ["127.0.0.1", "10.0.0.0/8"], "rate_limit_send_per_ip": "1/hour"}
    async with client_for(**settings) as client:
        # The client wrote its own header; the proxies appended what they saw.
        first = await client.post(
            SEND, json={"phone": KG}, headers=from_ip("1.2.3.4, 203.0.113.5, 10.0.0.7")
        )
        # Same client, another made-up left part: still 203.0.113.5, still limited.
        second = await client.post(
            SEND, json={"phone": KG_2}, headers=from_ip("5.6.7.8, 203.0.113.5, 10.0.0.7")
        )

    assert first.status_code == 200
    assert form(start.calls.last.request)["DeviceIp"] == "203.0.113.5"
    assert second.status_code == 429
    assert start.call_count == 1


async def test_forwarded_for_split_over_several_header_lines(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """Several header lines are one comma-separated list (RFC 9110 5.3)."""
    start = mock_start(twilio)
    async with client_for(trusted_proxies=["127.0.0.1"]) as client:
        sent = await client.post(
            SEND,
            json={"phone": KG},
            headers=[("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "203.0.113.5")],
        )

    assert sent.status_code == 200
    assert form(start.calls.last.request)["DeviceIp"] == "203.0.113.5"


def test_ipv4_mapped_peer_of_a_trusted_proxy() -> None:
    assert client_ip("::ffff:10.0.0.5", "203.0.113.9", PROXIES) == "203.0.113.9"
