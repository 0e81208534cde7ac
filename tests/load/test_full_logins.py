"""Load: 200 concurrent whole logins, and a flood with a probe, against the real server,
PostgreSQL and Redis.

The service runs as `python -m app serve` in a subprocess, Twilio is the fake of
`fake_twilio.py` (another subprocess, 50 ms per call). Every client has its own
number and does send → verify → me → refresh, then logs in a second time
(send → verify), so that "exactly one `is_new_user: true` per user" means
something. All clients share 127.0.0.1, so the per-IP limits are raised (and the
per-phone send limit, for the second login); the rest of the settings are the
defaults.

The flood: one client floods verify-code on hundreds of connections through a small Redis
pool while another client probes the resend cooldown, a market's SMS budget and its
own send limit; every answer and every Twilio call is counted exactly, and Redis is
never taken for unreachable. It stops once the probe is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import DEFAULT_MARKETS, Settings
from tests.conftest import JWT_SECRET
from tests.helpers import free_port
from tests.twilio_fixtures import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 200
TWILIO_LATENCY_SECONDS = 0.05
LOAD_DEADLINE_SECONDS = 60
START_DEADLINE_SECONDS = 30
MAX_RSS_MB = 250
REQUEST_TIMEOUT_SECONDS = 45
RELOGIN_EVERY = 4  # every 4th client logs in a second time: `is_new_user` must be false
CODE = "123456"
API = "/api/v1"

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(
        not (DATABASE_URL.startswith("postgresql") and REDIS_URL),
        reason="the load test runs against PostgreSQL and Redis: "
        "set TEST_DATABASE_URL (postgresql+asyncpg://…) and TEST_REDIS_URL",
    ),
]


def phone_numbers(count: int) -> list[str]:
    """Distinct valid mobile numbers, alternately KG (+996 555 …) and US (+1 212 2…)."""
    numbers = []
    for i in range(count):
        if i % 2 == 0:
            numbers.append(f"+996555{700000 + i:06d}")
        else:
            numbers.append(f"+1212{2000000 + i:07d}")
    return numbers


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture
def fake_twilio(tmp_path: Path) -> Iterator[str]:
    """The fake Twilio in a subprocess; its base URL."""
    command = [sys.executable, "-m", "tests.load.fake_twilio", "--port", "0"]
    command += ["--latency", str(TWILIO_LATENCY_SECONDS), "--code", CODE]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)  # noqa: S603
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()  # the fake prints at once or exits
        assert line.startswith("LISTENING "), f"fake Twilio did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        _stop(process)


@dataclass
class Server:
    """The service under test."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    rss_samples_kb: list[int] = field(default_factory=list)

    def status_kb(self, key: str) -> int:
        """A `Vm…` line of /proc/<pid>/status, in kB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
        raise AssertionError(f"{key} not in /proc/{self.process.pid}/status")


def server_environment(
    port: int, twilio_url: str, database_url: str, prefix: str, **overrides: str
) -> dict[str, str]:
    """The process environment: the test settings on top of no inherited setting."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        ENVIRONMENT="test",
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="WARNING",
        DATABASE_URL=database_url,
        VERIFY_PROVIDER="twilio",
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_VERIFY_SERVICE_SID=SERVICE_SID,
        TWILIO_VERIFY_BASE_URL=twilio_url,
        JWT_SECRET_KEY=JWT_SECRET,
        RATE_LIMIT_STORAGE_URL=REDIS_URL,
        RATE_LIMIT_KEY_PREFIX=prefix,
        # Every client comes from 127.0.0.1; each number logs in twice.
        RATE_LIMIT_SEND_PER_IP="100000/hour",
        RATE_LIMIT_VERIFY_PER_IP="100000/hour",
        RATE_LIMIT_SEND_PER_PHONE="5/minute",
    )
    env.update(overrides)
    return env


ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture
def serve(fake_twilio: str, migrated: str, tmp_path: Path) -> ServerFactory:
    """`async with serve(SETTING=value, ...) as server:` — `python -m app serve` against
    the migrated test database, ready to serve, with settings on top of the load's."""

    @contextlib.asynccontextmanager
    async def start(**overrides: str) -> AsyncIterator[Server]:
        port = free_port()
        prefix = f"phone-auth-load-{uuid.uuid4().hex[:12]}"
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: ASYNC220 - starting it takes no time
                [sys.executable, "-m", "app", "serve"],
                cwd=ROOT,
                env=server_environment(port, fake_twilio, migrated, prefix, **overrides),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        running = Server(process, f"http://127.0.0.1:{port}", log)
        try:
            await _wait_ready(running)
            yield running
        finally:
            _stop(process)
            await _delete_redis_keys(prefix)

    return start


