"""What can stop a sync of delivery attempts."""

from __future__ import annotations

from app.core.errors import AppError
from app.services.delivery.report import SyncReport

MSG_SYNC_FAILED = "The provider's delivery attempts could not be read."


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
