"""The sync of delivery attempts: what a provider reports of each code it sent
(delivery status, real price, conversion), stored beside the verification rows.

`python -m app sync-attempts` runs `DeliverySyncService.sync` from a CronJob. Each run
reads the attempts created since the newest one already stored, less an overlap (a
code converts within its lifetime and Twilio prices some attempts late, so recent
attempts are read again), stores what changed and moves the watermark last: a run
that fails midway leaves it where it was, and the next run reads those pages again.
Storing is idempotent, keyed by (provider, attempt sid): a second run over the same
attempts inserts and updates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from app.core.database import UnitOfWork
from app.services.delivery.exceptions import AttemptsSyncFailed
from app.services.delivery.report import SyncReport
from app.services.delivery.repository import (
    AttemptValues,
    DeliveryRepository,
    StoredAttempt,
    VerificationRef,
)
from app.services.verification.service import AttemptsSource, ProviderError, ReportedAttempt

logger = logging.getLogger(__name__)

__all__ = ["AttemptsSyncFailed", "DeliverySyncService", "SyncReport", "purge_attempts"]

# A provider that keeps handing out the same cursor would loop for ever.
MAX_PAGES = 10_000


class DeliverySyncService:
    """Reads a provider's delivery attempts into `delivery_attempts`.

    `markets_by_region` names the market of an attempt whose verification row is
    gone (purged, or never ours), from the destination's country.
    """

    def __init__(
        self,
        source: AttemptsSource,
        *,
        markets_by_region: Mapping[str, str],
        overlap_seconds: int,
        first_lookback_seconds: int,
        page_size: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._source = source
        self._markets_by_region = dict(markets_by_region)
        self._overlap = timedelta(seconds=overlap_seconds)
        self._first_lookback = timedelta(seconds=first_lookback_seconds)
        self._page_size = page_size
        self._clock = clock

    @property
    def watermark_name(self) -> str:
        """The `sync_watermarks` row of this provider's sync."""
        return f"{self._source.name}_attempts"

    async def sync(self, uow: UnitOfWork) -> SyncReport:
        """Read every attempt created since the watermark (less the overlap) and store
        what is new or changed; raise `AttemptsSyncFailed` when the provider fails."""
        repository = DeliveryRepository(uow)
        started = self._clock()
        watermark = await repository.watermark(self.watermark_name)
        since = watermark - self._overlap if watermark else started - self._first_lookback
        report = SyncReport(provider=self._source.name, since=since, watermark=watermark)
        newest = watermark
        cursor: str | None = None
        try:
            while True:
                page = await self._source.list_attempts(
                    since, page_size=self._page_size, page=cursor
                )
                report.pages += 1
                await self._store(repository, page.attempts, report)
                for attempt in page.attempts:
                    if newest is None or attempt.created_at > newest:
                        newest = attempt.created_at
                if page.next_page is None or page.next_page == cursor:
                    break
                if report.pages >= MAX_PAGES:
                    logger.warning("Attempts sync stopped after %d pages", report.pages)
                    break
                cursor = page.next_page
        except ProviderError as exc:
            raise AttemptsSyncFailed(exc.reason, report) from exc
        if newest is not None and newest != watermark:
            await repository.advance_watermark(self.watermark_name, newest, self._clock())
            report.watermark = newest
        return report

    async def _store(
        self,
        repository: DeliveryRepository,
        attempts: Sequence[ReportedAttempt],
        report: SyncReport,
    ) -> None:
        if not attempts:
            return
        # Within a page an attempt counts once, as last reported.
        latest = {attempt.sid: attempt for attempt in attempts}
        stored, verifications = await repository.lookup(
            self._source.name,
            list(latest),
            sorted({attempt.verification_sid for attempt in latest.values()}),
        )
        by_sid: dict[str, list[VerificationRef]] = {}
        for verification in verifications:
            by_sid.setdefault(verification.provider_sid, []).append(verification)
        new: list[tuple[str, AttemptValues]] = []
        changed: list[tuple[int, AttemptValues]] = []
        for attempt in latest.values():
            previous = stored.get(attempt.sid)
            values = self._values(attempt, by_sid.get(attempt.verification_sid, []), previous)
            report.fetched += 1
            if values.verification_id is None:
                report.unmatched += 1
            if previous is None:
                new.append((attempt.sid, values))
            elif previous.values != values:
                changed.append((previous.id, values))
            else:
                report.unchanged += 1
        await repository.save(self._source.name, new, changed, self._clock())
        report.new += len(new)
        report.updated += len(changed)

    def _values(
        self,
        attempt: ReportedAttempt,
        candidates: Sequence[VerificationRef],
        previous: StoredAttempt | None,
    ) -> AttemptValues:
        """What to store of `attempt`: the provider's report, and the verification it
        belongs to (kept from the stored row once that verification is purged)."""
        match = _verification_of(attempt, candidates)
        verification_id: int | None
        market: str | None
        if match is not None:
            verification_id, market = match.id, match.market
        elif previous is not None and previous.values.verification_id is not None:
            verification_id, market = previous.values.verification_id, previous.values.market
        else:
            verification_id = None
            market = self._markets_by_region.get(attempt.country or "")
        return AttemptValues(
            verification_sid=attempt.verification_sid,
            verification_id=verification_id,
            market=market,
            channel=attempt.channel,
            delivery_status=attempt.delivery_status,
            delivery_error_code=attempt.delivery_error_code,
            converted=attempt.converted,
            price_micros=attempt.price_micros,
            price_currency=attempt.price_currency,
            attempted_at=attempt.created_at,
            provider_updated_at=attempt.updated_at,
        )


def _verification_of(
    attempt: ReportedAttempt, candidates: Sequence[VerificationRef]
) -> VerificationRef | None:
    """The row an attempt belongs to. A resend within a code's lifetime goes out under
    the same provider sid, so several rows can share it: the newest created at or
    before the attempt, else (clocks apart) the newest."""
    if not candidates:
        return None
    ordered = sorted(candidates, key=lambda row: (row.created_at, row.id))
    before = [row for row in ordered if row.created_at <= attempt.created_at]
    return (before or ordered)[-1]


async def purge_attempts(uow: UnitOfWork, cutoff: datetime) -> int:
    """Delete the delivery attempts made before `cutoff` (data retention); how many."""
    return await DeliveryRepository(uow).purge_attempted_before(cutoff)
