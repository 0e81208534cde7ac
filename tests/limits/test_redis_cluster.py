"""Limits on a 3-master Redis Cluster: the same answers as on one server, every
decision's scripts on keys of one slot each, and a market's budget that does not
pin the traffic to one node."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import respx
from limits.aio.storage import RedisClusterStorage
from limits.aio.strategies import MovingWindowRateLimiter

from app.services.limits.steps import Step, parse_limits
from app.services.limits.windows import RateLimiter
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    SEND,
    VERIFY,
    Records,
    kg_budget,
    me,
    race_for_the_last_budget,
    retry_after,
    too_many,
)
from tests.limits.test_redis_limits import answer_as_one_at_a_time
from tests.redis_topologies import CLUSTER_PORTS, client
from tests.twilio_fixtures import form, mock_check, mock_check_accepting, mock_start

KG = "+996555123456"
KG_2 = "+996555123457"


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test alone (the cluster is the session's, thrown away after)."""
    return f"phone-auth-test-{uuid.uuid4().hex}"


def _script_calls() -> int:
    """Script calls answered by all the cluster's masters."""
    total = 0
    for port in CLUSTER_PORTS:
        stats = client(port).info("commandstats")
        total += sum(
            int(stats[name]["calls"])
            for name in ("cmdstat_eval", "cmdstat_evalsha")
            if name in stats
        )
    return total


def _keys_per_node(prefix: str) -> list[list[bytes]]:
    return [list(client(port).scan_iter(match=f"{prefix}*")) for port in CLUSTER_PORTS]


@pytest.mark.parametrize("seed", range(2))
async def test_windows_on_a_cluster_answer_as_one_at_a_time(
    cluster_url: str, prefix: str, seed: int, clock: FakeClock
) -> None:
    await answer_as_one_at_a_time(RateLimiter(cluster_url, prefix, clock=clock), clock, seed)


async def test_limits_own_cluster_storage_shares_the_windows_of_an_identity(
    cluster_url: str, prefix: str
) -> None:
    """`limits`' moving window over its own `RedisClusterStorage`, given the identity's hash
    tag in its key prefix, reads what our scripts wrote, and ours read what it hit."""
    number = ("send_per_phone", KG)
    minute, ten_minutes = items = parse_limits("2/minute;3/10 minutes")
    ours = RateLimiter(cluster_url, prefix)
    storage = RedisClusterStorage(
        cluster_url, implementation="redispy", key_prefix=f"{prefix}:{{send_per_phone/{KG}}}"
    )
    theirs = MovingWindowRateLimiter(storage)
    try:
        assert await ours.run_in_order([Step(item, number, True) for item in items]) is None
        assert [(await theirs.get_window_stats(i, *number)).remaining for i in items] == [1, 2]
        assert await theirs.hit(minute, *number)
        assert not await theirs.test(minute, *number)
        assert await ours.counts(items, *number) == [2, 1]
        assert await ours.run_in_order([Step(ten_minutes, number, True)]) is None
        assert await ours.run_in_order([Step(minute, number, False)]) == 0
        assert (await theirs.get_window_stats(ten_minutes, *number)).remaining == 1
    finally:
        await ours.aclose()
        await storage.bridge.get_connection().aclose()  # type: ignore[attr-defined]


async def test_fifty_concurrent_sends_make_one_twilio_call_on_a_cluster(
    client_for: ClientFactory, twilio: respx.MockRouter, cluster_url: str, prefix: str
) -> None:
    start = mock_start(twilio)
    settings = {
        "rate_limit_storage_url": cluster_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_send_per_ip": "1000/hour",
    }
    async with client_for(**settings) as client_:
        answers = await asyncio.gather(*(client_.post(SEND, json={"phone": KG}) for _ in range(50)))

    assert sorted(a.status_code for a in answers) == [200] + [429] * 49
    assert start.call_count == 1
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json() == too_many(retry_after(answer, 60))


async def test_every_client_limit_on_a_cluster(
    client_for: ClientFactory, twilio: respx.MockRouter, cluster_url: str, prefix: str
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio, "pending")
    settings = {
        "rate_limit_storage_url": cluster_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_send_per_phone": "2/day",
        "rate_limit_send_per_ip": "3/hour",
        "rate_limit_verify_per_ip": "3/hour",
        "rate_limit_verify_per_phone": "1/hour",
    }
    async with client_for(**settings) as client_:
        per_phone = [await client_.post(SEND, json={"phone": KG}) for _ in range(3)]
        per_ip = await client_.post(SEND, json={"phone": KG_2})
        checks = [
            await client_.post(VERIFY, json={"phone": phone, "verification_code": "000000"})
            for phone in (KG_2, KG, KG, KG_2)
        ]

    assert [a.status_code for a in per_phone] == [200, 200, 429]
    assert per_phone[-1].json() == too_many(retry_after(per_phone[-1], 86400))
    assert per_ip.status_code == 429
    assert per_ip.json() == too_many(retry_after(per_ip, 3600))
    assert start.call_count == 2
    assert [c.status_code for c in checks] == [400, 400, 429, 429]
    assert check.call_count == 1


