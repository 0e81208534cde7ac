"""Operations: probes for Kubernetes, metrics for Prometheus, and the API's own
documentation (/docs and /redoc served with assets from the installed
`fastapi-offline` package, so they work in a cluster with no internet)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response as StarletteResponse
from starlette.staticfiles import StaticFiles

from app.core.errors import MSG_DATABASE_UNAVAILABLE, SUCCESS_ENVELOPE_ROUTES
from app.core.request_limits import MSG_MEDIA_TYPE, MSG_TOO_LARGE
from app.dependencies.ops import DeliveryStatsDep, MetricsDep, ReadinessDep
from app.schemas.errors import DetailBody, SendErrorBody, as_documented, error_response
from app.schemas.ops import HealthBody, ReadinessBody
from app.services.ops.service import overall

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process runs; touches no dependency.",
    response_model=HealthBody,
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> HealthBody:
    """The process is alive."""
    return HealthBody()


# HEAD for the probes and monitors that use it: the same status, no body. Not in the
# document, whose operations are one per method and name.
@router.head("/healthz", include_in_schema=False)
async def healthz_head() -> Response:
    """The process is alive (no body)."""
    return Response(status_code=200, media_type="application/json")


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the database answers with migrations at head and the "
    "verification provider is configured; otherwise 503 naming the failed check. With "
    "Redis, `rate_limit_storage` is `ok`, or `degraded` while Redis cannot be reached: "
    "the limits are then the process's own and logins keep working, so the pod stays "
    "ready (200, `status` `degraded`). With Redis, the body's own `rate_limit_storage` "
    "names its topology (`single`, `sentinel`, `cluster`) and, with Sentinel, the master "
    "failovers this process has seen (`failovers`) and when it saw the last "
    "(`last_failover_at`). Twilio being down does not make a pod unready. "
    "`providers` gives each configured verification provider's state: `ok`, or "
    "`circuit open` while it fails fast (sends then go to the next provider of the "
    "market's order).",
    response_model=ReadinessBody,
    responses={
        200: {
            "content": {
                "application/json": {
                    "examples": {
                        "ready": {
                            "summary": "Ready",
                            "value": {
                                "status": "ok",
                                "checks": {
                                    "database": "ok",
                                    "provider": "ok",
                                    "rate_limit_storage": "ok",
                                },
                                "rate_limit_storage": {
                                    "topology": "sentinel",
                                    "failovers": 1,
                                    "last_failover_at": "2026-11-30T09:00:00Z",
                                },
                                "providers": {"twilio": "ok", "vonage": "ok"},
                            },
                        },
                        "degraded": {
                            "summary": "Ready, with limits per process (Redis unreachable)",
                            "value": {
                                "status": "degraded",
                                "checks": {
                                    "database": "ok",
                                    "provider": "ok",
                                    "rate_limit_storage": "degraded",
                                },
                                "rate_limit_storage": {"topology": "cluster"},
                            },
                        },
                    }
                }
            }
        },
        503: {
            "model": ReadinessBody,
            "description": "A dependency is not ready",
            "content": {
                "application/json": {
                    "example": {
                        "status": "unavailable",
                        "checks": {"database": "unreachable", "provider": "ok"},
                    }
                }
            },
        },
    },
)
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    """Whether this process can serve logins."""
    checks = await readiness.check()
    status = overall(checks)
    body: dict[str, Any] = {"status": status, "checks": checks}
    storage = readiness.storage()
    if storage is not None:
        body["rate_limit_storage"] = storage
    providers = readiness.providers()
    if providers:
        body["providers"] = providers
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


@router.head("/readyz", include_in_schema=False)
async def readyz_head(readiness: ReadinessDep) -> Response:
    """Whether this process can serve logins, as a status only."""
    status = overall(await readiness.check())
    return Response(status_code=503 if status == "unavailable" else 200)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep, delivery: DeliveryStatsDep) -> Response:
    """Prometheus metrics of this process, and the delivery gauges read from the
    database (cached for `DELIVERY_METRICS_CACHE_SECONDS`)."""
    await delivery.refresh()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


ASSETS = "/static/docs"
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# The assets' names carry no version, so browsers keep them a day and then revalidate
# them (ETag, Last-Modified): an upgrade of fastapi-offline shows within a day.
ASSETS_CACHE_CONTROL = "public, max-age=86400"


class DocsAssets(StaticFiles):
    """The documentation's static files, with `Cache-Control`."""

    def file_response(self, *args: Any, **kwargs: Any) -> StarletteResponse:
        """The file (or 304), cacheable."""
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = ASSETS_CACHE_CONTROL
        return response


