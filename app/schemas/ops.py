"""Bodies of the probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthBody(BaseModel):
    """The process runs."""

    status: Literal["ok"] = "ok"


class RateLimitStorageBody(BaseModel):
    """The Redis behind the limits, as this process sees it."""

    topology: Literal["single", "sentinel", "cluster"]
    failovers: int | None = Field(
        default=None, description="Sentinel: master failovers this process has seen"
    )
    last_failover_at: str | None = Field(
        default=None, description="Sentinel: when it saw the last (UTC), null before one"
    )


class ReadinessBody(BaseModel):
    """Whether this process can serve logins, and the state of each check."""

    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="`ok` and `degraded` answer 200 (serving), `unavailable` 503"
    )
    checks: dict[str, str] = Field(
        description="`database`, `provider` and, with Redis, `rate_limit_storage`: `ok`, "
        "`degraded`, or why not (e.g. `unreachable`, `not configured`, "
        "`migrations not at head`)",
        examples=[{"database": "ok", "provider": "ok"}],
    )
    rate_limit_storage: RateLimitStorageBody | None = Field(
        default=None, description="With Redis: its topology and, with Sentinel, the failovers seen"
    )
