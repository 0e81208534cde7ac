"""One error tree for the service and the handlers that render it.

Bodies follow the old backend's contract: field errors are a map of lists,
everything else is `{"detail": ...}`; the send endpoint adds `"success": false`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core.core_schema import ErrorType
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.text import MSG_INVALID_TEXT, encodable

logger = logging.getLogger(__name__)

MSG_REQUIRED = "This field is required."
# The default 503: the service exists to send codes, so that is what it says is down.
MSG_SERVICE_UNAVAILABLE = "SMS verification is temporarily unavailable. Please contact support."
MSG_BAD_BODY = "Request body must be a JSON object."
# A body that does not parse as JSON at all; answered with where parsing stopped.
MSG_INVALID_JSON = "Request body is not valid JSON."
MSG_NULL = "This field may not be null."
MSG_READ_ONLY = "This field cannot be changed."
MSG_UNKNOWN_FIELD = "Unknown field."
MSG_INVALID_VALUE = "Invalid value."
# What FastAPI says when a body cannot be read (e.g. not UTF-8).
FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"
MSG_DATABASE_UNAVAILABLE = "The service is temporarily unavailable. Please try again."
MSG_INTERNAL = "Internal server error."

# Routes whose error bodies carry `"success": false` next to `detail` (but a 401's).
SUCCESS_ENVELOPE_ROUTES = frozenset({"send_verification", "send_phone_change_verification"})


class AppError(Exception):
    """An error with a status, a message for the client and optional headers.

    `outcome` names the error in metrics labels (why a send or a check failed).
    """

    status_code = 500
    default_message = MSG_INTERNAL
    outcome = "error"

    def __init__(
        self,
        message: str | None = None,
        status_code: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)
        if status_code is not None:
            self.status_code = status_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body the client sees."""
        return {"detail": self.message}


class FieldErrors(AppError):
    """Bad input, reported per field like the old backend: `{"phone": ["..."]}`."""

    status_code = 400
    outcome = "number_refused"

    def __init__(self, errors: Mapping[str, Sequence[str]]) -> None:
        self.errors = {field: list(messages) for field, messages in errors.items()}
        super().__init__("; ".join(m for ms in self.errors.values() for m in ms))

    def body(self) -> dict[str, Any]:
        """The field map itself."""
        return dict(self.errors)


class BadRequest(AppError):
    """A request the service cannot read at all."""

    status_code = 400
    default_message = MSG_BAD_BODY


class NotAuthenticated(AppError):
    """No usable credentials; answered with `WWW-Authenticate: Bearer`."""

    status_code = 401

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    """Authenticated or identified, but not allowed."""

    status_code = 403
    outcome = "blocked"


class TooManyRequests(AppError):
    """Too many attempts; `retry_after` seconds until the next may succeed."""

    status_code = 429
    outcome = "too_many_attempts"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            message or f"Too many requests. Try again in {self.retry_after} seconds.",
            headers={"Retry-After": str(self.retry_after)},
        )

    def body(self) -> dict[str, Any]:
        """The detail and the wait in seconds."""
        return {"detail": self.message, "retry_after": self.retry_after}


class ServiceUnavailable(AppError):
    """The service cannot do this right now; an operator must act, or the client wait."""

    status_code = 503
    default_message = MSG_SERVICE_UNAVAILABLE
    outcome = "unavailable"