def install_docs(app: FastAPI) -> None:
    """Mount the assets and the two documentation pages."""
    static = files("fastapi_offline") / "static"
    # ReDoc's sidebar loads its vendor's logo from a CDN; point it at our own asset.
    redoc_js = (
        (static / "redoc.standalone.js")
        .read_text(encoding="utf-8")
        .replace(REDOC_CDN_LOGO, f"{ASSETS}/favicon.png")
    )

    @app.get(f"{ASSETS}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(
            redoc_js,
            media_type="application/javascript",
            headers={"Cache-Control": ASSETS_CACHE_CONTROL},
        )

    app.mount(ASSETS, DocsAssets(directory=str(static)), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )


# Every /api operation may meet the database down; every operation with a body,
# the body limits of `RequestLimitsMiddleware`.
_DATABASE_DOWN = error_response(
    DetailBody, "The database is unavailable", {"detail": MSG_DATABASE_UNAVAILABLE}
)
_TOO_LARGE = error_response(DetailBody, "Request body over 16 KiB", {"detail": MSG_TOO_LARGE})
_NOT_JSON = error_response(DetailBody, "Body that is not JSON", {"detail": MSG_MEDIA_TYPE})
# The same on the send endpoint, whose errors carry `"success": false`.
_SEND_TOO_LARGE = error_response(
    SendErrorBody, "Request body over 16 KiB", {"success": False, "detail": MSG_TOO_LARGE}
)
_SEND_NOT_JSON = error_response(
    SendErrorBody, "Body that is not JSON", {"success": False, "detail": MSG_MEDIA_TYPE}
)

_REQUEST_ID_HEADER = {
    "description": "The request's id: the client's `X-Request-ID` when it is 1-128 of "
    "`A-Za-z0-9._:-`, else one the service made. Every log line of the request carries it.",
    "schema": {"type": "string"},
}
_RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before trying again: always on 429 (the same as the "
    "body's `retry_after`), on 503 when the wait is known (e.g. while every provider's "
    "circuit is open)",
    "schema": {"type": "integer", "minimum": 1},
}
_WWW_AUTHENTICATE_HEADER = {
    "description": "`Bearer`: the token to send; on a change that needs a recent login, "
    '`Bearer error="insufficient_user_authentication", error_description="A recent '
    'login is required", max_age=300` (RFC 9470; `max_age` is `RECENT_LOGIN_SECONDS`)',
    "required": True,
    "schema": {"type": "string", "example": "Bearer"},
}


def _document_headers(status: str, response: dict[str, Any]) -> None:
    """The headers a response carries: `X-Request-ID` always, `Retry-After` on 429 and
    503, `WWW-Authenticate` on 401."""
    headers = response.setdefault("headers", {})
    headers["X-Request-ID"] = {**_REQUEST_ID_HEADER, "required": True}
    if status == "429":
        headers["Retry-After"] = {**_RETRY_AFTER_HEADER, "required": True}
    elif status == "503":
        headers["Retry-After"] = _RETRY_AFTER_HEADER
    elif status == "401":
        headers["WWW-Authenticate"] = _WWW_AUTHENTICATE_HEADER


def finish_openapi(app: FastAPI) -> None:
    """Validation answers 400 with a field map, so FastAPI's generated 422 goes; every
    /api operation documents the database's 503, every operation with a body the 413
    and 415 of `RequestLimitsMiddleware`, and every response its headers."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = FastAPI.openapi(app)
        for path_name, path in schema.get("paths", {}).items():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path_name.startswith("/api/"):
                    responses.setdefault("503", as_documented(_DATABASE_DOWN))
                if "requestBody" in operation:
                    envelope = operation.get("operationId") in SUCCESS_ENVELOPE_ROUTES
                    too_large, not_json = (
                        (_SEND_TOO_LARGE, _SEND_NOT_JSON) if envelope else (_TOO_LARGE, _NOT_JSON)
                    )
                    responses.setdefault("413", as_documented(too_large))
                    responses.setdefault("415", as_documented(not_json))
                for status, response in responses.items():
                    _document_headers(status, response)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
