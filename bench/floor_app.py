"""The floor of the benchmark: the thinnest ASGI app that does what a login request must.

Raw ASGI on uvicorn, no framework: read the body, parse the JSON, make the same
one call to the (fake) Twilio Verify that the service makes — start for
send-verification, check for verify-code, form-encoded with Basic auth —
through one shared client, and answer JSON. No database, no limits, no tokens.

    uvicorn bench.floor_app:app   (FAKE_TWILIO_URL, FLOOR_CLIENT=aiohttp|httpx)

The client is aiohttp (the cheapest Python HTTP client measured) when it can be
imported, else httpx with a keep-alive pool as large as its connection limit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BASE = os.environ.get("FAKE_TWILIO_URL", "http://127.0.0.1:18480").rstrip("/")
SERVICE = f"{BASE}/v2/Services/VA{'a' * 32}"
ACCOUNT, TOKEN = "AC" + "1" * 32, "twilio-auth-token-for-tests"
MAX_CONNECTIONS = int(os.environ.get("FLOOR_MAX_CONNECTIONS", "1000"))
JSON_HEADERS = [(b"content-type", b"application/json")]


class _Client:
    """One shared HTTP client: `post(url, form) -> (status, json)`."""

    def __init__(self) -> None:
        self.kind = os.environ.get("FLOOR_CLIENT", "")
        if not self.kind:
            try:
                import aiohttp  # noqa: F401

                self.kind = "aiohttp"
            except ImportError:
                self.kind = "httpx"
        self._session: Any = None

    async def start(self) -> None:
        if self.kind == "aiohttp":
            import aiohttp

            self._auth = aiohttp.BasicAuth(ACCOUNT, TOKEN)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=60)
            )
        else:
            import httpx

            self._session = httpx.AsyncClient(
                auth=(ACCOUNT, TOKEN),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
                ),
            )

    async def post(self, url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.kind == "aiohttp":
            async with self._session.post(url, data=form, auth=self._auth) as response:
                return response.status, await response.json(content_type=None)
        response = await self._session.post(url, data=form)
        return response.status_code, response.json()

    async def close(self) -> None:
        if self._session is not None:
            await (self._session.close() if self.kind == "aiohttp" else self._session.aclose())


client = _Client()


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await client.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await client.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if scope["method"] == "GET":
        await _answer(send, 200, {"status": "ok"})
        return
    try:
        data = json.loads(body)
        phone = str(data["phone"])
    except (ValueError, KeyError, TypeError):
        await _answer(send, 400, {"detail": "bad request"})
        return
    if path.endswith("/send-verification"):
        form = {"To": phone, "Channel": "sms", "Locale": "en"}
        status, answer = await client.post(f"{SERVICE}/Verifications", form)
        if status in (200, 201) and answer.get("sid"):
            await _answer(send, 200, {"success": True, "phone": phone, "channel": "sms"})
            return
    elif path.endswith("/verify-code"):
        form = {"VerificationSid": "VE" + "b" * 32, "Code": str(data.get("verification_code"))}
        status, answer = await client.post(f"{SERVICE}/VerificationCheck", form)
        if status == 200 and answer.get("status") == "approved":
            await _answer(send, 200, {"access_token": "floor", "phone": phone})
            return
    else:
        await _answer(send, 404, {"detail": "Not Found"})
        return
    await _answer(send, 502, {"detail": f"fake Twilio answered {status}"})
