"""DeliverySyncService: Twilio's attempts stored beside the verifications, on SQLite and
PostgreSQL. Twilio is faked at the HTTP boundary (`GET /v2/Attempts`), time is a clock
the tests move."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.database import Database
from app.services.delivery.service import AttemptsSyncFailed, DeliverySyncService, SyncReport
from app.services.verification.providers.twilio import TwilioCredentials, TwilioVerifyClient
from tests.delivery.conftest import NOW, Clock, add_verification, stored, watermark
from tests.delivery.support import (
    ATTEMPTS_PATH,
    EXAMPLE_TO,
    FakeAttempts,
    attempt,
    attempt_sid,
    twilio_time,
    verification_sid,
)
from tests.twilio_fixtures import ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID, TWILIO_BASE_URL

OVERLAP = 1800
LOOKBACK = 86400
PAGE_SIZE = 2


async def _no_sleep(_delay: float) -> None:
    return None


def sync_service(http: httpx.AsyncClient, sync_clock: Clock) -> DeliverySyncService:
    twilio = TwilioVerifyClient(
        http,
        TwilioCredentials(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID),
        base_url=TWILIO_BASE_URL,
        max_retries=2,
        sleep=_no_sleep,
    )
    return DeliverySyncService(
        twilio,
        markets_by_region={"KG": "KG", "US": "US"},
        overlap_seconds=OVERLAP,
        first_lookback_seconds=LOOKBACK,
        page_size=PAGE_SIZE,
        clock=sync_clock,
    )


async def run_sync(database: Database, service: DeliverySyncService) -> SyncReport:
    uow = database.unit_of_work()
    try:
        return await service.sync(uow)
    finally:
        await uow.close()


def counts(report: SyncReport) -> dict[str, int]:
    return {
        "pages": report.pages,
        "fetched": report.fetched,
        "new": report.new,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "unmatched": report.unmatched,
    }


async def test_a_first_sync_reads_the_last_day_and_stores_each_attempt_on_its_verification(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    ids = [
        await add_verification(db_engine, verification_sid(n), NOW - timedelta(hours=n))
        for n in (1, 2, 3)
    ]
    fake_attempts.add(
        attempt(
            attempt_sid(1),
            verification_sid(1),
            NOW - timedelta(hours=1) + timedelta(seconds=1),
            price={"value": "0.1500", "currency": "usd"},
        ),
        attempt(
            attempt_sid(2),
            verification_sid(2),
            NOW - timedelta(hours=2) + timedelta(seconds=1),
            message_status="undelivered",
            conversion_status="unconverted",
            price={"value": "0.0575", "currency": "usd"},
        ),
        attempt(
            attempt_sid(3),
            verification_sid(3),
            NOW - timedelta(hours=3) + timedelta(seconds=1),
            message_status="failed",
            conversion_status="unconverted",
        ),
        # Older than the first run's lookback: never asked for.
        attempt(attempt_sid(4), verification_sid(4), NOW - timedelta(days=2)),
    )

    report = await run_sync(database, sync_service(http, sync_clock))

    assert counts(report) == {
        "pages": 2,
        "fetched": 3,
        "new": 3,
        "updated": 0,
        "unchanged": 0,
        "unmatched": 0,
    }
    first = fake_attempts.params()[0]
    assert first["DateCreatedAfter"] == twilio_time(NOW - timedelta(seconds=LOOKBACK))
    assert first["PageSize"] == str(PAGE_SIZE)
    rows = await stored(db_engine)
    assert set(rows) == {attempt_sid(1), attempt_sid(2), attempt_sid(3)}
    one, two, three = rows[attempt_sid(1)], rows[attempt_sid(2)], rows[attempt_sid(3)]
    assert (one["verification_id"], two["verification_id"], three["verification_id"]) == tuple(ids)
    assert one["provider"] == "twilio"
    assert one["market"] == "KG"
    assert (one["delivery_status"], one["converted"]) == ("delivered", True)
    assert (one["price_micros"], one["price_currency"]) == (150_000, "USD")
    assert (two["delivery_status"], two["delivery_error_code"]) == ("undelivered", "30008")
    assert (two["converted"], two["price_micros"]) == (False, 57_500)
    assert three["delivery_status"] == "failed"
    assert one["attempted_at"] == NOW - timedelta(hours=1) + timedelta(seconds=1)
    assert one["synced_at"] == NOW
    newest = NOW - timedelta(hours=1) + timedelta(seconds=1)
    assert await watermark(db_engine) == newest
    assert report.watermark == newest


async def test_a_second_sync_reads_from_the_watermark_less_the_overlap_and_changes_nothing(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    created = NOW - timedelta(minutes=5)
    await add_verification(db_engine, verification_sid(1), created - timedelta(seconds=1))
    fake_attempts.add(
        attempt(attempt_sid(1), verification_sid(1), created),
        attempt(attempt_sid(2), verification_sid(2), created - timedelta(minutes=1)),
    )
    service = sync_service(http, sync_clock)
    await run_sync(database, service)
    before = await stored(db_engine)
    sync_clock.advance(300)

    again = await run_sync(database, service)

    assert fake_attempts.params()[-1]["DateCreatedAfter"] == twilio_time(
        created - timedelta(seconds=OVERLAP)
    )
    assert counts(again) == {
        "pages": 1,
        "fetched": 2,
        "new": 0,
        "updated": 0,
        "unchanged": 2,
        "unmatched": 1,
    }
    # Not even rewritten: synced_at still says the first run.
    assert await stored(db_engine) == before
    assert await watermark(db_engine) == created


async def test_an_attempt_that_changed_at_twilio_is_updated(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    created = NOW - timedelta(minutes=2)
    await add_verification(db_engine, verification_sid(1), created)
    fake_attempts.add(
        attempt(
            attempt_sid(1),
            verification_sid(1),
            created,
            message_status="sent",
            conversion_status="unconverted",
            price={"value": None, "currency": "usd"},
        ),
        attempt(attempt_sid(2), verification_sid(1), created - timedelta(seconds=30)),
    )
    service = sync_service(http, sync_clock)
    await run_sync(database, service)
    assert (await stored(db_engine))[attempt_sid(1)]["price_micros"] is None

    fake_attempts.change(
        attempt_sid(1),
        message_status="delivered",
        conversion_status="converted",
        price={"value": "0.15", "currency": "usd"},
        date_updated=twilio_time(NOW),
    )
    sync_clock.advance(300)
    report = await run_sync(database, service)

    assert (report.updated, report.unchanged, report.new) == (1, 1, 0)
    row = (await stored(db_engine))[attempt_sid(1)]
    assert (row["delivery_status"], row["converted"]) == ("delivered", True)
    assert (row["price_micros"], row["price_currency"]) == (150_000, "USD")
    assert row["provider_updated_at"] == NOW
    assert row["synced_at"] == NOW + timedelta(seconds=300)


async def test_an_attempt_reported_late_within_the_overlap_is_still_read(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    fake_attempts.add(attempt(attempt_sid(1), verification_sid(1), NOW - timedelta(minutes=1)))
    service = sync_service(http, sync_clock)
    await run_sync(database, service)
    # Twilio lists an attempt created before the newest one seen, after the first run.
    fake_attempts.add(attempt(attempt_sid(2), verification_sid(2), NOW - timedelta(minutes=20)))
    sync_clock.advance(300)

    report = await run_sync(database, service)

    assert report.new == 1
    assert attempt_sid(2) in await stored(db_engine)
    # The watermark never goes back to the late attempt's time.
    assert await watermark(db_engine) == NOW - timedelta(minutes=1)


async def test_an_attempt_of_no_stored_verification_is_kept_with_its_country_s_market(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    fake_attempts.add(
        attempt(attempt_sid(1), verification_sid(1), NOW - timedelta(minutes=3), country="US"),
        attempt(
            attempt_sid(2),
            verification_sid(2),
            NOW - timedelta(minutes=2),
            country="CO",
            to=EXAMPLE_TO,
        ),
    )

    report = await run_sync(database, sync_service(http, sync_clock))

    assert report.unmatched == 2
    rows = await stored(db_engine)
    assert rows[attempt_sid(1)]["verification_id"] is None
    assert rows[attempt_sid(1)]["market"] == "US"
    assert rows[attempt_sid(2)]["market"] is None
    assert rows[attempt_sid(2)]["verification_sid"] == verification_sid(2)


async def test_a_resend_s_attempt_goes_to_the_row_created_before_it(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    """A resend within a code's lifetime keeps Twilio's sid: two rows share it."""
    sent = NOW - timedelta(minutes=10)
    first = await add_verification(db_engine, verification_sid(1), sent)
    resent = await add_verification(db_engine, verification_sid(1), sent + timedelta(minutes=2))
    fake_attempts.add(
        attempt(attempt_sid(1), verification_sid(1), sent + timedelta(seconds=1)),
        attempt(attempt_sid(2), verification_sid(1), sent + timedelta(minutes=2, seconds=1)),
        # Twilio's clock behind ours: before both rows, so the newest.
        attempt(attempt_sid(3), verification_sid(1), sent - timedelta(seconds=5)),
    )

    await run_sync(database, sync_service(http, sync_clock))

    rows = await stored(db_engine)
    assert rows[attempt_sid(1)]["verification_id"] == first
    assert rows[attempt_sid(2)]["verification_id"] == resent
    assert rows[attempt_sid(3)]["verification_id"] == resent


@pytest.fixture
def failing_second_page(twilio: respx.MockRouter, fake_attempts: FakeAttempts) -> None:
    """Twilio answers the first page and fails (500) on every later one."""

    def answer(request: httpx.Request) -> httpx.Response:
        if "PageToken" in request.url.params:
            fake_attempts.requests.append(request)
            return httpx.Response(500, json={"code": 20500, "message": "Internal"})
        return fake_attempts(request)

    twilio.get(ATTEMPTS_PATH).mock(side_effect=answer)


@pytest.mark.usefixtures("failing_second_page")
async def test_a_failure_midway_keeps_the_stored_pages_and_leaves_the_watermark(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    fake_attempts.add(
        *(
            attempt(attempt_sid(n), verification_sid(n), NOW - timedelta(minutes=n))
            for n in range(1, 5)
        )
    )

    with pytest.raises(AttemptsSyncFailed) as caught:
        await run_sync(database, sync_service(http, sync_clock))

    # The second page was asked three times (5xx on a GET is retried), then given up.
    assert [("PageToken" in p) for p in fake_attempts.params()] == [False, True, True, True]
    assert "after 3 attempts" in caught.value.reason
    assert caught.value.report.new == PAGE_SIZE
    assert set(await stored(db_engine)) == {attempt_sid(1), attempt_sid(2)}
    assert await watermark(db_engine) is None


async def test_after_a_failure_the_next_run_reads_the_same_attempts_again(
    database: Database,
    db_engine: AsyncEngine,
    http: httpx.AsyncClient,
    twilio: respx.MockRouter,
    fake_attempts: FakeAttempts,
    sync_clock: Clock,
) -> None:
    fake_attempts.add(attempt(attempt_sid(1), verification_sid(1), NOW - timedelta(minutes=1)))
    service = sync_service(http, sync_clock)
    await run_sync(database, service)
    fake_attempts.add(attempt(attempt_sid(2), verification_sid(2), NOW + timedelta(minutes=1)))
    route = twilio.get(ATTEMPTS_PATH).mock(side_effect=httpx.ReadTimeout("slow"))
    calls_before = route.call_count
    sync_clock.advance(300)

    with pytest.raises(AttemptsSyncFailed):
        await run_sync(database, service)

    assert route.call_count - calls_before == 3
    assert await watermark(db_engine) == NOW - timedelta(minutes=1)
    route.mock(side_effect=fake_attempts)
    report = await run_sync(database, service)
    assert (report.new, report.unchanged) == (1, 1)
    assert await watermark(db_engine) == NOW + timedelta(minutes=1)


async def test_bad_credentials_stop_the_sync_before_anything_is_stored(
    database: Database,
    db_engine: AsyncEngine,
    twilio: respx.MockRouter,
    http: httpx.AsyncClient,
    sync_clock: Clock,
) -> None:
    route = twilio.get(ATTEMPTS_PATH).mock(
        httpx.Response(401, json={"code": 20003, "message": "Authenticate", "status": 401})
    )

    with pytest.raises(AttemptsSyncFailed) as caught:
        await run_sync(database, sync_service(http, sync_clock))

    assert route.call_count == 1
    assert "20003" in caught.value.reason
    assert await stored(db_engine) == {}
    assert await watermark(db_engine) is None
