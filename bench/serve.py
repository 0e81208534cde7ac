"""Run the service for the benchmark, like `python -m app serve`, with a transport switch.

BENCH_TWILIO_TRANSPORT=httpx (default) runs the app as it is. `aiohttp` swaps
the Twilio client for `httpx_aiohttp.HttpxAiohttpClient` (same httpx API, aiohttp
underneath; pip package `httpx-aiohttp`) with the app's own timeouts and limits —
a bench-only switch to measure what a `TWILIO_HTTP_TRANSPORT` setting would buy.
"""

from __future__ import annotations

import os

import httpx

from app.core import resources
from app.core.config import Settings


def _aiohttp_client(settings: Settings) -> httpx.AsyncClient:
    from httpx_aiohttp import HttpxAiohttpClient

    return HttpxAiohttpClient(
        timeout=httpx.Timeout(
            settings.twilio_read_timeout_seconds, connect=settings.twilio_connect_timeout_seconds
        ),
        limits=httpx.Limits(
            max_connections=settings.twilio_max_connections,
            max_keepalive_connections=settings.twilio_max_connections,
            keepalive_expiry=60,
        ),
        headers={"User-Agent": "phone-auth/0.1", "Accept": "application/json"},
    )


def main() -> None:
    """Patch the client factory when asked, then serve."""
    if os.environ.get("BENCH_TWILIO_TRANSPORT", "httpx") == "aiohttp":
        resources.create_http_client = _aiohttp_client
    from app.__main__ import main as app_main

    app_main(["serve"])


if __name__ == "__main__":
    main()
