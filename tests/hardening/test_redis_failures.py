"""Redis lost and back: limits keep working in process, then are shared again."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from app.main import Clocks
from app.services.limits.windows import REDIS_RETRY_SECONDS
from tests.conftest import ClientFactory, FakeClock
from tests.helpers import SEND, free_port
from tests.twilio_fixtures import mock_start


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class ThrowawayRedis:
    """A `redis-server` of this test alone, on a port of its own, that can be stopped."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start in 10s"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: cannot stop and restart a Redis")
    server = ThrowawayRedis(binary, free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _send(client: httpx.AsyncClient, phone: str) -> int:
    return (await client.post(SEND, json={"phone": phone})).status_code


async def test_limits_work_in_process_when_redis_is_unreachable(
    client_for: ClientFactory, twilio: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    start = mock_start(twilio)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with client_for(rate_limit_storage_url=closed) as client:
        started_at = time.perf_counter()
        assert await _send(client, "+996555123456") == 200
        assert time.perf_counter() - started_at < 3
        # The resend cooldown (1/minute) still holds, in this process.
        assert await _send(client, "+996555123456") == 429
        assert await _send(client, "+12025550143") == 200
        assert start.call_count == 2
    assert any(
        record.levelno == logging.ERROR and "Rate-limit storage unreachable" in record.getMessage()
        for record in caplog.records
    )


async def test_redis_lost_and_back(
    client_for: ClientFactory,
    twilio: respx.MockRouter,
    throwaway_redis: ThrowawayRedis,
    clock: FakeClock,
) -> None:
    mock_start(twilio)
    shared = {
        "rate_limit_storage_url": throwaway_redis.url,
        "rate_limit_key_prefix": f"hardening-{uuid.uuid4().hex}",
    }
    clocks = Clocks(wall=clock)
    # Two replicas sharing one Redis.
    async with (
        client_for(clocks=clocks, **shared) as first,
        client_for(clocks=clocks, **shared) as second,
    ):
        assert (await first.get("/readyz")).status_code == 200
        assert await _send(first, "+12025550143") == 200
        assert await _send(second, "+12025550143") == 429, "limits are shared through Redis"

        throwaway_redis.stop()
        assert await _send(first, "+12025550144") == 200
        assert await _send(first, "+12025550144") == 429, "in-process limits while Redis is down"
        assert await _send(second, "+12025550145") == 200
        assert await _send(second, "+12025550145") == 429

        throwaway_redis.start()
        # Within the retry interval each replica keeps to its own limits, Redis or not.
        clock.advance(REDIS_RETRY_SECONDS - 1)
        assert await _send(first, "+12025550146") == 200
        assert await _send(second, "+12025550146") == 200, "in process until the retry"

        clock.advance(1.5)
        assert await _send(first, "+12025550147") == 200
        assert await _send(second, "+12025550147") == 429, "shared again once Redis is back"
        assert (await second.get("/readyz")).status_code == 200


async def test_test_redis_url_shared_between_replicas(
    client_for: ClientFactory, twilio: respx.MockRouter, redis_url: str, key_prefix: str
) -> None:
    mock_start(twilio)
    shared = {"rate_limit_storage_url": redis_url, "rate_limit_key_prefix": key_prefix}
    async with client_for(**shared) as first, client_for(**shared) as second:
        assert await _send(first, "+12025550147") == 200
        assert await _send(second, "+12025550147") == 429
