"""The `users` table: one row per phone number that has logged in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UTCDateTime, utcnow

# The largest id the Integer column holds (PostgreSQL's integer is 32 bits).
MAX_USER_ID = 2**31 - 1


class User(Base):
    """A person, identified by their phone number in E.164 form."""

    __tablename__ = "users"
    # SQLite: ids of deleted users are never given again (PostgreSQL's sequences never do).
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 (SQLAlchemy reads it)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(150))
    full_name: Mapped[str] = mapped_column(String(255), default="")
    market: Mapped[str] = mapped_column(String(8))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # Role names (`app.core.roles`), sorted; access tokens carry them as `roles`. Only a
    # server default: the login's one statement inserts users without naming the column.
    roles: Mapped[list[str]] = mapped_column(JSON, server_default="[]")
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(255), default=None)
