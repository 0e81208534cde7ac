"""The user as the API shows it."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from app.core.errors import MSG_NULL, MSG_READ_ONLY
from app.schemas.common import RequestBody


class UserOut(BaseModel):
    """A user; `id` is a string for the old frontends."""

    model_config = ConfigDict(from_attributes=True)

    id: str = Field(examples=["1"])
    name: str = Field(examples=["555123456"])
    phone: str = Field(examples=["+996555123456"])
    full_name: str = Field(examples=[""])
    is_active: bool
    is_verified: bool

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


def _clean(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        # Cc: C0 and C1 controls (terminal escapes among them), DEL.
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            raise PydanticCustomError("control", "Enter a valid value.")
    return value


ProfileName = Annotated[
    str, BeforeValidator(_clean), StringConstraints(min_length=1, max_length=150)
]
ProfileFullName = Annotated[str, BeforeValidator(_clean), StringConstraints(max_length=255)]


def _update_schema(schema: dict[str, Any]) -> None:
    """The schema of `UserUpdate`: its fields are strings, `null` being refused."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(option for option in options if option.get("type") != "null"))
    schema["examples"] = [{"full_name": "Aida Bekova", "name": "aida"}]


class UserUpdate(RequestBody):
    """Fields a user may change: `name` and `full_name`. The read-only fields of `UserOut`
    answer 400 `This field cannot be changed.`, any other field `Unknown field.`, and
    `null` `This field may not be null.`"""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_update_schema)

    # `None` only stands for "not sent": one that is sent is refused (`_not_null`).
    name: ProfileName | None = None
    full_name: ProfileFullName | None = None
    # Named so that they are refused as read-only rather than as unknown (`_read_only`
    # refuses any value, so their type is never checked); left out of the schema, since a
    # client has nothing to send in them.
    id: SkipJsonSchema[object] = None
    phone: SkipJsonSchema[object] = None
    is_active: SkipJsonSchema[object] = None
    is_verified: SkipJsonSchema[object] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # `None` is the default of an omitted field; one that was sent is refused.
        if value is None:
            raise PydanticCustomError("null", MSG_NULL)
        return value

    @field_validator("id", "phone", "is_active", "is_verified", mode="before")
    @classmethod
    def _read_only(cls, value: object) -> object:
        if value is None:
            return value  # refused by `_not_null`, as for every field
        raise PydanticCustomError("read_only", MSG_READ_ONLY)
