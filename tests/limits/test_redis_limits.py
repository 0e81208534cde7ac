"""Limits on Redis: atomic under concurrency, shared by replicas, and surviving its outage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis
import respx
from limits.errors import StorageError

from app.core.metrics import Metrics
from app.services.limits.steps import Step, parse_limits
from app.services.limits.windows import RateLimiter
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import (
    SEND,
    VERIFY,
    Records,
    kg_budget,
    race_for_the_last_budget,
    retry_after,
    too_many,
)
from tests.twilio_fixtures import form, mock_check, mock_start

KG = "+996555123456"
KG_2 = "+996555123457"
CLOSED_PORT = "redis://127.0.0.1:1"


@pytest.mark.redis
async def test_fifty_concurrent_sends_make_one_twilio_call_on_redis(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    settings = {
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        "rate_limit_send_per_ip": "1000/hour",
    }
    async with client_for(**settings) as client:
        answers = await asyncio.gather(*(client.post(SEND, json={"phone": KG}) for _ in range(50)))

    assert sorted(a.status_code for a in answers) == [200] + [429] * 49
    assert start.call_count == 1
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json() == too_many(retry_after(answer, 60))


@pytest.mark.redis
async def test_replicas_share_the_limits_through_redis(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    settings = {"rate_limit_storage_url": redis_url, "rate_limit_key_prefix": key_prefix}
    async with client_for(**settings) as one, client_for(**settings) as two:
        first = await one.post(SEND, json={"phone": KG})
        second = await two.post(SEND, json={"phone": KG})

    assert first.status_code == 200, first.text
    assert second.status_code == 429
    wait = retry_after(second, 60)
    assert wait >= 55
    assert second.json() == too_many(wait)
    assert start.call_count == 1


@pytest.mark.redis
async def test_every_client_limit_on_redis(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    check = mock_check(twilio, "pending")
    settings = {
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        "rate_limit_send_per_phone": "2/day",
        "rate_limit_send_per_ip": "3/hour",
        "rate_limit_verify_per_ip": "3/hour",
        "rate_limit_verify_per_phone": "1/hour",
    }
    async with client_for(**settings) as client:
        per_phone = [await client.post(SEND, json={"phone": KG}) for _ in range(3)]
        # Every attempt counts for the client, refused ones too.
        per_ip = await client.post(SEND, json={"phone": KG_2})
        checks = [
            await client.post(VERIFY, json={"phone": phone, "verification_code": "000000"})
            for phone in (KG_2, KG, KG, KG_2)
        ]

    assert [a.status_code for a in per_phone] == [200, 200, 429]
    day_wait = retry_after(per_phone[-1], 86400)
    assert day_wait > 86000
    assert per_phone[-1].json() == too_many(day_wait)
    assert per_ip.status_code == 429
    hour_wait = retry_after(per_ip, 3600)
    assert hour_wait > 3500
    assert per_ip.json() == too_many(hour_wait)
    assert start.call_count == 2
    # KG_2 has no verification (400, counted for the client only); KG's first check
    # reaches Twilio, its second is over the client's limit at KG; the client's fourth
    # check is over its own limit.
    assert [c.status_code for c in checks] == [400, 400, 429, 429]
    assert check.call_count == 1
    for refused in (checks[2], checks[3]):
        assert refused.json() == too_many(retry_after(refused, 3600), send=False)


@pytest.mark.redis
async def test_an_other_prefix_does_not_share_counters(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    async with (
        client_for(rate_limit_storage_url=redis_url, rate_limit_key_prefix=key_prefix) as one,
        client_for(
            rate_limit_storage_url=redis_url, rate_limit_key_prefix=key_prefix + "-b"
        ) as two,
    ):
        first = await one.post(SEND, json={"phone": KG})
        second = await two.post(SEND, json={"phone": KG})

    assert [first.status_code, second.status_code] == [200, 200]
    assert start.call_count == 2


async def test_redis_unreachable_keeps_serving_with_in_process_limits(
    client_for: ClientFactory, twilio: respx.MockRouter, app_logs: Records
) -> None:
    start = mock_start(twilio)
    began = time.monotonic()
    async with client_for(rate_limit_storage_url=CLOSED_PORT, rate_limit_send_per_ip="3/hour") as c:
        first = await c.post(SEND, json={"phone": KG})
        cooldown = await c.post(SEND, json={"phone": KG})
        other = await c.post(SEND, json={"phone": KG_2})
        # The client's fourth attempt (refused ones count for the client).
        per_ip = await c.post(SEND, json={"phone": "+996700123456"})
    elapsed = time.monotonic() - began

    assert first.status_code == 200, first.text
    assert cooldown.status_code == 429
    assert cooldown.json() == too_many(retry_after(cooldown, 60))
    assert other.status_code == 200
    assert per_ip.status_code == 429
    assert [form(call.request)["To"] for call in start.calls] == [KG, KG_2]
    errors = app_logs.at(logging.ERROR, "app.services.limits.windows")
    assert errors, app_logs.at(logging.ERROR)
    assert "unreachable" in errors[0]
    assert elapsed < 10  # an outage must not stall logins


class TcpProxy:
    """A TCP forwarder in front of Redis that can be switched off and on."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.redis
