"""The user as the API shows it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
