"""Callbacks from the providers: Vonage Verify v2 reports each request's outcome and
price here, signed with the account's signature secret."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from app.dependencies.callbacks import VonageCallbacksDep
from app.dependencies.database import UnitOfWorkDep, UnitOfWorkRoute
from app.schemas.errors import BadRequestBody, DetailBody, error_response
from app.services.delivery.callbacks import MSG_BAD_SIGNATURE, MSG_NOT_CONFIGURED

router = APIRouter(prefix="/api/v1/callbacks", tags=["callbacks"], route_class=UnitOfWorkRoute)

_CALLBACK_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["request_id"],
                "properties": {
                    "request_id": {"type": "string", "maxLength": 64},
                    "type": {"type": "string", "enum": ["summary", "event"]},
                    "status": {"type": "string"},
                    "price": {"type": ["number", "string"]},
                    "channel": {"type": "string"},
                    "triggered_at": {"type": "string"},
                    "finalized_at": {"type": "string"},
                    "submitted_at": {"type": "string"},
                },
            },
            "example": {
                "request_id": "c11236f4-00bf-4b89-84ba-88b25df97315",
                "submitted_at": "2026-11-30T09:00:00.000Z",
                "status": "completed",
                "type": "summary",
                "channel_timeout": 300,
                "workflow": [
                    {
                        "channel": "sms",
                        "initiated_at": "2026-11-30T09:00:00.000Z",
                        "status": "completed",
                    }
                ],
                "price": 0.105,
            },
        }
    },
}


@router.post(
    "/vonage/verify",
    status_code=204,
    summary="Vonage Verify v2 status callback",
    description="Vonage's event and summary callbacks (the Verify status webhook of the "
    "Vonage application). Signed: `Authorization: Bearer` holds a JWT signed with "
    "`VONAGE_SIGNATURE_SECRET` (HS256) whose `payload_hash` is the body's SHA-256. The "
    "request's `status` records whether its code was used (`completed`; `expired`, "
    "`failed`, `user_rejected`, `cancelled`, `blocked`: not used) and a summary's "
    "`price` what it cost, in EUR, on the Vonage attempt with that `request_id`. A "
    "callback for a request the service has no attempt of is answered 204 too.",
    response_class=Response,
    openapi_extra={"requestBody": _CALLBACK_BODY},
    responses={
        400: error_response(
            BadRequestBody,
            "A body that is not a callback",
            {"request_id": ["This field is required."]},
        ),
        401: error_response(
            DetailBody, "A missing or wrong signature", {"detail": MSG_BAD_SIGNATURE}
        ),
        404: error_response(
            DetailBody, "`VONAGE_SIGNATURE_SECRET` is not set", {"detail": MSG_NOT_CONFIGURED}
        ),
    },
)
async def vonage_verify_callback(
    request: Request,
    service: VonageCallbacksDep,
    uow: UnitOfWorkDep,
    authorization: Annotated[str | None, Header(max_length=4096)] = None,
) -> Response:
    """Store what a Vonage callback reports."""
    await service.receive(uow, authorization, await request.body())
    return Response(status_code=204)
