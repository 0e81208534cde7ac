"""A fake Twilio Verify for load tests and the benchmark: cheap, keep-alive, fixed latency.

A raw asyncio HTTP/1.1 server (no framework, uvloop when installed) that answers

- `POST /v2/Services/{sid}/Verifications` → 201, a pending verification with a new `sid`;
- `POST /v2/Services/{sid}/VerificationCheck` → 200, `approved` when `Code` is the
  approving code (default `123456`), else `pending` (a wrong code);
- `GET /__stats` → `{"connections": …, "requests": …}` at once, for the benchmark;

each (apart from the stats) after a fixed latency, scheduled with `call_later`
so that a waiting request costs no task and no CPU. Bodies are the recorded
fixtures of `tests/fixtures/twilio/`.

    python -m tests.load.fake_twilio --port 0 --latency 0.05

prints `LISTENING <port>` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "twilio"
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 500: "Server Error"}


class FakeTwilio:
    """The fake's state: its bodies, counters and settings."""

    def __init__(self, latency: float = 0.05, approve_code: str = "123456") -> None:
        self.latency = latency
        self.approve_code = approve_code
        self.connections = 0
        self.requests = 0
        # True: every answer is a 500 (Twilio down), for failover tests.
        self.stopped = False
        self._sids = 0
        self._pending: dict[str, Any] = json.loads(
            (FIXTURES / "verification_pending.json").read_text()
        )
        self._approved: dict[str, Any] = json.loads(
            (FIXTURES / "verification_check_approved.json").read_text()
        )
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def stats(self) -> dict[str, int]:
        """Accepted connections and answered requests so far."""
        return {"connections": self.connections, "requests": self.requests}

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bool]:
        """Status, JSON body and whether to delay, for one request."""
        if method == "GET" and path == "/__stats":
            return 200, json.dumps(self.stats()).encode(), False
        self.requests += 1
        if self.stopped:
            down = {"code": 20500, "message": "Internal Server Error", "status": 500}
            return 500, json.dumps(down).encode(), False
        parts = path.split("?", 1)[0].strip("/").split("/")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if method == "POST" and len(parts) == 4 and parts[:2] == ["v2", "Services"]:
            service = parts[2]
            if parts[3] == "Verifications":
                self._sids += 1
                sid = f"VE{self._sids:032x}"
                started = dict(self._pending)
                started.update(
                    sid=sid,
                    service_sid=service,
                    to=form.get("To", ""),
                    channel=form.get("Channel", "sms"),
                    url=f"https://verify.twilio.com/v2/Services/{service}/Verifications/{sid}",
                )
                return 201, json.dumps(started).encode(), True
            if parts[3] == "VerificationCheck":
                approved = form.get("Code") == self.approve_code
                checked = dict(self._approved)
                checked.update(
                    sid=form.get("VerificationSid", ""),
                    service_sid=service,
                    status="approved" if approved else "pending",
                    valid=approved,
                )
                return 200, json.dumps(checked).encode(), True
        error = {
            "code": 20404,
            "message": "The requested resource was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        }
        return 404, json.dumps(error).encode(), True

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (0: any free port)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port, backlog=4096)

    async def aclose(self) -> None:
        """Stop listening."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)


class _Connection(asyncio.Protocol):
    """One client connection: parse requests, answer each after the latency, in order."""

    def __init__(self, fake: FakeTwilio) -> None:
        self._fake = fake
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._fake.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._transport.close()
                return
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self._transport.close()
                return
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            if length > MAX_BODY_BYTES:
                self._transport.close()
                return
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            connection = headers.get("connection", "").lower()
            keep_alive = connection != "close" and (
                version == "HTTP/1.1" or connection == "keep-alive"
            )
            status, payload, delay = self._fake.answer(method, target, body)
            response = (
                f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            ).encode() + payload
            if delay and self._fake.latency > 0:
                self._loop.call_later(self._fake.latency, self._write, response, keep_alive)
            else:
                self._write(response, keep_alive)

    def _write(self, response: bytes, keep_alive: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(response)
        if not keep_alive:
            self._transport.close()


async def _main(args: argparse.Namespace) -> None:
    fake = FakeTwilio(latency=args.latency, approve_code=args.code)
    await fake.start(args.host, args.port)
    print(f"LISTENING {fake.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.aclose()
    print(f"STATS {json.dumps(fake.stats())}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run the fake until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds before answering")
    parser.add_argument("--code", default="123456", help="the code that is approved")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(_main(args))
    except ImportError:
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
