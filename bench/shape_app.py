"""The shape's floor: the service's fixed stack doing a login's work, and nothing else.

What the service is built from, with none of its own features: a FastAPI route
with a Pydantic body and answer model, the httpx client on the aiohttp
transport the service ships with (same `create_http_client`), the service's
cheapest SQLAlchemy path (`UnitOfWork.commit_statement_now`, one autocommitted statement per
call), a python-jose JWT and the service's garbage collector tuning. No
middleware, limits, phone parsing, logs, metrics, sessions or refresh tokens.

- send-verification: Twilio start, then INSERT the pending verification.
- verify-code: Twilio check (by `To`), then INSERT … ON CONFLICT the user
  RETURNING its id, and sign an access token.

That is one statement per request, the least a service that stores its
logins can run (the service runs one per send and two per verify).

`SHAPE_DB=0` leaves the database out (the Twilio call only, sid and user id
made up); `SHAPE_CLIENT=aiohttp` calls Twilio through an aiohttp session
instead of httpx, as the floor does, which leaves FastAPI as the only
difference from the floor (`httpx-native`: httpx's own transport). Measured
beside the floor (`bench/run.sh --shape`), each tells how much of the floor's
requests/s its stack leaves to the service: a target above that ratio cannot
be met by a service built on it.

    uvicorn bench.shape_app:app   (environment: see ShapeConfig.from_env)
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from fastapi import FastAPI, HTTPException
from jose import jwt
from pydantic import BaseModel
from sqlalchemy import bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite

from app.core.config import Settings
from app.core.database import Database, create_engine
from app.core.garbage_collection import tuned_for_serving
from app.models.base import table_of
from app.models.user import User
from app.models.verification import Verification
from app.services.verification.providers.http_client import create_http_client

ACCOUNT, TOKEN = "AC" + "1" * 32, "twilio-auth-token-for-tests"
SECRET = "shape-secret-key-that-is-long-enough-0123456789abcdef"  # noqa: S105
INVALID_CODE = "Invalid or expired verification code"


@dataclass(frozen=True)
class ShapeConfig:
    """Which stack to run, and against what."""

    twilio_url: str = "http://127.0.0.1:18480"
    database_url: str = "sqlite+aiosqlite:///./shape.db"
    with_db: bool = True
    # "httpx": the service's client (httpx on the aiohttp transport); "httpx-native":
    # httpx's own transport; "aiohttp": an aiohttp session, as the floor's.
    client: str = "httpx"
    max_connections: int = 100

    @classmethod
    def from_env(cls) -> ShapeConfig:
        """From FAKE_TWILIO_URL, DATABASE_URL, SHAPE_DB, SHAPE_CLIENT, SHAPE_MAX_CONNECTIONS."""
        return cls(
            twilio_url=os.environ.get("FAKE_TWILIO_URL", cls.twilio_url),
            database_url=os.environ.get("DATABASE_URL", cls.database_url),
            with_db=os.environ.get("SHAPE_DB", "1") != "0",
            client=os.environ.get("SHAPE_CLIENT", cls.client),
            max_connections=int(os.environ.get("SHAPE_MAX_CONNECTIONS", cls.max_connections)),
        )


class SendIn(BaseModel):
    """A send-verification body."""

    phone: str


class SendOut(BaseModel):
    """A send-verification answer."""

    success: bool
    phone: str
    channel: str


class VerifyIn(BaseModel):
    """A verify-code body."""

    phone: str
    verification_code: str


class VerifyOut(BaseModel):
    """A verify-code answer."""

    access_token: str
    token_type: str
    expires_in: int
    user_id: int


_V, _U = table_of(Verification), table_of(User)
# Built once with bind parameters, as the service builds its statements.
INSERT_VERIFICATION = insert(_V).values(
    {name: bindparam(name) for name in ("phone", "provider_sid", "created_at", "expires_at")}
    | {"updated_at": bindparam("created_at"), "market": "KG", "channel": "sms"}
    | {"provider": "twilio", "status": "pending", "failed_attempts": 0}
)


def _upsert_user(dialect: str) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement = module.insert(_U).values(
        phone=bindparam("phone"),
        name=bindparam("phone"),
        market="KG",
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    return statement.on_conflict_do_update(
        index_elements=[_U.c.phone], set_={"last_login_at": statement.excluded.created_at}
    ).returning(_U.c.id)


class _Stack:
    """The engine and the client, made in the lifespan."""

    def __init__(self, config: ShapeConfig) -> None:
        settings = Settings(
            _env_file=None,
            database_url=config.database_url,
            twilio_max_connections=config.max_connections,
            twilio_http_transport="httpx" if config.client == "httpx-native" else "aiohttp",
        )
        self.config = config
        self.service_url = f"{config.twilio_url.rstrip('/')}/v2/Services/VA{'a' * 32}"
        self.engine = create_engine(settings)
        self.database = Database(self.engine)
        self.upsert_user = _upsert_user(self.database.dialect)
        self.client = create_http_client(settings)
        self.session: aiohttp.ClientSession | None = None
        if config.client == "aiohttp":
            connector = aiohttp.TCPConnector(limit=config.max_connections, keepalive_timeout=60)
            self.session = aiohttp.ClientSession(connector=connector)
        credentials = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
        self.aiohttp_headers = {"Authorization": f"Basic {credentials}"}

    async def twilio(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        """POST `form` to the Verify service's `path`; its JSON, or 502."""
        answer: dict[str, Any]
        url = f"{self.service_url}/{path}"
        if self.session is not None:
            async with self.session.post(url, data=form, headers=self.aiohttp_headers) as reply:
                if reply.status >= 300:
                    raise HTTPException(502, "Twilio refused")
                answer = await reply.json(content_type=None)
                return answer
        response = await self.client.post(url, data=form, auth=(ACCOUNT, TOKEN))
        if response.status_code >= 300:
            raise HTTPException(502, "Twilio refused")
        answer = response.json()
        return answer

    async def aclose(self) -> None:
        """Close the clients and the pool."""
        if self.session is not None:
            await self.session.close()
        await self.client.aclose()
        await self.engine.dispose()


