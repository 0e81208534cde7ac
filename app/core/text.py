"""Text the service can store, log and answer with."""

from __future__ import annotations

MSG_INVALID_TEXT = "Enter a valid value."


def encodable(text: str) -> bool:
    """Whether `text` is valid Unicode: JSON's `\\ud83d` escape can carry a lone
    surrogate, which UTF-8 (the database, the logs, the answer) cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
