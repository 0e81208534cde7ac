"""What can stop a sync of delivery attempts, and what a provider's callback can be
refused for."""

from __future__ import annotations

from app.core.errors import AppError, NotAuthenticated
from app.services.delivery.report import SyncReport

MSG_SYNC_FAILED = "The provider's delivery attempts could not be read."
MSG_BAD_SIGNATURE = "Invalid or missing callback signature."
MSG_NOT_CONFIGURED = "Vonage callbacks are not configured."


class AttemptsSyncFailed(AppError):
    """The provider failed mid-sync. The pages stored before it stay; the watermark
    did not move, so the next run reads them again. `reason` is for the log (never a
    number); `report` counts what was done before the failure."""

    status_code = 502
    default_message = MSG_SYNC_FAILED
    outcome = "provider_error"

    def __init__(self, reason: str, report: SyncReport) -> None:
        super().__init__()
        self.reason = reason
        self.report = report


class InvalidSignature(NotAuthenticated):
    """A callback whose JWT is missing, not Vonage's, or not of this body."""

    default_message = MSG_BAD_SIGNATURE


class CallbacksNotConfigured(AppError):
    """No `VONAGE_SIGNATURE_SECRET`: a callback cannot be told from a forgery, so the
    endpoint is not there (404; Vonage keeps retrying until an operator sets it)."""

    status_code = 404
    default_message = MSG_NOT_CONFIGURED
    outcome = "not_found"
