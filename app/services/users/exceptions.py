"""What the users domain refuses, in its own words."""

from __future__ import annotations

from app.core.errors import MSG_READ_ONLY, FieldErrors, Forbidden

__all__ = ["MSG_READ_ONLY", "MSG_USER_INACTIVE", "ReadOnlyFields", "UserDisabled"]

MSG_USER_INACTIVE = "User account is disabled."


class UserDisabled(Forbidden):
    """The account is disabled: no login, refresh or request goes through."""

    default_message = MSG_USER_INACTIVE


class ReadOnlyFields(FieldErrors):
    """A profile change that would change a read-only field."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__({field: [MSG_READ_ONLY] for field in fields})
