"""The request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from app.core.database import Database, UnitOfWork


async def get_unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    """One unit of work per request: committed on success, rolled back on error."""
    database: Database = request.app.state.database
    uow = database.unit_of_work()
    try:
        yield uow
    except BaseException:
        await uow.rollback()
        raise
    else:
        await uow.commit()
    finally:
        await uow.close()


# scope="function" commits before the response is sent, so a 200 means it is stored.
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]
