"""The user as the API shows it."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

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


class UserUpdate(RequestBody):
    """Fields a user may change; `phone`, `is_active` and `is_verified` are not among them."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"full_name": "Aida Bekova", "name": "aida"}]}
    )

    name: ProfileName | None = None
    full_name: ProfileFullName | None = None
    # Sent back unchanged by frontends that PATCH the whole user; a change is refused.
    phone: str | None = Field(default=None, description="Read-only")
    is_active: bool | None = Field(default=None, description="Read-only")
    is_verified: bool | None = Field(default=None, description="Read-only")
