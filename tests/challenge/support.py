"""What the challenge tests share: settings, the providers' answers, and a fake
Turnstile siteverify served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx

from app.core.config import CAPTCHA_VERIFY_URLS, CaptchaProvider

SECRET = "0x4AAAAAAAcaptcha-secret-for-tests"
SITE_KEY = "0x4AAAAAAAsite-key"
TOKEN = "XXXX.DUMMY.TOKEN.XXXX"
TURNSTILE_URL = CAPTCHA_VERIFY_URLS[CaptchaProvider.TURNSTILE]
HCAPTCHA_URL = CAPTCHA_VERIFY_URLS[CaptchaProvider.HCAPTCHA]
RECAPTCHA_URL = CAPTCHA_VERIFY_URLS[CaptchaProvider.RECAPTCHA]

REQUIRED = {"captcha_token": ["Complete the challenge to get a code."]}
FAILED = {"captcha_token": ["The challenge was not passed. Please try again."]}
UNAVAILABLE = {
    "success": False,
    "detail": "The challenge cannot be checked right now. Please try again later.",
}


def captcha(provider: str = "turnstile", **overrides: Any) -> dict[str, Any]:
    """Settings overrides that turn the challenge on."""
    return {
        "captcha_provider": provider,
        "captcha_secret_key": SECRET,
        "captcha_site_key": SITE_KEY,
        **overrides,
    }


def passed(hostname: str = "shop.example") -> httpx.Response:
    """siteverify's answer for a good token."""
    return httpx.Response(
        200,
        json={
            "success": True,
            "challenge_ts": "2026-11-30T08:00:00.000Z",
            "hostname": hostname,
            "error-codes": [],
        },
    )


def rejected(*codes: str) -> httpx.Response:
    """siteverify's answer for a token it does not accept."""
    return httpx.Response(200, json={"success": False, "error-codes": list(codes)})


def siteverify_form(request: httpx.Request) -> dict[str, str]:
    """The form fields a siteverify request carried."""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


class FakeTurnstile:
    """Cloudflare Turnstile's siteverify as its documentation describes it, on a real
    localhost port: a token it issued passes once, on its hostname; a second check of
    it is `timeout-or-duplicate` unless it repeats the first's `idempotency_key`."""

    PATH = "/turnstile/v0/siteverify"

    def __init__(self, secret: str = SECRET) -> None:
        self._secret = secret
        self._issued: dict[str, str] = {}
        self._spent: dict[str, tuple[str | None, dict[str, Any]]] = {}
        self._server: asyncio.Server | None = None
        self.forms: list[dict[str, str]] = []
        self.url = ""

    def issue(self, hostname: str = "shop.example") -> str:
        """A token a person got by passing the challenge on `hostname`."""
        token = f"0.{uuid.uuid4().hex}"
        self._issued[token] = hostname
        return token

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{self.PATH}"

    async def stop(self) -> None:
        """Stop listening: the provider is down."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _answer(self, fields: dict[str, str]) -> dict[str, Any]:
        if fields.get("secret") != self._secret:
            return {"success": False, "error-codes": ["invalid-input-secret"]}
        token = fields.get("response")
        if not token:
            return {"success": False, "error-codes": ["missing-input-response"]}
        key = fields.get("idempotency_key")
        if token in self._spent:
            first_key, first_answer = self._spent[token]
            if key is not None and key == first_key:
                return first_answer
            return {"success": False, "error-codes": ["timeout-or-duplicate"]}
        hostname = self._issued.pop(token, None)
        if hostname is None:
            return {"success": False, "error-codes": ["invalid-input-response"]}
        answer = {
            "success": True,
            "challenge_ts": "2026-11-30T08:00:00.000Z",
            "hostname": hostname,
            "error-codes": [],
        }
        self._spent[token] = (key, answer)
        return answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if method != "POST" or path != self.PATH:
                status, answer = "404 Not Found", {"error": "not found"}
            else:
                fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                self.forms.append(fields)
                status, answer = "200 OK", self._answer(fields)
            payload = json.dumps(answer).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        finally:
            writer.close()
