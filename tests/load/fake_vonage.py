"""A stateful fake Vonage Verify v2 server, beside the fake Twilio (`fake_twilio.py`),
for tests that run the service's real HTTP client against real sockets.

A raw asyncio HTTP/1.1 server (the fake Twilio's connection handling) that answers

- `POST /v2/verify` → 202 `{"request_id"}`, or 409 naming the verification in
  progress for the number (Vonage allows one at a time);
- `POST /v2/verify/{request_id}` → 200 `completed` for the approving code, 400 a
  wrong code, 410 once `max_attempts` wrong codes were given, 404 when the request
  is unknown or over;
- `DELETE /v2/verify/{request_id}` → 204, or 404 when it is over;

with the recorded bodies of `tests/fixtures/vonage/`. `stopped = True` makes every
answer a 503; `aclose()` stops listening and drops open connections (unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from tests.load.fake_twilio import _Connection

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vonage"
_REQUEST = re.compile(r"^/v2/verify/(?P<request_id>[0-9a-f-]+)$")


def _recorded(name: str, **changes: Any) -> bytes:
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    body.update(changes)
    return json.dumps(body).encode()


class _Tracked(_Connection):
    """A connection the fake can drop when it stops."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        fake = self._fake
        assert isinstance(fake, FakeVonage)
        fake.transports.add(transport)


class FakeVonage:
    """The fake's state: verifications, counters and settings."""

    def __init__(
        self, latency: float = 0.0, approve_code: str = "123456", max_attempts: int = 3
    ) -> None:
        self.latency = latency
        self.approve_code = approve_code
        self.max_attempts = max_attempts
        self.connections = 0
        self.requests = 0
        self.stopped = False
        self.calls: dict[str, int] = {"start": 0, "check": 0, "cancel": 0}
        self.status: dict[str, str] = {}
        self.numbers: dict[str, str] = {}
        self.wrong: dict[str, int] = {}
        self.transports: set[asyncio.BaseTransport] = set()
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Its base URL, for VONAGE_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bool]:
        """Status, JSON body and whether to delay, for one request."""
        self.requests += 1
        if self.stopped:
            return 503, _recorded("error_429_throttled", title="Service Unavailable"), False
        path = path.split("?", 1)[0]
        payload: dict[str, Any] = json.loads(body) if body else {}
        if method == "POST" and path == "/v2/verify":
            self.calls["start"] += 1
            return (*self._start(payload), True)
        found = _REQUEST.match(path)
        if found is not None and method == "POST":
            self.calls["check"] += 1
            return (*self._check(found["request_id"], str(payload.get("code"))), True)
        if found is not None and method == "DELETE":
            self.calls["cancel"] += 1
            return (*self._cancel(found["request_id"]), True)
        return 404, _recorded("error_404_not_found"), False

    def _start(self, payload: dict[str, Any]) -> tuple[int, bytes]:
        to = str(payload["workflow"][0]["to"])
        for request_id, status in self.status.items():
            if status == "pending" and self.numbers[request_id] == to:
                return 409, _recorded("error_409_conflict", request_id=request_id)
        request_id = str(uuid.uuid4())
        self.status[request_id] = "pending"
        self.numbers[request_id] = to
        self.wrong[request_id] = 0
        return 202, _recorded("start_202", request_id=request_id)

    def _check(self, request_id: str, code: str) -> tuple[int, bytes]:
        if self.status.get(request_id) != "pending":
            return 404, _recorded("error_404_not_found")
        if code != self.approve_code:
            self.wrong[request_id] += 1
            if self.wrong[request_id] >= self.max_attempts:
                self.status[request_id] = "failed"
                return 410, _recorded("error_410_too_many_attempts")
            return 400, _recorded("error_400_invalid_code")
        self.status[request_id] = "completed"
        return 200, _recorded("check_200_completed", request_id=request_id)

    def _cancel(self, request_id: str) -> tuple[int, bytes]:
        if self.status.get(request_id) != "pending":
            return 404, _recorded("error_404_not_found")
        self.status[request_id] = "cancelled"
        return 204, b""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on `host:port` (0: any free port)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Tracked(self), host, port)

    async def aclose(self) -> None:
        """Stop listening and drop every open connection."""
        if self.server is not None:
            self.server.close()
            for transport in list(self.transports):
                transport.close()
            self.transports.clear()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)
