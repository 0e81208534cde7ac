"""The request's unit of work.

Routes of the routers built with `UnitOfWorkRoute` run in one unit of work:
committed when the endpoint returns, rolled back when it raises, and closed
either way, before the response is sent (a 200 means it is stored). The
route does it rather than a dependency with `yield`, whose exit FastAPI
shields in a cancel scope on every request: this is the login's hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from app.core.database import Database, UnitOfWork

_SCOPE_KEY = "phone_auth.unit_of_work"


class UnitOfWorkRoute(APIRoute):
    """A route whose request runs in one unit of work (`UnitOfWorkDep`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint's handler, inside a unit of work."""
        handler = super().get_route_handler()

        async def in_unit_of_work(request: Request) -> Response:
            database: Database = request.app.state.database
            uow = request.scope[_SCOPE_KEY] = database.unit_of_work()
            try:
                response = await handler(request)
            except BaseException:
                await uow.rollback()
                raise
            else:
                await uow.commit()
                return response
            finally:
                await uow.close()

        return in_unit_of_work


async def get_unit_of_work(request: Request) -> UnitOfWork:
    """The unit of work of this request (routes of a `UnitOfWorkRoute` router)."""
    uow: UnitOfWork = request.scope[_SCOPE_KEY]
    return uow


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]
