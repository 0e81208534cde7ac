"""A database statement that fails on purpose, the way a driver or a lost connection
fails it, for the tests of what the service logs and answers then."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError


class ServerClosedTheConnection(Exception):
    """A database driver's own error, as SQLAlchemy keeps it in `orig`."""


# Each failure, and the name the service's log gives its cause: the driver's error when
# there is one (SQLAlchemy's wrapper says less), else the exception itself.
FAILURES = [
    pytest.param(ConnectionResetError(), "ConnectionResetError", id="connection-reset"),
    pytest.param(
        OperationalError("statement", None, ServerClosedTheConnection()),
        "ServerClosedTheConnection",
        id="driver-error",
    ),
]


@contextmanager
def failing_statements(matches: Callable[[str], bool]) -> Iterator[list[BaseException]]:
    """Every engine fails the next statement that `matches` with the exception the test
    puts in the list (nothing fails while the list is empty)."""
    failures: list[BaseException] = []

    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if failures and matches(statement):
            raise failures.pop()

    event.listen(Engine, "before_cursor_execute", fail)
    try:
        yield failures
    finally:
        event.remove(Engine, "before_cursor_execute", fail)
