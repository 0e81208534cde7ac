"""The Twilio HTTP client over aiohttp: real sockets, and errors that keep retries safe."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from app.core.config import Settings
from app.services.verification.providers.http_client import (
    TwilioAiohttpTransport,
    create_http_client,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, twilio_read_timeout_seconds=2, **overrides)  # type: ignore[arg-type]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def _answer(writer: asyncio.StreamWriter, head: bytes, body: bytes) -> None:
    writer.write(head + b"\r\n\r\n" + body)
    await writer.drain()
    writer.close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    http = create_http_client(_settings(twilio_http_transport="aiohttp"))
    assert isinstance(http._transport, TwilioAiohttpTransport)
    yield http
    await http.aclose()


async def test_posts_a_form_and_reads_json(client: httpx.AsyncClient) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        body = b'{"sid": "VE1", "status": "pending"}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server, url = await _serve(handler)
    async with server:
        response = await client.post(
            f"{url}/v2/Services/VA1/Verifications",
            data={"To": "+996555123456", "Channel": "sms"},
            auth=httpx.BasicAuth("AC1", "token"),
        )
    assert response.status_code == 201
    assert response.json() == {"sid": "VE1", "status": "pending"}
    request = seen[0]
    assert request.startswith(b"POST /v2/Services/VA1/Verifications HTTP/1.1")
    assert b"To=%2B996555123456&Channel=sms" in request
    assert b"Authorization: Basic " in request or b"authorization: Basic " in request


async def test_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens there now: the request surely never reached a server.
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{port}/x", data={"a": "b"})


async def _no_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()  # the request arrived; no answer


async def _answer_cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 100"
    await _answer(writer, head, b'{"sid": "VE1"')


@pytest.mark.parametrize("handler", [_no_answer, _answer_cut_short])
async def test_a_connection_lost_after_the_request_is_not_a_connect_error(
    client: httpx.AsyncClient, handler: Handler
) -> None:
    server, url = await _serve(handler)
    async with server:
        with pytest.raises(httpx.TransportError) as caught:
            await client.post(f"{url}/x", data={"a": "b"})
    # A connect error would be retried by the adapter and could send a second SMS.
    assert not isinstance(caught.value, httpx.ConnectError | httpx.ConnectTimeout)


async def _slow_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(5)
    writer.close()


async def _stalled_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(5)
    writer.close()


@pytest.mark.parametrize("handler", [_slow_answer, _stalled_body])
async def test_an_answer_that_stalls_times_out(client: httpx.AsyncClient, handler: Handler) -> None:
    server, url = await _serve(handler)
    async with server:
        with pytest.raises(httpx.TimeoutException):
            await client.post(f"{url}/x", data={"a": "b"}, timeout=httpx.Timeout(0.3))


def test_httpx_transport_can_be_chosen() -> None:
    http = create_http_client(_settings(twilio_http_transport="httpx"))
    assert isinstance(http._transport, httpx.AsyncHTTPTransport)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_cookies_a_response_sets_are_never_sent_back(transport: str) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                seen.append(await _read_request(reader))
            except asyncio.IncompleteReadError:
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Set-Cookie: tracker=abc; Path=/\r\nContent-Length: 2\r\n\r\n{}"
            )
            await writer.drain()
        writer.close()

    http = create_http_client(_settings(twilio_http_transport=transport))
    server, url = await _serve(handler)
    async with server, http:
        for _ in range(2):
            response = await http.post(f"{url}/v2/Services/VA1/VerificationCheck", data={})
            assert response.status_code == 200

    assert len(seen) == 2
    assert b"cookie" not in seen[1].lower()
    assert not http.cookies


async def test_a_compressed_answer_is_read_as_its_json(client: httpx.AsyncClient) -> None:
    body = gzip.compress(b'{"sid": "VE1", "status": "approved"}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"X-Twilio-Request-Id: RQ1\r\nContent-Length: " + str(len(body)).encode()
        )
        await _answer(writer, head, body)

    server, url = await _serve(handler)
    async with server:
        response = await client.post(f"{url}/x", data={"a": "b"})
    assert response.json() == {"sid": "VE1", "status": "approved"}
    assert response.headers["x-twilio-request-id"] == "RQ1"
