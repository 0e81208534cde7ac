"""METRICS_PORT: /metrics is served on that port only, and that port serves nothing else,
so the API's port (the one the Ingress reaches) never exposes the metrics."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

METRICS_PATH = "/metrics"
_NOT_FOUND = b'{"detail":"Not Found"}'


class MetricsPortMiddleware:
    """404 for /metrics on any other port, and for any other path on the metrics port."""

    def __init__(self, app: ASGIApp, metrics_port: int) -> None:
        self.app = app
        self.metrics_port = metrics_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server = scope.get("server")
            on_metrics_port = server is not None and server[1] == self.metrics_port
            if on_metrics_port != (scope["path"] == METRICS_PATH):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(_NOT_FOUND)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": _NOT_FOUND})
                return
        await self.app(scope, receive, send)
