"""An app without rate limits, so that one number can log in several times in a test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import ClientFactory
from tests.helpers import NO_LIMITS


@pytest.fixture
async def client(client_for: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app with the default test settings and no rate limits."""
    async with client_for(**NO_LIMITS) as http:
        yield http
