"""Role names: what a user's `roles` may hold, checked the same way by the admin API,
the command line and the tokens that carry them."""

from __future__ import annotations

import re
from collections.abc import Iterable

ADMIN_ROLE = "admin"
MAX_ROLES = 16
ROLE_PATTERN = r"^[a-z][a-z0-9_:-]{0,31}$"
_ROLE = re.compile(r"[a-z][a-z0-9_:-]{0,31}")

MSG_BAD_ROLE = "Role names are 1-32 characters: a lowercase letter, then a-z, 0-9, _, : or -."
MSG_TOO_MANY_ROLES = f"A user has at most {MAX_ROLES} roles."


class RoleError(ValueError):
    """Role names that cannot be stored; the message is shown to the caller."""


def is_role_name(value: object) -> bool:
    """Whether `value` is a valid role name."""
    return isinstance(value, str) and _ROLE.fullmatch(value) is not None


def normalise_roles(values: Iterable[object]) -> list[str]:
    """The roles as stored: valid names, each once, sorted; raise `RoleError` otherwise."""
    roles = set()
    for value in values:
        if not is_role_name(value):
            raise RoleError(MSG_BAD_ROLE)
        roles.add(str(value))
    if len(roles) > MAX_ROLES:
        raise RoleError(MSG_TOO_MANY_ROLES)
    return sorted(roles)
