"""What the users domain refuses, in its own words."""

from __future__ import annotations

from app.core.errors import FieldErrors, Forbidden

MSG_USER_INACTIVE = "User account is disabled."
MSG_READ_ONLY = "This field cannot be changed."


class UserDisabled(Forbidden):
    """The account is disabled: no login, refresh or request goes through."""

    default_message = MSG_USER_INACTIVE


class ReadOnlyFields(FieldErrors):
    """A profile change that would change a read-only field."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__({field: [MSG_READ_ONLY] for field in fields})
