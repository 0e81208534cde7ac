"""What a login answers when it cannot finish."""

from __future__ import annotations

from app.core.errors import ServiceUnavailable

MSG_LOGIN_NOT_STORED = (
    "Your code was accepted, but signing in could not be completed. Please request a new code."
)


class LoginNotStored(ServiceUnavailable):
    """The provider approved the code (now spent) but the database failed."""

    default_message = MSG_LOGIN_NOT_STORED
