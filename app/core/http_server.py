"""The HTTP server as `python -m app serve` runs it: uvicorn with httptools, plus the
bounds uvicorn lacks.

uvicorn's httptools protocol keeps a request's header bytes without limit and
times out neither a connection that never finishes its headers nor a body that
never ends. `BoundedProtocol` adds those bounds and caps the connections a worker
holds open; `serve` binds the API port and, with METRICS_PORT, the metrics port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from app.core.config import Settings
from app.core.request_limits import MAX_BODY_BYTES, MSG_TOO_LARGE

logger = logging.getLogger("uvicorn.error")

# A connection over the limit gets this long to send its request and read the 503.
REFUSED_GRACE_SECONDS = 1.0
MSG_HEADERS_TOO_LARGE = "Request headers are too large."
MSG_TIMEOUT = "The request was not received in time."
MSG_TOO_MANY_CONNECTIONS = "Too many connections; try again."


@dataclass(frozen=True)
class HttpBounds:
    """What one connection may hold and for how long (see README, Abuse protection)."""

    max_header_bytes: int = 16 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpBounds:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
            max_connections=settings.limit_concurrency,
        )

    @property
    def max_chunked_body_bytes(self) -> int:
        """A chunked body's bytes on the wire: the app's body limit, chunk framing and
        trailers (which httptools buffers like headers)."""
        return MAX_BODY_BYTES + self.max_header_bytes


class BoundedConfig(uvicorn.Config):
    """A uvicorn Config carrying the bounds; it is pickled to every worker."""

    def __init__(self, app: str, *, bounds: HttpBounds, **options: Any) -> None:
        super().__init__(app, http=BoundedProtocol, ws="none", **options)
        self.bounds = bounds


class BoundedProtocol(HttpToolsProtocol):
    """httptools with bounded headers, header and body timeouts, and a connection cap.

    Bytes reach the parser in pieces no longer than the room left, so at most
    `max_header_bytes` of a request's headers are held (twice that when a pipelined
    request starts inside a piece of the previous one's body).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.bounds: HttpBounds = getattr(config, "bounds", HttpBounds())
        self._reading_headers = True
        self._chunked = False
        self._phase_bytes = 0
        self._over_limit = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.bounds.max_connections:
            self._over_limit = True
            self._arm(REFUSED_GRACE_SECONDS, self.transport.close)
        else:
            self._arm(self.bounds.header_timeout, self._headers_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._over_limit:
            logger.warning("Refused a connection: LIMIT_CONCURRENCY reached")
            self._refuse(503, MSG_TOO_MANY_CONNECTIONS)
            return
        if self._reading_headers and self._timer is None:
            # The first byte of a request on a kept-alive connection.
            self._arm(self.bounds.header_timeout, self._headers_timed_out)
        while data and not self.transport.is_closing():
            if self._reading_headers:
                room = self.bounds.max_header_bytes - self._phase_bytes
                if room <= 0:
                    logger.warning("Refused a request: headers over HTTP_MAX_HEADER_BYTES")
                    self._refuse(431, MSG_HEADERS_TOO_LARGE)
                    return
            elif self._chunked:
                room = self.bounds.max_chunked_body_bytes - self._phase_bytes
                if room <= 0:
                    self._refuse(413, MSG_TOO_LARGE)
                    return
            else:
                room = self.bounds.max_header_bytes
            piece, data = data[:room], data[room:]
            self._phase_bytes += len(piece)
            super().data_received(piece)

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn's warning would advise installing a WebSocket library: none is wanted.
        logger.debug("Upgrade request served as plain HTTP")

    # Parser callbacks: where a request's headers end and where it ends.
    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._phase_bytes = 0
        self._chunked = any(name == b"transfer-encoding" for name, _ in self.headers)
        self._arm(self.bounds.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_headers = True
        self._phase_bytes = 0
        self._disarm()
        super().on_message_complete()

    # Timers
    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_timed_out(self) -> None:
        self._timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request began while the previous answer is being made.
            self._arm(self.bounds.header_timeout, self._headers_timed_out)
        elif self._phase_bytes == 0:
            self.transport.close()  # nothing of a request arrived: an idle connection
        else:
            logger.info("Closed a connection: headers not received within the timeout")
            self._refuse(408, MSG_TIMEOUT)

    def _body_timed_out(self) -> None:
        self._timer = None
        logger.info("Closed a connection: body not received within the timeout")
        self._refuse(408, MSG_TIMEOUT)

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` with the service's error body unless another answer is due
        first or already begun, then close."""
        cycle = self.cycle
        if self._reading_headers:  # `cycle` is the previous request's
            answer = cycle is None or cycle.response_complete
        else:
            answer = cycle is not None and not cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The request in flight reads a disconnect; what it sends now is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer and not self.transport.is_closing():
            body = json.dumps({"detail": detail}).encode()
            head = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                head.append(name + b": " + value + b"\r\n")
            head.append(b"content-type: application/json\r\n")
            head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
            head.append(b"connection: close\r\n\r\n")
            self.transport.write(b"".join(head) + body)
        self.transport.close()


def server_config(settings: Settings) -> BoundedConfig:
    """uvicorn's configuration for `settings`: proxy headers only from TRUSTED_PROXIES."""
    trusted = ",".join(settings.trusted_proxies)
    return BoundedConfig(
        "app.main:app",
        bounds=HttpBounds.from_settings(settings),
        host=settings.host,
        port=settings.port,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        timeout_keep_alive=settings.http_keepalive_timeout_seconds,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        log_config=None,
        server_header=False,
        workers=settings.workers,
    )


def _bind_metrics(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        logger.error("METRICS_PORT %d: %s", port, exc)
        sys.exit(STARTUP_FAILURE)
    logger.info("Metrics on http://%s:%d/metrics", host, port)
    sock.set_inheritable(True)
    return sock


def serve(settings: Settings) -> None:
    """Run WORKERS processes on PORT (and METRICS_PORT), each accepting on both."""
    config = server_config(settings)
    sockets = [config.bind_socket()]
    if settings.metrics_port is not None:
        sockets.append(_bind_metrics(settings.host, settings.metrics_port))
    server = uvicorn.Server(config)
    if config.workers > 1:
        Multiprocess(config, sockets=sockets).run()
        return
    server.run(sockets=sockets)
    if not server.started:
        sys.exit(STARTUP_FAILURE)
