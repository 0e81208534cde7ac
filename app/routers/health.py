"""Probes for Kubernetes and metrics for Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.dependencies import ResourcesDep

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
    description="200 when the database answers with migrations at head, the rate-limit "
    "storage answers (with Redis) and the verification provider is configured; otherwise "
    "503 naming the failed check. Twilio being down does not make a pod unready.",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"status": "ok", "checks": {"database": "ok", "provider": "ok"}}
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
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """Whether this process can serve logins."""
    checks = await resources.readiness.check()
    ready = all(state == "ok" for state in checks.values())
    body: dict[str, Any] = {"status": "ok" if ready else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(resources: ResourcesDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(resources.metrics.registry), media_type=CONTENT_TYPE_LATEST)