async def test_limiter_goes_back_to_redis_when_it_returns(
    redis_url: str,
    key_prefix: str,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    proxied = RateLimiter(
        f"redis://127.0.0.1:{proxy.port}{target.path}", key_prefix, clock=clock, retry_seconds=30
    )
    direct = RateLimiter(redis_url, key_prefix, clock=clock)
    [item] = parse_limits("2/minute")
    take, check = [Step(item, ("k",), True)], [Step(item, ("k",), False)]
    try:
        assert await proxied.run_in_order(take) is None  # 1 in Redis

        await proxy.stop()
        with caplog.at_level(logging.ERROR, logger="app.services.limits.windows"):
            assert await proxied.run_in_order(take) is None  # 1 in process
        assert any("unreachable" in r.getMessage() for r in caplog.records)
        assert await direct.run_in_order(check) is None  # Redis still holds 1 of 2

        await proxy.start()
        clock.advance(29)  # Redis answers again, but is not asked before the retry time
        assert await proxied.run_in_order(take) is None  # 2 in process
        assert await proxied.run_in_order(check) == 0
        assert await direct.run_in_order(check) is None  # Redis still holds 1 of 2

        clock.advance(1)
        assert await proxied.run_in_order(take) is None  # 2 in Redis
        assert await direct.run_in_order(check) == 0
        assert await proxied.run_in_order(take) == 0
    finally:
        await proxied.aclose()
        await direct.aclose()
        with contextlib.suppress(AssertionError):
            await proxy.stop()


@pytest.mark.redis
async def test_a_call_that_fails_while_redis_answers_a_ping_is_asked_again(
    redis_url: str,
    key_prefix: str,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reply lost to a busy event loop is no outage: no fallback, the call is retried."""
    metrics = Metrics()
    limiter = RateLimiter(redis_url, key_prefix, clock=clock, metrics=metrics)
    direct = RateLimiter(redis_url, key_prefix, clock=clock)
    windows = limiter._redis  # the Redis client behind the limiter
    assert windows is not None
    answer = windows.run_in_order
    calls = 0

    async def late_once(steps: Sequence[Step]) -> int | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise StorageError(TimeoutError("Timeout reading from socket"))
        return await answer(steps)

    monkeypatch.setattr(windows, "run_in_order", late_once)
    [item] = parse_limits("2/minute")
    try:
        with caplog.at_level(logging.WARNING, logger="app.services.limits.windows"):
            assert await limiter.run_in_order([Step(item, ("k",), True)]) is None
        # Counted in Redis, where another replica sees it.
        assert await direct.run_in_order([Step(item, ("k",), True)]) is None
        assert await direct.run_in_order([Step(item, ("k",), False)]) == 0
    finally:
        await limiter.aclose()
        await direct.aclose()
    assert calls == 2
    counted = metrics.registry.get_sample_value
    assert counted("phone_auth_rate_limit_storage_retries_total") == 1
    assert counted("phone_auth_rate_limit_fallbacks_total") == 0
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            "Rate-limit storage call failed (TimeoutError) while Redis answers; asking again",
        )
    ]


@pytest.mark.redis
async def test_numbers_refused_for_the_budget_in_a_race_keep_their_sends_on_redis(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    start = mock_start(twilio)
    settings = {
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        "markets": kg_budget("1/hour"),
    }
    async with client_for(**settings) as client:
        again = await race_for_the_last_budget(client)

    assert [a.status_code for a in again] == [503] * 9
    assert start.call_count == 1


@pytest.mark.redis
@pytest.mark.parametrize("seed", range(4))
async def test_windows_decided_in_one_round_trip_answer_as_one_at_a_time(
    redis_url: str, key_prefix: str, seed: int, clock: FakeClock
) -> None:
    """A decision's windows go to Redis in one script call; its answers are those of
    taking and checking the windows one at a time in process."""
    await answer_as_one_at_a_time(RateLimiter(redis_url, key_prefix, clock=clock), clock, seed)


async def answer_as_one_at_a_time(shared: RateLimiter, clock: FakeClock, seed: int) -> None:
    """`shared` answers random decisions as the in-process windows do; closes it."""
    in_process = RateLimiter("memory://", clock=clock)
    client_items = parse_limits("4/10 minutes")
    number_items = parse_limits("2/minute;3/10 minutes;5/hour")
    rng = random.Random(seed)
    try:
        for _ in range(150):
            clock.advance(rng.choice([0, 0, 6, 30, 60, 180, 660]))
            client = ("send_per_ip", rng.choice(["203.0.113.1", "203.0.113.2"]))
            number = ("send_per_phone", rng.choice(["+996555000001", "+996555000002"]))
            steps = [Step(item, client, True) for item in client_items]
            steps += [Step(item, number, False) for item in number_items]
            steps += [Step(item, number, rng.random() < 0.7) for item in number_items]
            if rng.random() < 0.7:
                decided = await shared.run_in_order(steps)
                assert decided == await in_process.run_in_order(steps)
            else:
                waits = await shared.retry_afters(number_items, *number)
                assert waits == await in_process.retry_afters(number_items, *number)
    finally:
        await shared.aclose()


@pytest.mark.redis
async def test_limits_own_moving_window_reads_what_one_round_trip_wrote(
    redis_url: str, key_prefix: str
) -> None:
    """`limits`' own moving window, which answers `retry_after`, reads the lists that the
    one-round-trip script writes (both on the real clock, which `limits` reads)."""
    shared = RateLimiter(redis_url, key_prefix)
    in_process = RateLimiter("memory://")
    items = parse_limits("2/minute;3/10 minutes;5/hour")
    number = ("send_per_phone", "+996555000001")
    try:
        for limiter in (shared, in_process):
            for _ in range(2):
                assert await limiter.run_in_order([Step(i, number, True) for i in items]) is None
            assert await limiter.run_in_order([Step(i, number, True) for i in items]) == 0

        [minute_wait] = await shared.retry_afters(items, *number)
        assert 58 <= minute_wait <= 60
        for item, window in zip(items, (60, 600, 3600), strict=True):
            ours = await in_process.retry_after(item, *number)
            theirs = await shared.retry_after(item, *number)
            assert window - 2 <= ours <= window
            assert abs(theirs - ours) <= 1, (item, theirs, ours)
    finally:
        await shared.aclose()


@pytest.mark.redis
async def test_retry_after_on_redis_reads_the_limiters_clock(
    redis_url: str, key_prefix: str, clock: FakeClock
) -> None:
    shared = RateLimiter(redis_url, key_prefix, clock=clock)
    in_process = RateLimiter("memory://", clock=clock)
    [item] = parse_limits("2/minute")
    take = [Step(item, ("k",), True)]
    try:
        for limiter in (shared, in_process):
            assert await limiter.run_in_order(take) is None
            assert await limiter.run_in_order(take) is None
        clock.advance(61)  # both hits have left the window: a fresh window of 60 s

        # An empty window: a whole window from now, and a hit exactly that old still counts.
        assert await in_process.retry_after(item, "k") == 61
        assert await shared.retry_afters([item], "k") == []
        assert await shared.retry_after(item, "k") == 61
    finally:
        await shared.aclose()


async def _script_calls(url: str) -> int:
    """Script calls the Redis server has answered (what `limits` and our windows send;
    the commands a script runs inside are counted apart, under their own names)."""
    client = redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    names = ("cmdstat_eval", "cmdstat_evalsha", "cmdstat_eval_ro", "cmdstat_evalsha_ro")
    return sum(int(stats[name]["calls"]) for name in names if name in stats)


@pytest.mark.redis
async def test_a_send_asks_redis_once_and_a_check_twice(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    mock_start(twilio)
    mock_check(twilio, "approved")
    settings = {"rate_limit_storage_url": redis_url, "rate_limit_key_prefix": key_prefix}
    async with client_for(**settings) as client:
        # The first requests load the scripts and open the pool's connection.
        assert (await client.post(SEND, json={"phone": KG})).status_code == 200
        before = await _script_calls(redis_url)
        sent = await client.post(SEND, json={"phone": KG_2})
        after_send = await _script_calls(redis_url)
        checked = await client.post(VERIFY, json={"phone": KG_2, "verification_code": "123456"})
        after_check = await _script_calls(redis_url)

    assert sent.status_code == 200, sent.text
    assert checked.status_code == 200, checked.text
    # Eight windows for a send (client, number checked, budget, number taken): one script
    # call. A check: the client's window and the number's looked at, then, with a
    # pending code found, the number's taken.
    assert after_send - before == 1
    assert after_check - after_send == 2
