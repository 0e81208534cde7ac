"""Limits on Redis behind Sentinel: a forced failover in the middle of a burst of sends
leaves no 5xx, the service follows the new master without a restart, and the
cooldown and the budget hold afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import respx

from app.core.config import DEFAULT_MARKETS
from tests.conftest import ClientFactory
from tests.helpers import SEND, Records
from tests.redis_topologies import SENTINEL_PORT, SERVICE, client, master_port
from tests.twilio_fixtures import form, mock_start

US_BUDGET = 30
MARKETS = {
    "KG": DEFAULT_MARKETS["KG"].model_copy(update={"sms_budget": "100000/hour"}),
    "US": DEFAULT_MARKETS["US"].model_copy(update={"sms_budget": f"{US_BUDGET}/hour"}),
}


async def _burst(app: httpx.AsyncClient, phones: list[str]) -> list[httpx.Response]:
    return await asyncio.gather(*(app.post(SEND, json={"phone": p}) for p in phones))


async def test_a_sentinel_failover_during_a_burst_of_sends(
    client_for: ClientFactory, twilio: respx.MockRouter, sentinel_url: str, app_logs: Records
) -> None:
    start = mock_start(twilio)
    prefix = f"phone-auth-test-{uuid.uuid4().hex}"
    settings = {
        "rate_limit_storage_url": sentinel_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_send_per_ip": "100000/hour",
        "markets": MARKETS,
    }
    before = [f"+99655520{n:04}" for n in range(20)]
    us_before = [f"+1212555{n:04}" for n in range(1000, 1010)]
    during: list[str] = []
    answers: list[httpx.Response] = []
    old_master = master_port()
    async with client_for(**settings) as app:
        assert (await app.get("/readyz")).json()["checks"]["rate_limit_storage"] == "ok"
        answers += await _burst(app, before + us_before)
        # What was sent before the failover has reached the replica.
        assert client(old_master).wait(1, 5000) == 1

        assert client(SENTINEL_PORT).sentinel_failover(SERVICE)
        deadline = time.monotonic() + 30
        batch, after_it = 0, 0
        # Sends (each number twice, at once) until the sentinel names the new master and
        # has turned the old one into its replica (writes there fail: READONLY, or the
        # connection is closed), and a few batches after.
        while after_it < 3:
            assert time.monotonic() < deadline, "no failover in 30s"
            phones = [f"+996553{batch:03}{n:03}" for n in range(10)]
            during += phones
            answers += await _burst(app, phones * 2)
            batch += 1
            after_it += master_port() != old_master and _role(old_master) == "slave"
            await asyncio.sleep(0.05)  # the failover's pace, not a condition

        deadline = time.monotonic() + 30
        while (await app.get("/readyz")).json()["checks"]["rate_limit_storage"] != "ok":
            assert time.monotonic() < deadline, "the limits did not return to Redis in 30s"
            await asyncio.sleep(0.2)
        cooldown = await _burst(app, before + during)
        budget_hits = _budget_hits(master_port(), prefix)
        fresh = await _burst(app, [f"+1212555{n:04}" for n in range(2000, 2000 + US_BUDGET)])
        metrics = (await app.get("/metrics")).text

    assert master_port() != old_master
    statuses = Counter(a.status_code for a in answers + cooldown + fresh)
    assert set(statuses) <= {200, 429, 503}, statuses
    assert not [a for a in answers + cooldown if a.status_code >= 500]
    # The cooldown: numbers sent before the failover are refused after it; a number sent
    # during it was sent at most twice (once more while this process was on its fallback).
    assert {a.status_code for a in cooldown[: len(before)]} == {429}
    calls = Counter(form(call.request)["To"] for call in start.calls)
    assert all(calls[p] == 1 for p in before)
    assert all(1 <= calls[p] <= 2 for p in during), calls
    # The US budget on the new master kept the sends counted before the failover, and
    # refuses exactly past it.
    assert budget_hits == len(us_before)
    assert Counter(a.status_code for a in fresh) == {
        200: US_BUDGET - len(us_before),
        503: len(us_before),
    }
    assert "phone_auth_rate_limit_storage_failovers_total 1.0" in metrics
    warnings = " ".join(app_logs.at(30, "app.services.limits.windows"))
    assert f"master moved from 127.0.0.1:{old_master} to 127.0.0.1:" in warnings


def _role(port: int) -> str:
    return str(client(port).info("replication")["role"])


def _budget_hits(port: int, prefix: str) -> int:
    """Sends counted in the US budget on the server on `port`."""
    redis = client(port)
    [key] = list(redis.scan_iter(match=f"{prefix}:*sms_budget/US*"))
    return int(redis.llen(key))
