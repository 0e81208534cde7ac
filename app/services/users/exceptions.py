"""What the users domain refuses, in its own words."""

from __future__ import annotations

from app.core.errors import MSG_READ_ONLY, Forbidden

__all__ = ["MSG_READ_ONLY", "MSG_USER_INACTIVE", "UserDisabled"]

MSG_USER_INACTIVE = "User account is disabled."


class UserDisabled(Forbidden):
    """The account is disabled: no login, refresh or request goes through."""

    default_message = MSG_USER_INACTIVE
