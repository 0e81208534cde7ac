"""What the sessions domain refuses, in its own words (all 401 with
`WWW-Authenticate: Bearer`)."""

from __future__ import annotations

from app.core.errors import NotAuthenticated

MSG_NOT_AUTHENTICATED = "Authentication credentials were not provided."
MSG_INVALID_TOKEN = "Invalid or expired token."  # noqa: S105 (a message, not a secret)
MSG_INVALID_REFRESH = "Invalid or expired refresh token."


class NoCredentials(NotAuthenticated):
    """No bearer token came with the request."""

    default_message = MSG_NOT_AUTHENTICATED


class InvalidToken(NotAuthenticated):
    """A bearer token that is malformed, expired, wrongly signed or of a revoked session."""

    default_message = MSG_INVALID_TOKEN


class InvalidRefreshToken(NotAuthenticated):
    """A refresh token that is unknown, expired, revoked or reused."""

    default_message = MSG_INVALID_REFRESH


MSG_RECENT_LOGIN = "Log in again to confirm this change."


class RecentLoginRequired(NotAuthenticated):
    """A sensitive change with a session whose login is older than
    `RECENT_LOGIN_SECONDS` (RFC 9470 step-up: the client logs in again and retries)."""

    default_message = MSG_RECENT_LOGIN

    def __init__(self, max_age: int) -> None:
        super().__init__()
        self.headers["WWW-Authenticate"] = (
            'Bearer error="insufficient_user_authentication", '
            'error_description="A recent login is required", '
            f"max_age={max_age}"
        )
