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
from starlette.staticfiles import StaticFiles

from app.core.errors import MSG_DATABASE_UNAVAILABLE
from app.core.request_limits import MSG_MEDIA_TYPE, MSG_TOO_LARGE
from app.dependencies.ops import MetricsDep, ReadinessDep
from app.schemas.errors import DetailBody, as_documented, error_response
from app.services.ops.service import overall

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process runs; touches no dependency.",
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the database answers with migrations at head and the "
    "verification provider is configured; otherwise 503 naming the failed check. With "
    "Redis, `rate_limit_storage` is `ok`, or `degraded` while Redis cannot be reached: "
    "the limits are then the process's own and logins keep working, so the pod stays "
    "ready (200, `status` `degraded`). Twilio being down does not make a pod unready. "
    "`providers` gives each configured verification provider's state: `ok`, or "
    "`circuit open` while it fails fast (sends then go to the next provider of the "
    "market's order).",
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
                            },
                        },
                    }
                }
            }
        },
        503: {
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
    providers = readiness.providers()
    if providers:
        body["providers"] = providers
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


ASSETS = "/static/docs"
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


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
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
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


def finish_openapi(app: FastAPI) -> None:
    """Validation answers 400 with a field map, so FastAPI's generated 422 goes; every
    /api operation documents the database's 503, and every operation with a body the
    413 and 415 of `RequestLimitsMiddleware`."""

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
                    responses.setdefault("413", as_documented(_TOO_LARGE))
                    responses.setdefault("415", as_documented(_NOT_JSON))
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
