"""Per-request context for logs (request id, route, masked phone) and the ASGI
middleware that sets it, answers `X-Request-ID`, counts requests and logs each one."""

from __future__ import annotations

import itertools
import logging
import os
import re
import secrets
import time
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import Metrics

logger = logging.getLogger("app.access")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
route_var: ContextVar[str | None] = ContextVar("route", default=None)
phone_var: ContextVar[str | None] = ContextVar("phone", default=None)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
UNMATCHED_ROUTE = "unmatched"


class _RequestIds:
    """32 hex characters: 64 random bits per process, then a counter.

    As unique as a UUID4 for tracing, without reading the system's random
    source on every request. Made again after a fork, so workers never share.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        """A new request id."""
        if self._pid != os.getpid():
            self._pid, self._prefix = os.getpid(), secrets.token_hex(8)
            self._counter = itertools.count()
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFFFFFF:016x}"


_request_ids = _RequestIds()


def set_log_phone(masked: str) -> None:
    """Attach the masked phone of this request to its log lines."""
    phone_var.set(masked)


class RequestContextMiddleware:
    """Request id in and out, logging context, metrics and one access log line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics, quiet_paths: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.quiet_paths = quiet_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = (
            incoming if incoming and _REQUEST_ID.fullmatch(incoming) else _request_ids.next()
        )
        id_token = request_id_var.set(request_id)
        route_token = route_var.set(None)
        phone_token = phone_var.set(None)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            route_var.set(template)
            method = scope.get("method", "")
            labels = (method, template, str(status))
            self.metrics.http_requests.labels(*labels).inc()
            self.metrics.http_latency.labels(*labels).observe(duration)
            if template not in self.quiet_paths:
                logger.info(
                    "%s %s %s",
                    method,
                    template,
                    status,
                    extra={"status": status, "duration_ms": round(duration * 1000, 2)},
                )
            phone_var.reset(phone_token)
            route_var.reset(route_token)
            request_id_var.reset(id_token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None
