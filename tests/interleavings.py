"""Concurrent requests interleaved on purpose at the database, for the race tests.

A natural race (`asyncio.gather`) hits one interleaving at random, and on a quiet
machine nearly always the same one. A `Schedule` picks it instead: the requests run as
named tasks, and they take turns at their database statements. `schedule(("a", 3),
("b", None), ("a", None))` runs task `a` up to (not including) its statement 3 (counted
from 0), then `b` to its end, then `a` to its end. A turn also ends when its task is
stuck in a statement for `STUCK_AFTER` seconds, waiting on a lock that a waiting task
holds (a PostgreSQL row lock, or SQLite's write lock); the stuck statement goes on when
the lock is freed. Once the turns are over every task runs freely.

A test moves the switch through every statement of one request in turn, until the
request ends before reaching it (`Schedule.stopped` false): the other request then
lands in every gap of it.

The turns are taken in SQLAlchemy's `before_cursor_execute`, which the async engines
call in the greenlet of the request's own task, so a task waits with `await_only`
without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.util import await_only

T = TypeVar("T")

# A statement running this long is waiting on a lock.
STUCK_AFTER = 0.1
# No wait lasts longer: a schedule that cannot go on fails the test instead of hanging.
LONGEST_WAIT = 20.0

Turn = tuple[str, int | None]


class Schedule:
    """Turns of named tasks at their statements (see the module)."""

    def __init__(self, turns: tuple[Turn, ...]) -> None:
        self._turns = turns
        self._turn = 0
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._counts: dict[str, int] = {}
        self._running: dict[str, float] = {}
        self.stopped = False

    async def run(self, **requests: Coroutine[Any, Any, T]) -> dict[str, T]:
        """Run each request as a task of its name, under the turns; results by name."""
        self._counts = dict.fromkeys(requests, 0)
        self._tasks = {name: asyncio.create_task(c, name=name) for name, c in requests.items()}
        results = await asyncio.gather(*self._tasks.values())
        return dict(zip(requests, results, strict=True))

    def statements(self, name: str) -> int:
        """How many statements task `name` ran."""
        return self._counts[name]

    def _task_name(self) -> str | None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no event loop in this thread: not a request's statement
            return None
        name = task.get_name() if task is not None else None
        return name if name in self._counts else None

    def _before(self, *_args: Any) -> None:
        name = self._task_name()
        if name is None:
            return
        index = self._counts[name]
        self._counts[name] = index + 1
        await_only(self._wait_for_turn(name, index))
        self._running[name] = time.monotonic()

    def _after(self, *_args: Any) -> None:
        name = self._task_name()
        if name is not None:
            self._running.pop(name, None)

    def _next_turns(self) -> None:
        """Pass the turn on while its task has ended or is stuck."""
        now = time.monotonic()
        while self._turn < len(self._turns):
            name = self._turns[self._turn][0]
            started = self._running.get(name)
            if not (self._tasks[name].done() or (started and now - started >= STUCK_AFTER)):
                return
            self._turn += 1

    async def _wait_for_turn(self, name: str, index: int) -> None:
        deadline = time.monotonic() + LONGEST_WAIT
        while time.monotonic() < deadline:
            self._next_turns()
            if self._turn >= len(self._turns):
                return
            who, stop = self._turns[self._turn]
            if who == name:
                if stop is None or index < stop:
                    return
                if self._turn == 0:
                    self.stopped = True
                self._turn += 1
                continue
            await asyncio.sleep(0.005)
        raise AssertionError(f"{name} waited {LONGEST_WAIT} s for its turn in {self._turns}")


@contextmanager
def schedule(*turns: Turn) -> Iterator[Schedule]:
    """A `Schedule` of `turns`, taken at every engine's statements while the block runs."""
    stage = Schedule(turns)

    def failed(_context: Any) -> None:
        stage._after()

    event.listen(Engine, "before_cursor_execute", stage._before)
    event.listen(Engine, "after_cursor_execute", stage._after)
    event.listen(Engine, "handle_error", failed)
    try:
        yield stage
    finally:
        event.remove(Engine, "before_cursor_execute", stage._before)
        event.remove(Engine, "after_cursor_execute", stage._after)
        event.remove(Engine, "handle_error", failed)