def with_envelope(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """`body` as the route of `request` answers it: on the send endpoint a `detail`
    comes with `"success": false` (a field map stays as it is)."""
    route = request.scope.get("route")
    if "detail" in body and getattr(route, "name", None) in SUCCESS_ENVELOPE_ROUTES:
        return {"success": False, **body}
    return body


async def app_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render an `AppError`; on the send endpoint a `detail` comes with `"success": false`."""
    assert isinstance(exc, AppError)
    body = exc.body()
    if exc.status_code != 401:  # a token's answer is the same on every route
        body = with_envelope(request, body)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers or None)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Render request validation as 400 with the old backend's field map; a body that is
    not JSON at all says where parsing stopped."""
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            body = invalid_json_body(exc.body, loc[-1] if len(loc) > 1 else None)
            return JSONResponse(with_envelope(request, body), status_code=400)
        if loc in {("body",), ()}:
            return JSONResponse(with_envelope(request, {"detail": MSG_BAD_BODY}), status_code=400)
        field = str(loc[1]) if loc[0] == "body" and len(loc) > 1 else str(loc[-1])
        errors.setdefault(field, []).append(_message(error))
    return JSONResponse(errors, status_code=400)


def invalid_json_body(document: Any, position: Any) -> dict[str, Any]:
    """The 400 body of a body that is not valid JSON: the message and the 1-based `line`
    and `column` where parsing stopped (as Python's `json` counts them)."""
    if not isinstance(document, str) or not isinstance(position, int):
        return {"detail": MSG_INVALID_JSON}
    position = max(0, min(position, len(document)))
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return {"detail": MSG_INVALID_JSON, "line": line, "column": column}


# pydantic's own error types; any other type is one of the service's
# `PydanticCustomError`s, whose message is already the contract's.
_PYDANTIC_ERRORS = frozenset(get_args(ErrorType))


def _message(error: Mapping[str, Any]) -> str:
    """The message of one field error, in the old backend's (DRF's) words: pydantic's
    own phrasing never reaches a client."""
    kind = error.get("type")
    value = error.get("input")
    # Whatever the check that failed, its message must not quote text that cannot be
    # encoded, and the client reads one message for such text on every field.
    if kind == "string_unicode" or (isinstance(value, str) and not encodable(value)):
        return MSG_INVALID_TEXT
    if kind not in _PYDANTIC_ERRORS:
        return str(error.get("msg") or MSG_INVALID_VALUE)
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return MSG_REQUIRED
    if kind == "extra_forbidden":
        return MSG_UNKNOWN_FIELD
    if value is None:
        return MSG_NULL
    if kind == "string_type":
        return "Not a valid string."
    if kind in {"string_too_short", "too_short"} and ctx.get("min_length") == 1:
        return "This field may not be blank."
    if kind in {"string_too_long", "too_long"}:
        return f"Ensure this field has no more than {ctx.get('max_length')} characters."
    if kind in {"bool_type", "bool_parsing"}:
        return "Must be a valid boolean."
    if kind in {"literal_error", "enum"}:
        return _not_a_choice(value)
    return MSG_INVALID_VALUE


def _not_a_choice(value: Any) -> str:
    """DRF's ChoiceField message: `"email" is not a valid choice.`"""
    text = value if isinstance(value, str) else json.dumps(value)[:32]
    return f'"{text[:32]}" is not a valid choice.'


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The database is unreachable or dropped the connection: 503, and the log says why."""
    if isinstance(exc, DBAPIError) and not (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        logger.exception("Database error during %s %s", request.method, request.url.path)
        return JSONResponse(with_envelope(request, {"detail": MSG_INTERNAL}), status_code=500)
    logger.error(
        "Database unavailable during %s %s: %s",
        request.method,
        getattr(request.scope.get("route"), "path", "?"),
        type(getattr(exc, "orig", None) or exc).__name__,
    )
    return await app_error_handler(request, ServiceUnavailable(MSG_DATABASE_UNAVAILABLE))


# Errors that mean "the database cannot be reached", not "the query is wrong".
DATABASE_DOWN_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    DisconnectionError,
    SQLAlchemyTimeoutError,
    ConnectionError,
    TimeoutError,
)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own errors as `{"detail": ...}`; an unreadable body in the contract's words."""
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == 400 and detail == FASTAPI_BODY_PARSE_ERROR:
        cause = exc.__cause__
        if isinstance(cause, UnicodeDecodeError):  # not UTF-8, e.g. cut inside a character
            read = cause.object[: cause.start].decode("utf-8", "replace")
            body = invalid_json_body(read, len(read))
            return JSONResponse(with_envelope(request, body), status_code=400)
        detail = MSG_BAD_BODY
    return JSONResponse(
        with_envelope(request, {"detail": detail}),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    for error in DATABASE_DOWN_ERRORS:
        app.add_exception_handler(error, database_error_handler)
