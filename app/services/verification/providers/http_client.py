"""The one HTTP client that talks to Twilio, made in the lifespan.

It keeps httpx's API (and respx in tests) while production sends through
aiohttp (`httpx-aiohttp`), which costs a fraction of httpx's own connection
pool per call under concurrency; `TWILIO_HTTP_TRANSPORT=httpx` falls back.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from app.core.config import Settings

USER_AGENT = "phone-auth/0.1"


class TwilioAiohttpTransport(AiohttpTransport):
    """`httpx-aiohttp` with one correction that matters for retries.

    The package maps every aiohttp connection error to a connect error, also
    a disconnect after the request was sent. The adapter retries connect
    errors as "Twilio surely did not act", so only a connection that was
    never made may stay one; the rest become read errors, never retried.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through aiohttp, with honest errors."""
        try:
            return await super().handle_async_request(request)
        except httpx.TransportError as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ConnectionTimeoutError):
                raise httpx.ConnectTimeout(str(exc), request=request) from cause
            if isinstance(cause, aiohttp.ClientConnectorError):
                raise httpx.ConnectError(str(exc), request=request) from cause
            if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
                raise httpx.ReadError(str(exc), request=request) from cause
            raise


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: Twilio's API sets no cookie a client needs."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the response's cookies."""


class TwilioHttpClient(httpx.AsyncClient):
    """httpx's client without its cookie jar.

    Reading the cookies of every response goes through urllib's request and
    response adapters, which cost about as much as the rest of httpx's work
    per call; a stateless REST API gains nothing from them.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


_NO_COOKIES = _NoCookies()


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The client for Twilio, sized for the expected concurrency."""
    limits = httpx.Limits(
        max_connections=settings.twilio_max_connections,
        max_keepalive_connections=settings.twilio_max_connections,
        keepalive_expiry=60,
    )
    transport = (
        TwilioAiohttpTransport(limits=limits)
        if settings.twilio_http_transport == "aiohttp"
        else httpx.AsyncHTTPTransport(limits=limits)
    )
    return TwilioHttpClient(
        transport=transport,
        timeout=httpx.Timeout(
            settings.twilio_read_timeout_seconds, connect=settings.twilio_connect_timeout_seconds
        ),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    )
