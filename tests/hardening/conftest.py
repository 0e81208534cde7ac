"""Fixtures of the hardening tests: apps whose log records reach `caplog`."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from tests.conftest import ClientFactory


@pytest.fixture
def client_for(client_for: ClientFactory, caplog: pytest.LogCaptureFixture) -> ClientFactory:
    """The shared `client_for`, with `caplog` seeing every record of the app it builds.

    `create_app` reconfigures logging, which replaces the root logger's handlers
    (pytest's `caplog` among them), so the capture handler is put back after it.
    """

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        running = client_for(**overrides)
        root = logging.getLogger()
        if caplog.handler not in root.handlers:
            root.addHandler(caplog.handler)
        return running

    return factory
