"""What a send that needs a challenge answers when it has not passed one."""

from __future__ import annotations

from app.core.errors import FieldErrors, ServiceUnavailable

MSG_CHALLENGE_REQUIRED = "Complete the challenge to get a code."
MSG_CHALLENGE_FAILED = "The challenge was not passed. Please try again."
MSG_CHALLENGE_UNAVAILABLE = "The challenge cannot be checked right now. Please try again later."


class ChallengeRequired(FieldErrors):
    """The send needs a passed challenge and came without a token (400)."""

    outcome = "challenge_required"

    def __init__(self) -> None:
        super().__init__({"captcha_token": [MSG_CHALLENGE_REQUIRED]})


class ChallengeFailed(FieldErrors):
    """The provider rejected the token: failed, expired, reused, or solved on a host
    the service does not expect (400)."""

    outcome = "challenge_failed"

    def __init__(self) -> None:
        super().__init__({"captcha_token": [MSG_CHALLENGE_FAILED]})


class ChallengeUnavailable(ServiceUnavailable):
    """The challenge provider gave no verdict (unreachable, failing, or refusing the
    service's own credentials) and CAPTCHA_FAIL_OPEN is off (503)."""

    default_message = MSG_CHALLENGE_UNAVAILABLE
