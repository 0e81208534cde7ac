"""Bodies of the admin API: users as an admin sees them, pages, and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.core.roles import MAX_ROLES, MSG_BAD_ROLE, MSG_TOO_MANY_ROLES, ROLE_PATTERN, is_role_name
from app.schemas.common import RequestBody, TextInput


def _id_as_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


IdText = Annotated[str, BeforeValidator(_id_as_text)]
OptionalIdText = Annotated[str | None, BeforeValidator(_id_as_text)]


class AdminUserOut(BaseModel):
    """A user with what support staff need: roles, state and active sessions."""

    model_config = ConfigDict(from_attributes=True)

    id: IdText = Field(examples=["1"])
    phone: str = Field(examples=["+996555123456"])
    name: str = Field(examples=["555123456"])
    full_name: str = Field(examples=[""])
    market: str = Field(examples=["KG"])
    roles: list[str] = Field(examples=[["admin"]])
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    active_sessions: int = Field(
        description="Sessions not revoked whose refresh token has not expired", examples=[1]
    )
    disabled_at: datetime | None = Field(default=None, description="When it was disabled")
    disabled_reason: str | None = Field(default=None, description="Why, as the admin wrote it")


class UserPage(BaseModel):
    """A page of users, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AdminUserOut]
    next_cursor: str | None = Field(description="Opaque; null on the last page")


class AuditEventOut(BaseModel):
    """One event of an account's history; numbers are masked."""

    model_config = ConfigDict(from_attributes=True)

    id: IdText = Field(examples=["42"])
    type: str = Field(
        validation_alias="event",
        examples=["user_disabled"],
        description="login, refresh, reuse_detected, logout, user_deleted, "
        "phone_change_requested, phone_changed, user_disabled, user_enabled, "
        "sessions_revoked, roles_changed",
    )
    user_id: OptionalIdText = Field(examples=["7"])
    actor_id: OptionalIdText = Field(
        description="The admin who acted; null for the user's own actions and the command line",
        examples=["1"],
    )
    created_at: datetime
    phone: str = Field(validation_alias="phone_masked", examples=["+996*****3456"])
    new_phone: str | None = Field(
        default=None,
        validation_alias="new_phone_masked",
        description="A number change's new number, masked (`phone` is the old one)",
        examples=[None],
    )
    client_ip: str | None = Field(examples=["203.0.113.7"])
    details: dict[str, Any] = Field(
        default_factory=dict, examples=[{"reason": "fraud", "sessions_revoked": 2}]
    )

    @field_validator("details", mode="before")
    @classmethod
    def _none_as_empty(cls, value: object) -> object:
        return {} if value is None else value


class AuditEventPage(BaseModel):
    """A page of audit events, newest first."""

    items: list[AuditEventOut]
    next_cursor: str | None = Field(description="Opaque; null on the last page")


class DisableRequest(RequestBody):
    """Why the account is disabled (kept on the account and in the audit trail)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "fraud report #123"}]})

    reason: TextInput = Field(max_length=255)


def _role(value: object) -> object:
    if not is_role_name(value):
        raise PydanticCustomError("role", MSG_BAD_ROLE)
    return value


def _at_most_max_roles(roles: list[str]) -> list[str]:
    if len(set(roles)) > MAX_ROLES:
        raise PydanticCustomError("too_many_roles", MSG_TOO_MANY_ROLES)
    return roles


RoleName = Annotated[
    str,
    BeforeValidator(_role),
    WithJsonSchema({"type": "string", "pattern": ROLE_PATTERN, "examples": ["admin"]}),
]


class RolesRequest(RequestBody):
    """The account's roles from now on (replacing its roles; duplicates count once)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"roles": ["admin", "support"]}]})

    roles: Annotated[
        list[RoleName],
        AfterValidator(_at_most_max_roles),
        Field(json_schema_extra={"maxItems": MAX_ROLES}),
    ]


class DeliveryAttemptOut(BaseModel):
    """One attempt to deliver a code, as its provider last reported it."""

    attempt_sid: str = Field(examples=["VLaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"])
    channel: str = Field(examples=["sms"])
    delivery_status: str | None = Field(
        description="The message's status (`delivered`, `undelivered`, `failed`, `sent`, …); "
        "null when the provider has not said",
        examples=["delivered"],
    )
    delivery_error_code: str | None = Field(
        description="The carrier's or provider's error code of an undelivered message",
        examples=[None],
    )
    converted: bool | None = Field(
        description="Whether the code was used; null when not known", examples=[True]
    )
    price: str | None = Field(
        description="What the provider charged, a decimal string; null until known",
        examples=["0.0050"],
    )
    price_currency: str | None = Field(examples=["USD"])
    attempted_at: datetime


class AdminVerificationOut(BaseModel):
    """A verification (a code sent) and what its provider reported of its delivery."""

    id: IdText = Field(examples=["42"])
    phone: str = Field(examples=["+996555123456"])
    market: str = Field(examples=["KG"])
    purpose: str = Field(description="`login` or `phone_change`", examples=["login"])
    channel: str = Field(examples=["sms"])
    provider: str = Field(examples=["twilio"])
    status: str = Field(
        description="`pending`, `approved`, `expired`, `locked` or `failed`",
        examples=["approved"],
    )
    created_at: datetime
    expires_at: datetime
    delivery_status: str | None = Field(
        description="The newest attempt's message status; null before the first sync",
        examples=["delivered"],
    )
    delivery_error_code: str | None = Field(examples=[None])
    converted: bool | None = Field(
        description="Whether the code was used, as the provider reports it; null when not known",
        examples=[True],
    )
    price: str | None = Field(
        description="The attempts' reported prices added up (null when unknown, or in "
        "several currencies)",
        examples=["0.0050"],
    )
    price_currency: str | None = Field(examples=["USD"])
    synced_at: datetime | None = Field(
        description="When the provider's report was last stored; null before the first sync"
    )
    attempts: list[DeliveryAttemptOut] = Field(description="Newest first")


class VerificationPage(BaseModel):
    """A page of verifications, newest first; pass `next_cursor` as `cursor` for the next."""

    items: list[AdminVerificationOut]
    next_cursor: str | None = Field(description="Opaque; null on the last page")
