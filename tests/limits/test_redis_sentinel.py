"""Limits on Redis behind Sentinel: a forced failover in the middle of a burst of sends
leaves no 5xx, the service follows the new master without a restart, and the
cooldown and the budget hold afterwards; a master that stops answering is replaced
while the limits are the process's own, which /readyz and the metrics show."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import Counter
from typing import Any

import httpx
import redis
import respx

from app.core.config import DEFAULT_MARKETS
from tests.conftest import ClientFactory
from tests.helpers import SEND, VERIFY, Records, me, retry_after, too_many
from tests.ops.conftest import parse_metrics, sample
from tests.redis_topologies import (
    HOST,
    MASTER_PASSWORD,
    PROTECTED_MASTER_PORT,
    PROTECTED_SENTINEL_PORT,
    SENTINEL_PASSWORD,
    SENTINEL_PORT,
    SERVICE,
    client,
    master_port,
    replicas_seen,
    wait_for,
)
from tests.twilio_fixtures import form, mock_check_accepting, mock_start

US_BUDGET = 30
KG = "+996555123456"
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
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
    readyz: list[httpx.Response] = []
    old_master = master_port()
    async with client_for(**settings) as app:
        first = await app.get("/readyz")
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
            readyz.append(await app.get("/readyz"))
            await asyncio.sleep(0.05)  # the failover's pace, not a condition

        deadline = time.monotonic() + 30
        while (await app.get("/readyz")).json()["checks"]["rate_limit_storage"] != "ok":
            assert time.monotonic() < deadline, "the limits did not return to Redis in 30s"
            await asyncio.sleep(0.2)
        last = await app.get("/readyz")
        cooldown = await _burst(app, before + during)
        budget_hits = _budget_hits(master_port(), prefix)
        fresh = await _burst(app, [f"+1212555{n:04}" for n in range(2000, 2000 + US_BUDGET)])
        metrics = (await app.get("/metrics")).text

    assert master_port() != old_master
    assert first.json()["checks"]["rate_limit_storage"] == "ok"
    assert first.json()["rate_limit_storage"] == {
        "topology": "sentinel",
        "failovers": 0,
        "last_failover_at": None,
    }
    # Ready all along; afterwards /readyz names the failover it saw.
    assert {r.status_code for r in readyz} == {200}
    assert last.json()["status"] == "ok"
    storage = last.json()["rate_limit_storage"]
    assert (storage["topology"], storage["failovers"]) == ("sentinel", 1)
    assert UTC_SECOND.match(storage["last_failover_at"]), storage
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


async def test_a_login_behind_sentinel_with_only_the_storage_url_changed(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    sentinel_url: str,
    app_logs: Records,
) -> None:
    """The default key prefix and limits: `RATE_LIMIT_STORAGE_URL` is the one setting."""
    start = mock_start(twilio)
    check = mock_check_accepting(twilio, "123456")
    master = client(master_port())
    try:
        async with client_for(rate_limit_storage_url=sentinel_url) as app:
            ready = await app.get("/readyz")
            sent = await app.post(SEND, json={"phone": KG})
            again = await app.post(SEND, json={"phone": KG})
            login = await app.post(VERIFY, json={"phone": KG, "verification_code": "123456"})
            user = await me(app, login.json()["access_token"])
        keys = set(master.scan_iter(match="phone-auth:*"))
    finally:
        for key in master.scan_iter(match="phone-auth:*"):
            master.delete(key)

    [starting] = [m for m in app_logs.at(logging.INFO, "app.main") if m.startswith("Starting")]
    assert "rate_limits=redis (sentinel)" in starting
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["rate_limit_storage"] == "ok"
    assert ready.json()["rate_limit_storage"]["topology"] == "sentinel"
    assert sent.status_code == 200, sent.text
    assert again.status_code == 429
    assert again.json() == too_many(retry_after(again, 60))
    assert [form(call.request)["To"] for call in start.calls] == [KG]
    assert login.status_code == 200, login.text
    assert [form(call.request)["Code"] for call in check.calls] == ["123456"]
    assert user.status_code == 200
    assert user.json()["phone"] == KG
    # The windows are on the master the sentinel names.
    assert b"phone-auth:LIMITER/send_per_phone/+996555123456/1/1/minute" in keys


async def test_behind_sentinel_a_send_asks_the_master_once_and_a_check_twice(
    client_for: ClientFactory, twilio: respx.MockRouter, sentinel_url: str
) -> None:
    mock_start(twilio)
    mock_check_accepting(twilio, "123456")
    settings = {
        "rate_limit_storage_url": sentinel_url,
        "rate_limit_key_prefix": f"phone-auth-test-{uuid.uuid4().hex}",
    }
    master = client(master_port())
    async with client_for(**settings) as app:
        # The first request opens a connection (asking the sentinel) and loads the scripts.
        assert (await app.post(SEND, json={"phone": KG})).status_code == 200
        before = _script_calls(master)
        sent = await app.post(SEND, json={"phone": "+996555123457"})
        after_send = _script_calls(master)
        login = await app.post(
            VERIFY, json={"phone": "+996555123457", "verification_code": "123456"}
        )
        after_check = _script_calls(master)

    assert sent.status_code == 200, sent.text
    assert login.status_code == 200, login.text
    # As on one server: the send's eight windows in one call; a check, two.
    assert (after_send - before, after_check - after_send) == (1, 2)


def _script_calls(server: redis.Redis) -> int:
    """Script calls `server` has answered."""
    stats: Any = server.info("commandstats")
    names = ("cmdstat_eval", "cmdstat_evalsha")
    return sum(int(stats[name]["calls"]) for name in names if name in stats)


# The master hangs this long: past the sentinel's 2 s to call it down, and past the 8 s
# (twice its failover-timeout) it may wait after the previous test's failover.
PAUSE_MS = 12000


async def test_a_master_that_stops_answering_is_replaced_while_the_limits_fall_back(
    client_for: ClientFactory, twilio: respx.MockRouter, sentinel_url: str, app_logs: Records
) -> None:
    """Every call to the master hangs (its clients paused): the calls time out, the limits
    become the process's own (/readyz `degraded`, the fallback counted), the sentinel
    promotes the replica, and a health ping finds it, without a restart."""
    start = mock_start(twilio)
    prefix = f"phone-auth-test-{uuid.uuid4().hex}"
    settings = {
        "rate_limit_storage_url": sentinel_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_send_per_ip": "100000/hour",
        # A cooldown longer than the episode, so that it still holds afterwards.
        "rate_limit_send_per_phone": "1/10 minutes",
    }
    before = [f"+99655530{n:04}" for n in range(10)]
    during: list[str] = []
    readyz: list[httpx.Response] = []
    old_master = master_port()
    async with client_for(**settings) as app:
        first = await app.get("/readyz")
        sent = await _burst(app, before)
        assert client(old_master).wait(1, 5000) == 1
        client(old_master).client_pause(PAUSE_MS, all=True)

        # A probe, and each number sent before asking twice at once, while the master hangs.
        probe, hung = await asyncio.gather(app.get("/readyz"), _burst(app, before * 2))
        degraded = parse_metrics((await app.get("/metrics")).text)
        deadline = time.monotonic() + 45
        batch = 0
        while True:
            readyz.append(await app.get("/readyz"))
            body = readyz[-1].json()
            if body["status"] == "ok" and body["rate_limit_storage"]["failovers"] == 1:
                break
            assert time.monotonic() < deadline, f"no return to Redis in 45s: {body}"
            phones = [f"+996554{batch:03}{n:03}" for n in range(5)]
            during += phones
            hung += await _burst(app, phones * 2)
            batch += 1
            await asyncio.sleep(0.3)
        cooldown = await _burst(app, before)
        recovered = parse_metrics((await app.get("/metrics")).text)

    new_master = master_port()
    assert new_master != old_master
    assert first.json()["checks"]["rate_limit_storage"] == "ok"
    assert {a.status_code for a in sent} == {200}
    # No 5xx: the limits were the process's own while the master hung.
    assert {a.status_code for a in hung} <= {200, 429}, Counter(a.status_code for a in hung)
    assert probe.status_code == 200
    assert probe.json()["status"] == "degraded"
    assert probe.json()["checks"]["rate_limit_storage"] == "degraded"
    assert {r.status_code for r in readyz} == {200}
    assert sample(degraded, "phone_auth_rate_limit_storage_degraded") == 1.0
    assert sample(degraded, "phone_auth_rate_limit_fallbacks_total") == 1.0
    assert sample(recovered, "phone_auth_rate_limit_storage_degraded") == 0.0
    assert sample(recovered, "phone_auth_rate_limit_fallbacks_total") == 1.0
    assert sample(recovered, "phone_auth_rate_limit_storage_failovers_total") == 1.0
    storage = readyz[-1].json()["rate_limit_storage"]
    assert UTC_SECOND.match(storage["last_failover_at"]), storage
    # The cooldown: one more code per number at most, the fallback's own allowance; on
    # the new master the codes sent before the episode refuse the numbers again.
    calls = Counter(form(call.request)["To"] for call in start.calls)
    assert all(1 <= calls[p] <= 2 for p in before + during), calls
    assert {a.status_code for a in cooldown} == {429}
    errors = app_logs.at(logging.ERROR, "app.services.limits.windows")
    assert len(errors) == 1
    assert errors[0].startswith("Rate-limit storage unreachable (")
    warnings = app_logs.at(logging.WARNING, "app.services.limits.windows")
    assert (
        f"Rate-limit storage master moved from 127.0.0.1:{old_master} "
        f"to 127.0.0.1:{new_master} (failover)"
    ) in warnings
    assert "Rate-limit storage reachable again; limits are shared again" in warnings

    # The old master comes back as the new one's replica, for the tests after this one.
    wait_for("the old master replicating the new", lambda: _replicating(old_master), 45)
    wait_for("the sentinel seeing the replica", lambda: replicas_seen(SENTINEL_PORT), 45)


def _replicating(port: int) -> bool:
    replication = client(port).info("replication")
    return bool(replication["role"] == "slave" and replication["master_link_status"] == "up")


async def test_a_sentinel_with_a_password_of_its_own(
    client_for: ClientFactory, twilio: respx.MockRouter, protected_sentinel: None
) -> None:
    """`?sentinel_password=` is the sentinels'; without it they are sent the master's."""
    start = mock_start(twilio)
    prefix = f"phone-auth-test-{uuid.uuid4().hex}"
    url = f"redis+sentinel://:{MASTER_PASSWORD}@{HOST}:{PROTECTED_SENTINEL_PORT}/{SERVICE}"
    async with client_for(
        rate_limit_storage_url=f"{url}?sentinel_password={SENTINEL_PASSWORD}",
        rate_limit_key_prefix=prefix,
    ) as app:
        ready = await app.get("/readyz")
        sent = await app.post(SEND, json={"phone": KG})
        again = await app.post(SEND, json={"phone": KG})
    async with client_for(rate_limit_storage_url=url, rate_limit_key_prefix=prefix) as app:
        refused = await app.get("/readyz")
    master = client(PROTECTED_MASTER_PORT, MASTER_PASSWORD)

    assert ready.json()["checks"]["rate_limit_storage"] == "ok"
    assert (sent.status_code, again.status_code) == (200, 429)
    assert start.call_count == 1
    assert master.exists(f"{prefix}:LIMITER/send_per_phone/{KG}/1/1/minute") == 1
    # The master's password is not the sentinel's: no master can be asked for.
    assert refused.status_code == 200
    assert refused.json()["checks"]["rate_limit_storage"] == "degraded"