async def test_the_budget_holds_on_a_cluster(
    client_for: ClientFactory, twilio: respx.MockRouter, cluster_url: str, prefix: str
) -> None:
    start = mock_start(twilio)
    settings = {
        "rate_limit_storage_url": cluster_url,
        "rate_limit_key_prefix": prefix,
        "markets": kg_budget("1/hour"),
    }
    async with client_for(**settings) as client_:
        again = await race_for_the_last_budget(client_)

    assert [a.status_code for a in again] == [503] * 9
    assert start.call_count == 1


async def test_a_send_on_a_cluster_takes_one_script_per_identity_spread_over_the_nodes(
    client_for: ClientFactory, twilio: respx.MockRouter, cluster_url: str, prefix: str
) -> None:
    mock_start(twilio)
    settings = {
        "rate_limit_storage_url": cluster_url,
        "rate_limit_key_prefix": prefix,
        "rate_limit_send_per_ip": "1000/hour",
    }
    async with client_for(**settings) as client_:
        assert (await client_.post(SEND, json={"phone": KG})).status_code == 200
        before = _script_calls()
        sent = await client_.post(SEND, json={"phone": KG_2})
        after = _script_calls()
        answers = [
            await client_.post(SEND, json={"phone": f"+9965551000{n:02}"}) for n in range(30)
        ]

    assert sent.status_code == 200, sent.text
    # The client's windows, the number's looked at, the market's budget, the number's taken.
    assert after - before == 4
    assert {a.status_code for a in answers} == {200}
    keys = _keys_per_node(prefix)
    # Every node holds some numbers' windows: the budget's node is not the only one used.
    assert all(keys), [len(k) for k in keys]
    budget = [n for n, node in enumerate(keys) for k in node if b"sms_budget" in k]
    assert len(set(budget)) == 1


async def test_a_check_on_a_cluster_takes_one_script_per_identity(
    client_for: ClientFactory, twilio: respx.MockRouter, cluster_url: str, prefix: str
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    settings = {"rate_limit_storage_url": cluster_url, "rate_limit_key_prefix": prefix}
    async with client_for(**settings) as client_:
        # The first requests learn the slots and load the scripts on the nodes they reach.
        assert (await client_.post(SEND, json={"phone": KG})).status_code == 200
        assert (await client_.post(SEND, json={"phone": KG_2})).status_code == 200
        before = _script_calls()
        checked = await client_.post(VERIFY, json={"phone": KG_2, "verification_code": "123456"})
        after = _script_calls()

    assert checked.status_code == 200, checked.text
    # The client's window, the number's looked at (this client's at the number), then,
    # with a pending code found, the number's taken: 3 round trips, where one server has 2.
    assert after - before == 3


async def test_a_login_on_a_cluster_with_only_the_storage_url_changed(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    cluster_url: str,
    app_logs: Records,
) -> None:
    """The default key prefix and limits: `RATE_LIMIT_STORAGE_URL` is the one setting."""
    start = mock_start(twilio)
    check = mock_check_accepting(twilio, "123456")
    try:
        async with client_for(rate_limit_storage_url=cluster_url) as app:
            ready = await app.get("/readyz")
            sent = await app.post(SEND, json={"phone": KG})
            again = await app.post(SEND, json={"phone": KG})
            wrong = await app.post(VERIFY, json={"phone": KG, "verification_code": "000000"})
            login = await app.post(VERIFY, json={"phone": KG, "verification_code": "123456"})
            user = await me(app, login.json()["access_token"])
        keys = [key for node in _keys_per_node("phone-auth:") for key in node]
    finally:
        for port in CLUSTER_PORTS:
            for key in client(port).scan_iter(match="phone-auth:*"):
                client(port).delete(key)

    [starting] = [m for m in app_logs.at(logging.INFO, "app.main") if m.startswith("Starting")]
    assert "rate_limits=redis (cluster)" in starting
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["rate_limit_storage"] == "ok"
    assert ready.json()["rate_limit_storage"] == {"topology": "cluster"}
    assert sent.status_code == 200, sent.text
    assert again.status_code == 429
    assert again.json() == too_many(retry_after(again, 60))
    assert [form(call.request)["To"] for call in start.calls] == [KG]
    assert wrong.status_code == 400
    assert login.status_code == 200, login.text
    assert login.json()["is_new_user"] is True
    assert [form(call.request)["Code"] for call in check.calls] == ["000000", "123456"]
    assert user.status_code == 200
    assert user.json()["phone"] == KG
    # The windows live on the cluster, each under its identity's hash tag.
    tag = b"phone-auth:{send_per_phone/+996555123456}"
    assert tag + b":LIMITER/send_per_phone/+996555123456/1/1/minute" in keys
    # A check's window at the number is this client's (the test client's address).
    tag = b"phone-auth:{verify_per_phone/+996555123456/127.0.0.1}"
    assert tag + b":LIMITER/verify_per_phone/+996555123456/127.0.0.1/15/1/hour" in keys
