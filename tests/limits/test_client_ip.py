"""Which address counts as the client: the socket peer, or what a trusted proxy says."""

from __future__ import annotations

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.client_ip import client_ip, parse_networks
from tests.conftest import ClientFactory
from tests.helpers import (
    AS_PROXY,
    CODE,
    LOGOUT,
    REFRESH,
    SEND,
    VERIFY,
    bearer,
    event_rows,
    from_ip,
    new_phone,
    retry_after,
    too_many,
    verifications,
)
from tests.twilio_fixtures import form, mock_approving, mock_check, mock_start

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
        # A garbage hop where a proxy's entry should be: trust nothing left of it; the
        # client is the nearest trusted proxy, the one that passed the garbage on.
        ("10.0.0.5", "203.0.113.9, garbage", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.9, 10.1.2.3, ", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.9, garbage, 10.1.2.3", "10.1.2.3"),
        ("10.0.0.5", "203.0.113.9, 2001:db8::1:2:3:4:5:6:7, 10.1.2.3", "10.1.2.3"),
        ("10.0.0.5", "203.0.113.9:443, 10.1.2.3", "10.1.2.3"),
        # Every hop a trusted proxy: the client is inside; the left-most hop, as uvicorn.
        ("10.0.0.5", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
        # IPv6 peers and hops.
        ("2001:db8:ffff::1", "2001:db8:1::7", "2001:db8:1::7"),
        ("2001:db8:ffff::1", "2001:DB8:1:0:0:0:0:7", "2001:db8:1::7"),
        ("2001:db8:ffff::1", "203.0.113.9, 2001:db8:ffff::2", "203.0.113.9"),
        ("10.0.0.5", "2001:db8:1::7", "2001:db8:1::7"),
        ("2001:db8:1::7", "203.0.113.9", "2001:db8:1::7"),
        # The canonical form, whoever wrote the address: no zone, IPv4 unwrapped.
        ("10.0.0.5", "fe80::1%" + "x" * 38, "fe80::1"),
        ("10.0.0.5", "::ffff:cb00:7109%eth0", "203.0.113.9"),
        ("2001:DB8:0001::0007%eth0", None, "2001:db8:1::7"),
        ("::ffff:198.51.100.7", "203.0.113.9", "198.51.100.7"),
    ],
)
def test_client_ip(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_ip("10.0.0.5", "203.0.113.9", ()) == "10.0.0.5"


def test_no_peer() -> None:
    assert client_ip(None, "203.0.113.9", PROXIES) is None


def test_unreadable_peer_is_no_address() -> None:
    """Only addresses reach the limits, Twilio and the audit trail."""
    assert client_ip("testclient", "203.0.113.9", PROXIES) is None
    assert client_ip("x" * 46, None, ()) is None


# One IPv6 address, spelled ten ways.
IPV6_SPELLINGS = [
    "2001:db8:1:2::7",
    "2001:DB8:1:2::7",
    "2001:0db8:0001:0002:0000:0000:0000:0007",
    "2001:db8:1:2:0:0:0:7",
    "2001:db8:1:2:0::7",
    "2001:0DB8:0001:0002::0007",
    "2001:db8:1:2:0:0:0.0.0.7",
    "2001:db8:1:2::7%eth0",
    "2001:db8:1:2::7%" + "1" * 30,
    " 2001:db8:1:2::7 ",
]
# One IPv4 address, plain and in its IPv4-mapped IPv6 forms.
IPV4_SPELLINGS = [
    "203.0.113.9",
    "::ffff:203.0.113.9",
    "::FFFF:CB00:7109",
    "0:0:0:0:0:ffff:203.0.113.9",
    "0000:0000:0000:0000:0000:ffff:cb00:7109",
    "::ffff:cb00:7109%eth0",
]


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [(IPV6_SPELLINGS, "2001:db8:1:2::7"), (IPV4_SPELLINGS, "203.0.113.9")],
    ids=["ipv6", "ipv4-mapped"],
)
def test_every_spelling_of_an_address_is_one_client(spellings: list[str], canonical: str) -> None:
    assert {client_ip("10.0.0.5", spelling, PROXIES) for spelling in spellings} == {canonical}
    assert {client_ip(spelling, None, ()) for spelling in spellings} == {canonical}


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [(IPV6_SPELLINGS, "2001:db8:1:2::7"), (IPV4_SPELLINGS, "203.0.113.9")],
    ids=["ipv6", "ipv4-mapped"],
)
async def test_every_spelling_of_an_address_shares_one_limit(
    client_for: ClientFactory, twilio: respx.MockRouter, spellings: list[str], canonical: str
) -> None:
    start = mock_start(twilio)
    async with client_for(**AS_PROXY, rate_limit_send_per_ip="2/hour") as client:
        answers = [
            await client.post(SEND, json={"phone": new_phone()}, headers=from_ip(spelling))
            for spelling in spellings
        ]

    assert [a.status_code for a in answers] == [200, 200] + [429] * (len(spellings) - 2)
    assert [form(call.request)["DeviceIp"] for call in start.calls] == [canonical] * 2


