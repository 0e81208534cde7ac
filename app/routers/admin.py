"""The admin API: support staff look accounts up, disable and enable them, revoke their
sessions, change their roles and read their history. Every route needs a token of a
user with the `admin` role."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from app.core.errors import FieldErrors
from app.core.phone import Phone, PhoneError, parse_phone
from app.core.roles import MSG_BAD_ROLE
from app.dependencies.admin import AdminServiceDep, CurrentAdmin
from app.dependencies.client_ip import ClientIP
from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.schemas.admin import (
    AdminUserOut,
    AdminVerificationOut,
    AuditEventOut,
    AuditEventPage,
    DisableRequest,
    RolesRequest,
    UserPage,
    VerificationPage,
)
from app.schemas.errors import BadRequestBody, DetailBody, error_response
from app.services.admin.exceptions import (
    MSG_INVALID_CURSOR,
    MSG_NOT_ADMIN,
    MSG_OWN_ACCOUNT,
    MSG_OWN_ADMIN_ROLE,
    MSG_USER_NOT_FOUND,
    UserNotFound,
)
from app.services.admin.service import AdminUser, Page, parse_id
from app.services.delivery.views import VerificationDelivery
from app.services.sessions.exceptions import MSG_INVALID_TOKEN

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], route_class=UnitOfWorkRoute)

MSG_INVALID_USER_ID = "Enter a valid user id."
MSG_PHONE_OR_USER = "Give phone or user_id, not both."

_AUTH: dict[int | str, dict[str, Any]] = {
    401: error_response(
        DetailBody,
        "Missing, malformed, expired or revoked token (with `WWW-Authenticate: Bearer`)",
        {"detail": MSG_INVALID_TOKEN},
    ),
    403: error_response(
        DetailBody, "The token's user is not an admin, or is disabled", {"detail": MSG_NOT_ADMIN}
    ),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: error_response(DetailBody, "No such user", {"detail": MSG_USER_NOT_FOUND})
}
_BAD_PAGE: dict[int | str, dict[str, Any]] = {
    400: error_response(
        BadRequestBody, "An invalid cursor, limit or filter", {"cursor": [MSG_INVALID_CURSOR]}
    )
}

Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page; omit for the first"),
]
PhoneQuery = Annotated[
    str | None,
    Query(max_length=64, description="E.g. `+996555123456` (URL-encode the `+` as `%2B`)"),
]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page (at most 100)")]


def _user_id(text: str) -> int:
    """The path's user id; an id the service never hands out is no user (404)."""
    user_id = parse_id(text)
    if user_id is None:
        raise UserNotFound()
    return user_id


def _out(view: AdminUser) -> AdminUserOut:
    return AdminUserOut.model_validate(
        {
            **{
                name: getattr(view.user, name)
                for name in AdminUserOut.model_fields
                if name != "active_sessions"
            },
            "active_sessions": view.active_sessions,
        }
    )


def _page(page: Page[AdminUser]) -> UserPage:
    return UserPage(items=[_out(view) for view in page.items], next_cursor=page.next_cursor)


