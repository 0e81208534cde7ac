"""What a number change refuses, in its own words."""

from __future__ import annotations

from app.core.errors import FieldErrors

MSG_PHONE_IN_USE = "This phone number is already in use."
MSG_SAME_PHONE = "This is already your phone number."


class PhoneInUse(FieldErrors):
    """Another account has the number (409)."""

    status_code = 409
    outcome = "in_use"

    def __init__(self) -> None:
        super().__init__({"phone": [MSG_PHONE_IN_USE]})


class SamePhone(FieldErrors):
    """The number is the user's own already (400)."""

    outcome = "same_number"

    def __init__(self) -> None:
        super().__init__({"phone": [MSG_SAME_PHONE]})
