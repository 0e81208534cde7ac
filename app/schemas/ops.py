"""Bodies of the probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class HealthBody(BaseModel):
    """The process runs."""

    status: Literal["ok"] = "ok"


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