LIMITED_PER_CLIENT = [
    pytest.param(SEND, "rate_limit_send_per_ip", id="send"),
    pytest.param(VERIFY, "rate_limit_verify_per_ip", id="verify"),
]


@pytest.mark.parametrize(("path", "setting"), LIMITED_PER_CLIENT)
async def test_an_ipv6_client_is_limited_per_64(
    client_for: ClientFactory, twilio: respx.MockRouter, path: str, setting: str
) -> None:
    """A subscriber gets a whole /64: another address in it is the same client, an
    address in the next /64 is another."""
    start = mock_start(twilio)
    mock_check(twilio, "pending")
    async with client_for(**AS_PROXY, **{setting: "1/hour"}) as client:

        async def post(address: str) -> httpx.Response:
            body = {"phone": new_phone(), "verification_code": CODE}
            return await client.post(path, json=body, headers=from_ip(address))

        first = await post("2001:db8:1:2::1")
        same_64 = await post("2001:db8:1:2:ffff:ffff:ffff:ffff")
        same_64_again = await post("2001:db8:1:2:1234::99")
        next_64 = await post("2001:db8:1:3::1")
        previous_64 = await post("2001:db8:1:1:ffff:ffff:ffff:ffff")

    assert first.status_code != 429, first.text
    assert same_64.status_code == 429
    assert same_64_again.status_code == 429
    assert next_64.status_code != 429, next_64.text
    assert previous_64.status_code != 429, previous_64.text
    if path == SEND:
        # Twilio's Fraud Guard still sees each whole address.
        assert [form(call.request)["DeviceIp"] for call in start.calls] == [
            "2001:db8:1:2::1",
            "2001:db8:1:3::1",
            "2001:db8:1:1:ffff:ffff:ffff:ffff",
        ]


async def test_ipv4_clients_are_limited_per_address(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    async with client_for(**AS_PROXY, rate_limit_send_per_ip="1/hour") as client:
        answers = [
            await client.post(SEND, json={"phone": new_phone()}, headers=from_ip(address))
            for address in ["203.0.113.1", "203.0.113.2", "203.0.113.1"]
        ]

    assert [a.status_code for a in answers] == [200, 200, 429]


# Hops a trusted proxy may pass on, and the client each stands for.
GARBAGE_HOPS = [
    pytest.param("fe80::1%" + "x" * 38, "fe80::1", id="46-chars-with-a-zone"),
    pytest.param("x" * 46, "127.0.0.1", id="46-chars-not-an-address"),
    pytest.param("2001:db8::1:2:3:4:5:6:7:8", "127.0.0.1", id="nine-groups"),
    pytest.param("203.0.113.9:5555", "127.0.0.1", id="with-a-port"),
]


@pytest.mark.parametrize(("hop", "expected"), GARBAGE_HOPS)
async def test_a_garbage_hop_from_a_trusted_proxy_is_never_stored(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    db_engine: AsyncEngine,
    hop: str,
    expected: str,
) -> None:
    """The audit trail's column holds an address: a login, a refresh and a logout each
    succeed and record the canonical address, and the code is spent only by the login."""
    start, _ = mock_approving(twilio)
    headers = from_ip(hop)
    async with client_for(**AS_PROXY) as client:
        sent = await client.post(SEND, json={"phone": KG}, headers=headers)
        assert sent.status_code == 200, sent.text
        verified = await client.post(
            VERIFY, json={"phone": KG, "verification_code": CODE}, headers=headers
        )
        assert verified.status_code == 200, verified.text
        refreshed = await client.post(
            REFRESH, json={"refresh_token": verified.json()["refresh_token"]}, headers=headers
        )
        assert refreshed.status_code == 200, refreshed.text
        logged_out = await client.post(
            LOGOUT, headers={**headers, **bearer(refreshed.json()["access_token"])}
        )
        assert logged_out.status_code == 204, logged_out.text

    assert form(start.calls.last.request)["DeviceIp"] == expected
    events = await event_rows(db_engine)
    assert [(e["event"], e["client_ip"]) for e in events] == [
        ("login", expected),
        ("refresh", expected),
        ("logout", expected),
    ]
    assert [v.status for v in await verifications(db_engine)] == ["approved"]


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
