"""`python -m app sync-attempts`: Twilio's delivery attempts into `delivery_attempts`
(run from a CronJob every 5 minutes).

Success logs one summary line (`Synced twilio delivery attempts created after …: 2 pages,
…`) and exits 0; so does a deployment whose provider has no attempts list (the console
provider, Vonage), after saying so, without calling anything. Provider or database
trouble is one ERROR line and exit status 1. No line carries a phone number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial

from app.cli.database import EXIT_FAILED, with_database
from app.core.config import Settings
from app.core.database import Database
from app.core.metrics import Metrics
from app.models.base import utcnow
from app.services.delivery.service import AttemptsSyncFailed, DeliverySyncService
from app.services.verification.providers.http_client import create_http_client
from app.services.verification.providers.twilio import (
    TwilioCredentials,
    TwilioVerifyClient,
    credentials_from,
)

logger = logging.getLogger("app.cli")

MSG_CONSOLE = "The console provider sends no SMS: there are no delivery attempts to sync"
MSG_NO_TWILIO = (
    "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
    "TWILIO_VERIFY_SERVICE_SID): there are no delivery attempts to sync "
    "(Vonage has no attempts list)"
)


def run(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> int:
    """Sync once; the command's exit status."""
    if settings.verify_provider == "console":
        logger.info("%s", MSG_CONSOLE)
        return 0
    credentials = credentials_from(settings)
    if credentials is None:
        logger.info("%s", MSG_NO_TWILIO)
        return 0
    return with_database(
        settings, partial(_sync, settings=settings, credentials=credentials, clock=clock)
    )


async def _sync(
    database: Database,
    *,
    settings: Settings,
    credentials: TwilioCredentials,
    clock: Callable[[], datetime],
) -> int:
    client = create_http_client(settings)
    uow = database.unit_of_work()
    try:
        twilio = TwilioVerifyClient(
            client,
            credentials,
            base_url=settings.twilio_verify_base_url,
            max_retries=settings.twilio_max_retries,
            metrics=Metrics(),
        )
        service = DeliverySyncService(
            twilio,
            markets_by_region={
                region: name for region, (name, _market) in settings.market_by_region.items()
            },
            overlap_seconds=settings.attempts_sync_overlap_seconds,
            first_lookback_seconds=settings.attempts_sync_first_lookback_seconds,
            page_size=settings.attempts_sync_page_size,
            clock=clock,
        )
        report = await service.sync(uow)
    except AttemptsSyncFailed as exc:
        logger.error(
            "Delivery attempts sync failed: Twilio %s; watermark not moved (%s)",
            exc.reason,
            exc.report.summary(),
        )
        return EXIT_FAILED
    finally:
        await uow.close()
        await client.aclose()
    logger.info("%s", report.summary())
    return 0