def create_app(config: ShapeConfig) -> FastAPI:
    """The shape's floor for `config`."""
    stack: list[_Stack] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stack.append(_Stack(config))
        with tuned_for_serving():
            yield
        await stack.pop().aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/v1/auth/send-verification")
    async def send_verification(body: SendIn) -> SendOut:
        shape = stack[0]
        answer = await shape.twilio("Verifications", {"To": body.phone, "Channel": "sms"})
        if config.with_db:
            now = dt.datetime.now(dt.UTC)
            params = {"phone": body.phone, "provider_sid": answer["sid"], "created_at": now}
            params["expires_at"] = now + dt.timedelta(minutes=10)
            await shape.database.unit_of_work().commit_statement_now(INSERT_VERIFICATION, params)
        return SendOut(success=True, phone=body.phone, channel="sms")

    @app.post("/api/v1/auth/verify-code")
    async def verify_code(body: VerifyIn) -> VerifyOut:
        shape = stack[0]
        form = {"To": body.phone, "Code": body.verification_code}
        answer = await shape.twilio("VerificationCheck", form)
        if answer.get("status") != "approved":
            raise HTTPException(400, INVALID_CODE)
        user_id = 0
        if config.with_db:
            params = {"phone": body.phone, "now": dt.datetime.now(dt.UTC)}
            user = await shape.database.unit_of_work().commit_statement_now(
                shape.upsert_user, params
            )
            user_id = user.id if user is not None else 0
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
        token = jwt.encode({"sub": str(user_id), "exp": expires}, SECRET, algorithm="HS256")
        return VerifyOut(
            access_token=token,
            token_type="bearer",  # noqa: S106
            expires_in=900,
            user_id=user_id,
        )

    return app


app = create_app(ShapeConfig.from_env())
