"""Fixtures of the admin tests: an app whose Twilio approves every code, and an admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import ClientFactory
from tests.helpers import NO_LIMITS, bearer, login, set_roles


@pytest.fixture
async def client(
    client_for: ClientFactory, twilio_approves: respx.MockRouter
) -> AsyncIterator[httpx.AsyncClient]:
    """The app without limits (the tests log many numbers in), Twilio approving."""
    async with client_for(**NO_LIMITS) as http:
        yield http


@pytest.fixture
async def admin(client: httpx.AsyncClient, db_engine: AsyncEngine) -> dict[str, Any]:
    """A logged-in admin: the verify-code body, plus `headers` for its requests."""
    body = await login(client)
    await set_roles(db_engine, body["user"]["id"], ["admin"])
    return {**body, "headers": bearer(body["access_token"])}
