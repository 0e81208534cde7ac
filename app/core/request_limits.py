"""Refuse oversized bodies (413) and bodies that are not JSON (415) before any parsing."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 16 * 1024
MSG_TOO_LARGE = f"Request body is too large (at most {MAX_BODY_BYTES} bytes)."
MSG_MEDIA_TYPE = "Unsupported media type: send application/json."
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RequestLimitsMiddleware:
    """413 for a body over 16 KiB (declared or streamed), 415 for a non-JSON body.

    Requests to `envelope_paths` (the send endpoint's) get `"success": false` in
    these bodies too, as every error of theirs does.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY_BYTES,
        envelope_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.envelope_paths = envelope_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        envelope = scope.get("path") in self.envelope_paths
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, MSG_TOO_LARGE, envelope=envelope)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = length not in (None, b"0") or b"transfer-encoding" in headers
        if has_body and content_type and not _is_json(content_type):
            await _reply(send, 415, MSG_MEDIA_TYPE, envelope=envelope)
            return

        # Bodies here are small: read it all first, so an oversized stream without
        # Content-Length is refused before the app sees a byte.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([], message), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body:
                await _reply(send, 413, MSG_TOO_LARGE, envelope=envelope)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(chunks, None, receive), send)


def _replay(chunks: list[bytes], final: Message | None, receive: Receive | None = None) -> Receive:
    """A receive() that gives the buffered body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if final is not None:
                return final
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        if receive is not None:
            return await receive()
        return {"type": "http.disconnect"}

    return replay


def _is_json(content_type: bytes) -> bool:
    return content_type == b"application/json" or (
        content_type.startswith(b"application/") and content_type.endswith(b"+json")
    )


async def _reply(send: Send, status: int, detail: str, *, envelope: bool) -> None:
    answer: dict[str, object] = {"success": False} if envelope else {}
    answer["detail"] = detail
    body = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