@router.get(
    "/users",
    summary="Find a user by number, or page through users",
    description="With `phone` (any format the login accepts), the user with that number: "
    "a list of one, or empty. Without it, every user, newest first, `limit` at a time; "
    "`next_cursor` fetches the next page and is null on the last.",
    response_model=UserPage,
    responses={
        **_AUTH,
        400: error_response(
            BadRequestBody,
            "An invalid number, cursor or limit",
            {"phone": ["Enter a valid phone number."]},
        ),
    },
)
async def list_users(
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    phone: PhoneQuery = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> UserPage:
    """Look a user up by number, or list users."""
    if phone is None:
        return _page(await service.users(uow, cursor, limit))
    return _page(await service.by_phone(uow, _phone(phone)))


def _phone(phone: str) -> Phone:
    """The number of a `phone` query parameter, or the login's 400 on `phone`."""
    # An unencoded `+` arrives as a space; the number is the same one.
    text = "+" + phone[1:] if phone[:1] == " " and phone[1:2].isdigit() else phone
    try:
        return parse_phone(text)
    except PhoneError as exc:
        raise FieldErrors({"phone": [str(exc)]}) from exc


@router.get(
    "/users/{user_id}",
    summary="A user",
    response_model=AdminUserOut,
    responses={**_AUTH, **_NOT_FOUND},
)
async def read_user(
    user_id: str, admin: CurrentAdmin, service: AdminServiceDep, uow: UnitOfWorkDep
) -> AdminUserOut:
    """Return one user."""
    return _out(await service.user(uow, _user_id(user_id)))


_SELF: dict[int | str, dict[str, Any]] = {
    409: error_response(DetailBody, "The admin's own account", {"detail": MSG_OWN_ACCOUNT})
}


@router.post(
    "/users/{user_id}/disable",
    summary="Disable a user",
    description="The account can no longer log in (403 `User account is disabled.`) and "
    "every session is revoked at once: its access tokens answer 401 from their next use "
    "and its refresh tokens stop working. An admin cannot disable themselves (409).",
    response_model=AdminUserOut,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        **_SELF,
        400: error_response(
            BadRequestBody, "Missing or invalid reason", {"reason": ["This field is required."]}
        ),
    },
)
async def disable_user(
    user_id: str,
    payload: DisableRequest,
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> AdminUserOut:
    """Disable an account and end its sessions."""
    return _out(await service.disable(uow, admin, _user_id(user_id), payload.reason, client_ip))


@router.post(
    "/users/{user_id}/enable",
    summary="Enable a user",
    description="The account can log in again; sessions revoked by disabling stay revoked.",
    response_model=AdminUserOut,
    responses={**_AUTH, **_NOT_FOUND},
)
async def enable_user(
    user_id: str,
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> AdminUserOut:
    """Enable an account again."""
    return _out(await service.enable(uow, admin, _user_id(user_id), client_ip))


@router.post(
    "/users/{user_id}/revoke-sessions",
    summary="Revoke every session of a user",
    description="Every access and refresh token of the account stops working at once; the "
    "account stays enabled and can log in again.",
    response_model=AdminUserOut,
    responses={**_AUTH, **_NOT_FOUND},
)
async def revoke_user_sessions(
    user_id: str,
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> AdminUserOut:
    """Log an account out everywhere."""
    return _out(await service.revoke_sessions(uow, admin, _user_id(user_id), client_ip))


@router.delete(
    "/users/{user_id}",
    status_code=204,
    summary="Delete a user",
    description="The same effects as the user's own `DELETE /api/v1/users/me`: the "
    "account and its personal data are gone, every token of it answers 401, and logging "
    "in with the number makes a new user. The `user_deleted` audit event names the "
    "acting admin. An admin cannot delete themselves here (409).",
    response_class=Response,
    responses={**_AUTH, **_NOT_FOUND, **_SELF},
)
async def delete_user(
    user_id: str,
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> Response:
    """Delete an account."""
    await service.delete(uow, admin, _user_id(user_id), client_ip)
    return Response(status_code=204)


@router.put(
    "/users/{user_id}/roles",
    summary="Set a user's roles",
    description="Replaces the account's roles. A name matches `^[a-z][a-z0-9_:-]{0,31}$`; "
    "an account has at most 16. `admin` opens this API. Access tokens carry the roles as "
    "the `roles` claim from the account's next login or refresh. An admin cannot take "
    "`admin` from themselves (409).",
    response_model=AdminUserOut,
    responses={
        **_AUTH,
        **_NOT_FOUND,
        400: error_response(
            BadRequestBody, "An invalid role name or too many", {"roles": [MSG_BAD_ROLE]}
        ),
        409: error_response(
            DetailBody, "Taking `admin` from oneself", {"detail": MSG_OWN_ADMIN_ROLE}
        ),
    },
)
async def set_user_roles(
    user_id: str,
    payload: RolesRequest,
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    client_ip: ClientIP,
) -> AdminUserOut:
    """Replace an account's roles."""
    return _out(await service.set_roles(uow, admin, _user_id(user_id), payload.roles, client_ip))


@router.get(
    "/audit-events",
    summary="The audit trail",
    description="Events newest first (of one account with `user_id`): logins, refreshes, "
    "detected token reuse, logouts and every admin action, with the acting admin's id as "
    "`actor_id`. Numbers are masked.",
    response_model=AuditEventPage,
    responses={**_AUTH, **_BAD_PAGE},
)
async def list_audit_events(
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    user_id: Annotated[str | None, Query(max_length=16, description="Only this user's")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> AuditEventPage:
    """Read the audit trail."""
    wanted = None
    if user_id is not None:
        wanted = parse_id(user_id)
        if wanted is None:
            raise FieldErrors({"user_id": [MSG_INVALID_USER_ID]})
    page = await service.events(uow, wanted, cursor, limit)
    return AuditEventPage(
        items=[AuditEventOut.model_validate(event) for event in page.items],
        next_cursor=page.next_cursor,
    )


def _verification_out(view: VerificationDelivery) -> AdminVerificationOut:
    row = view.verification
    return AdminVerificationOut.model_validate(
        {
            "id": row.id,
            "phone": row.phone,
            "market": row.market,
            "purpose": row.purpose,
            "channel": row.channel,
            "provider": row.provider,
            "status": row.status,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "delivery_status": view.delivery_status,
            "delivery_error_code": view.delivery_error_code,
            "converted": view.converted,
            "price": view.price,
            "price_currency": view.price_currency,
            "synced_at": view.synced_at,
            "attempts": [asdict(attempt) for attempt in view.attempts],
        }
    )


@router.get(
    "/verifications",
    summary="A number's or a user's recent codes, with their delivery",
    description="The codes sent, newest first, each with what its provider reported: the "
    "message's delivery status, whether the code was used (`converted`), and the price, "
    "with every attempt (a resend within a code's lifetime is a second attempt). With "
    "`phone` (any format the login accepts), the codes sent to that number; with "
    "`user_id`, the user's: those to their current number and those of their number "
    "changes; with neither, every code. Delivery fields are null until the provider's "
    "report has been synced (`python -m app sync-attempts`). `limit` at a time; "
    "`next_cursor` fetches the next page and is null on the last.",
    response_model=VerificationPage,
    responses={
        **_AUTH,
        400: error_response(
            BadRequestBody,
            "An invalid number, user id, cursor or limit",
            {"phone": ["Enter a valid phone number."]},
        ),
    },
)
async def list_verifications(
    admin: CurrentAdmin,
    service: AdminServiceDep,
    uow: UnitOfWorkDep,
    phone: PhoneQuery = None,
    user_id: Annotated[
        str | None, Query(max_length=16, description="The user's codes (instead of `phone`)")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> VerificationPage:
    """Look up the recent codes of a number or a user, with their delivery."""
    if phone is not None and user_id is not None:
        raise FieldErrors({"user_id": [MSG_PHONE_OR_USER]})
    wanted = None
    if user_id is not None:
        wanted = parse_id(user_id)
        if wanted is None:
            raise FieldErrors({"user_id": [MSG_INVALID_USER_ID]})
    parsed = _phone(phone) if phone is not None else None
    page = await service.verifications(uow, parsed, wanted, cursor, limit)
    return VerificationPage(
        items=[_verification_out(view) for view in page.items], next_cursor=page.next_cursor
    )