@pytest.fixture
async def server(serve: ServerFactory) -> AsyncIterator[Server]:
    """The service with the load's settings."""
    async with serve() as running:
        yield running


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    async with httpx.AsyncClient(base_url=server.base_url, timeout=2) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"the server exited at start:\n{_tail(server.log)}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail(f"the server was not ready in {START_DEADLINE_SECONDS}s:\n{_tail(server.log)}")


async def _delete_redis_keys(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        keys = [key async for key in redis.scan_iter(f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


@dataclass
class Login:
    """What one client saw."""

    phone: str
    statuses: list[tuple[str, int]] = field(default_factory=list)
    new_user_flags: list[bool] = field(default_factory=list)
    approved: int = 0
    errors: list[str] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")
    relogin: bool = False


async def _login(http: httpx.AsyncClient, login: Login) -> str | None:
    """send → verify; the access and refresh tokens on success."""
    sent = await http.post(f"{API}/auth/send-verification", json={"phone": login.phone})
    login.statuses.append(("send", sent.status_code))
    if sent.status_code != 200:
        login.errors.append(f"send {sent.status_code} {sent.text[:200]}")
        return None
    verified = await http.post(
        f"{API}/auth/verify-code", json={"phone": login.phone, "verification_code": CODE}
    )
    login.statuses.append(("verify", verified.status_code))
    if verified.status_code != 200:
        login.errors.append(f"verify {verified.status_code} {verified.text[:200]}")
        return None
    body = verified.json()
    login.approved += 1
    login.new_user_flags.append(body["is_new_user"])
    assert body["user"]["phone"] == login.phone
    return f"{body['access_token']} {body['refresh_token']}"


async def _client(base_url: str, login: Login, tls: ssl.SSLContext) -> None:
    """One person: a whole login, then a second login of the same number."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, verify=tls, event_hooks=_hooks(login)
    ) as http:
        try:
            await _whole_login(http, login)
        except httpx.TransportError as exc:
            login.errors.append(f"{type(exc).__name__} after {login.slowest}")


def _hooks(login: Login) -> dict[str, list[Any]]:
    async def on_request(request: httpx.Request) -> None:
        request.extensions["started"] = time.monotonic()

    async def on_response(response: httpx.Response) -> None:
        took = time.monotonic() - response.request.extensions["started"]
        login.slowest = max(login.slowest, (round(took, 3), response.request.url.path))

    return {"request": [on_request], "response": [on_response]}


async def _whole_login(http: httpx.AsyncClient, login: Login) -> None:
    tokens = await _login(http, login)
    if tokens is None:
        return
    access, refresh = tokens.split(" ")
    me = await http.get(f"{API}/users/me", headers={"Authorization": f"Bearer {access}"})
    login.statuses.append(("me", me.status_code))
    if me.status_code != 200 or me.json()["phone"] != login.phone:
        login.errors.append(f"me {me.status_code} {me.text[:200]}")
    refreshed = await http.post(f"{API}/auth/refresh", json={"refresh_token": refresh})
    login.statuses.append(("refresh", refreshed.status_code))
    if refreshed.status_code != 200:
        login.errors.append(f"refresh {refreshed.status_code} {refreshed.text[:200]}")
    if login.relogin:
        await _login(http, login)


async def _sample_rss(server: Server, stop: asyncio.Event) -> None:
    while not stop.is_set():
        server.rss_samples_kb.append(server.status_kb("VmRSS"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)


async def test_200_concurrent_whole_logins(server: Server, db_engine: AsyncEngine) -> None:
    phones = phone_numbers(CLIENTS)
    logins = [Login(phone, relogin=i % RELOGIN_EVERY == 0) for i, phone in enumerate(phones)]
    tls = ssl.create_default_context()  # one context for all clients (it is never used: http)
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server, stop))
    started = time.monotonic()
    try:
        async with asyncio.timeout(LOAD_DEADLINE_SECONDS):
            await asyncio.gather(*(_client(server.base_url, login, tls) for login in logins))
    finally:
        stop.set()
        await sampler
    elapsed = time.monotonic() - started
    peak_rss_mb = server.status_kb("VmHWM") / 1024
    assert server.process.poll() is None, f"the server died:\n{_tail(server.log)}"

    statuses = Counter(f"{step} {status}" for login in logins for step, status in login.statuses)
    requests = sum(statuses.values())
    slowest = sorted((login.slowest for login in logins), reverse=True)[:3]
    print(
        f"\nslowest requests {slowest}\n{CLIENTS} clients, {requests} requests in {elapsed:.1f}s "
        f"({requests / elapsed:.0f}/s), peak RSS {peak_rss_mb:.0f} MB: {dict(statuses)}"
    )
    log_lines = server.log.read_text(errors="replace").splitlines()
    logged = [line for line in log_lines if " ERROR " in line]
    if logged:  # e.g. the Redis pool of the limits running out: reported, not failed
        print(f"server logged {len(logged)} ERROR lines, first: {logged[0][:300]}")
    server_errors = [s for s in statuses if int(s.split()[1]) >= 500]
    assert not server_errors, f"5xx answers: {server_errors}\n{_tail(server.log)}"
    errors = [f"{login.phone}: {e}" for login in logins for e in login.errors]
    assert not errors, f"{len(errors)} failed steps, e.g. {errors[:5]}"
    assert all(login.approved == 1 + login.relogin for login in logins)

    # Every user exactly one `is_new_user: true`: the first login, not the second.
    assert all(login.new_user_flags == [True, False][: login.approved] for login in logins)

    async with db_engine.connect() as connection:
        users = Counter(
            (
                await connection.execute(
                    text("SELECT phone FROM users WHERE phone = ANY(:phones)"), {"phones": phones}
                )
            ).scalars()
        )
        verifications = (
            await connection.execute(
                text("SELECT phone, status FROM verifications WHERE phone = ANY(:phones)"),
                {"phones": phones},
            )
        ).all()
    approved_phones = {login.phone for login in logins if login.approved}
    assert all(users[phone] == 1 for phone in approved_phones), "a login without one user row"
    assert set(users) == approved_phones
    by_status = Counter(status for _, status in verifications)
    assert set(by_status) <= {"approved", "expired", "locked"}, by_status
    assert by_status["approved"] == sum(login.approved for login in logins), by_status

    assert peak_rss_mb < MAX_RSS_MB, f"peak RSS {peak_rss_mb:.0f} MB"
    assert elapsed < LOAD_DEADLINE_SECONDS


# A flood with a probe: one client floods verify-code while another checks the limits.

FLOODER = "203.0.113.7"
PROBE = "198.51.100.9"
FLOOD_CONNECTIONS = 128
FLOOD_REQUESTS = 20000
FLOOD_VERIFY_PER_IP = 60
PROBE_PHONES = ["+996555300001", "+996555300002", "+996555300003", "+996555300004"]
PROBE_PHONES += ["+12122300001", "+12122300002"]
FLOOD_SETTINGS = {
    "TRUSTED_PROXIES": "127.0.0.1",
    # A few connections for hundreds of requests in flight: the pool is always busy.
    "RATE_LIMIT_REDIS_MAX_CONNECTIONS": "2",
    "RATE_LIMIT_SEND_PER_IP": "6/hour",
    "RATE_LIMIT_VERIFY_PER_IP": f"{FLOOD_VERIFY_PER_IP}/hour",
    "RATE_LIMIT_SEND_PER_PHONE": "1/minute;5/hour;10/day",
    "MARKETS": json.dumps(
        {
            name: {**market.model_dump(), "sms_budget": "3/hour" if name == "KG" else "30/hour"}
            for name, market in DEFAULT_MARKETS.items()
        }
    ),
}


async def _flood(
    http: httpx.AsyncClient, statuses: Counter[str], under_way: asyncio.Event, done: asyncio.Event
) -> None:
    """Wrong codes for new numbers from one client, on every connection, until the probe
    is done or the flood's requests are used up."""
    remaining = iter(phone_numbers(FLOOD_REQUESTS))

    async def connection() -> None:
        for phone in remaining:
            if done.is_set():
                return
            try:
                answer = await http.post(
                    f"{API}/auth/verify-code",
                    json={"phone": phone, "verification_code": "000000"},
                    headers={"X-Forwarded-For": FLOODER},
                )
            except httpx.TransportError as exc:
                statuses[type(exc).__name__] += 1
                continue
            statuses[str(answer.status_code)] += 1
            if statuses.total() >= FLOOD_CONNECTIONS:
                under_way.set()

    await asyncio.gather(*(connection() for _ in range(FLOOD_CONNECTIONS)))


async def _probe(http: httpx.AsyncClient, phones: list[str]) -> list[int]:
    statuses = []
    for phone in phones:
        answer = await http.post(
            f"{API}/auth/send-verification",
            json={"phone": phone},
            headers={"X-Forwarded-For": PROBE},
        )
        statuses.append(answer.status_code)
    return statuses


async def test_a_flood_from_one_client_keeps_every_limit_of_another_exact(
    serve: ServerFactory, fake_twilio: str, db_engine: AsyncEngine
) -> None:
    """(`db_engine` empties the tables the server wrote to, after the test.)"""
    flooded: Counter[str] = Counter()
    under_way, done = asyncio.Event(), asyncio.Event()
    flood_pool = httpx.Limits(max_connections=FLOOD_CONNECTIONS, max_keepalive_connections=None)
    # The probe waits for the flood between its sends: a connection of its own for each,
    # so that none is one the server closed for idling.
    probe_pool = httpx.Limits(max_keepalive_connections=0)
    async with (
        serve(**FLOOD_SETTINGS) as server,
        httpx.AsyncClient(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=flood_pool
        ) as flood,
        httpx.AsyncClient(
            base_url=server.base_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=probe_pool
        ) as probe,
    ):
        # The first send, before the flood: its cooldown is in Redis alone.
        before = await _probe(probe, PROBE_PHONES[:1])

        async def probe_in_the_flood() -> list[int]:
            try:
                await under_way.wait()
                return await _probe(probe, PROBE_PHONES)
            finally:
                done.set()

        started = time.monotonic()
        async with asyncio.timeout(LOAD_DEADLINE_SECONDS):
            during, _ = await asyncio.gather(
                probe_in_the_flood(), _flood(flood, flooded, under_way, done)
            )
        elapsed = time.monotonic() - started
        metrics = (await probe.get("/metrics")).text
        twilio = (await probe.get(f"{fake_twilio}/__stats")).json()
        assert server.process.poll() is None, f"the server died:\n{_tail(server.log)}"
        unreachable = [
            line for line in server.log.read_text().splitlines() if "unreachable" in line
        ]

    print(f"\nflood of {flooded.total()} checks in {elapsed:.1f}s: {dict(flooded)}")
    assert before == [200]
    # The cooldown, then KG's budget of 3 (two more), US's own, then the 7th send of a
    # client allowed 6 an hour.
    assert during == [429, 200, 200, 503, 200, 429], during
    assert twilio["requests"] == 4, twilio  # the four sends that were allowed; no check
    # The flooder's first 60 checks find no code; every other one is over its limit.
    refused = flooded.total() - FLOOD_VERIFY_PER_IP
    assert dict(flooded) == {"400": FLOOD_VERIFY_PER_IP, "429": refused}
    assert FLOOD_CONNECTIONS < flooded.total() < FLOOD_REQUESTS, "the probe ran in the flood"
    assert unreachable == [], unreachable[:3]
    assert "phone_auth_rate_limit_fallbacks_total 0.0" in metrics
