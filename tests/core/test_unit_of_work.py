"""The unit of work: the request's transaction, and writes committed now."""

from __future__ import annotations

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.models.base import utcnow
from app.models.user import User


def _user(phone: str) -> User:
    now = utcnow()
    return User(
        phone=phone, name=phone[-9:], market="KG", created_at=now, updated_at=now, is_active=True
    )


async def phones(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(select(User.phone).order_by(User.phone))
        return list(result.scalars())


async def test_the_request_transaction_commits_only_when_asked(db_engine: AsyncEngine) -> None:
    database = Database(db_engine)
    kept, dropped = database.unit_of_work(), database.unit_of_work()
    try:
        kept.session.add(_user("+996555000001"))
        await kept.session.flush()
        await kept.commit()
        dropped.session.add(_user("+996555000002"))
        await dropped.session.flush()
        await dropped.rollback()
    finally:
        await kept.close()
        await dropped.close()

    assert await phones(db_engine) == ["+996555000001"]


async def test_a_write_committed_now_stands_when_the_request_rolls_back(
    db_engine: AsyncEngine,
) -> None:
    uow = Database(db_engine).unit_of_work()
    try:
        await uow.commit_statement_now(
            insert(User).values(
                phone="+996555000003",
                name="555000003",
                market="KG",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        uow.session.add(_user("+996555000004"))
        await uow.session.flush()
        await uow.rollback()
    finally:
        await uow.close()

    assert await phones(db_engine) == ["+996555000003"]


async def test_committed_now_inside_a_request_transaction_commits_it(
    db_engine: AsyncEngine,
) -> None:
    """What the request wrote before a write that must stand, stands with it."""
    uow = Database(db_engine).unit_of_work()
    try:
        uow.session.add(_user("+996555000005"))
        await uow.session.flush()
        renamed = await uow.committed_now(
            lambda connection: (
                connection.execute(
                    update(User).where(User.phone == "+996555000005").values(name="renamed")
                ).rowcount
            )
        )
        await uow.rollback()
    finally:
        await uow.close()

    assert renamed == 1
    async with db_engine.connect() as connection:
        name = await connection.scalar(select(User.name).where(User.phone == "+996555000005"))
    assert name == "renamed"


async def test_commit_statement_now_answers_the_first_row_or_none(
    db_engine: AsyncEngine,
) -> None:
    uow = Database(db_engine).unit_of_work()
    try:
        counted = await uow.commit_statement_now(select(func.count()).select_from(User))
        updated = await uow.commit_statement_now(update(User).values(name="x"))
    finally:
        await uow.close()

    assert counted is not None
    assert counted[0] == 0
    assert updated is None
