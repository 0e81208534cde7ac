"""Vonage has no attempts API the sync reads: a code sent through Vonage records its
attempt when it is sent (channel, no status, no price), and its check records whether
it was used. A Twilio login writes no attempt (the sync brings Twilio's)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import respx
from jose import jwt
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models.delivery_attempt import DeliveryAttempt
from app.models.user import User
from tests.conftest import ClientFactory
from tests.db_failures import FAILURES, failing_statements
from tests.helpers import SEND, VERIFY, Records, bearer, verifications
from tests.twilio_fixtures import StatefulTwilio
from tests.vonage_fixtures import (
    API_KEY,
    REQUEST_ID,
    VONAGE,
    VONAGE_BASE_URL,
    StatefulVonage,
    markets,
)

CODE = "480913"
WRONG = "000000"
KG_NUMBERS = iter(range(100_000, 999_999))
# KG through Vonage, US through Twilio.
ROUTED: dict[str, Any] = {
    **VONAGE,
    "markets": markets(["vonage"], ["twilio"]),
    "rate_limit_enabled": False,
}


def kg_phone() -> str:
    return f"+996555{next(KG_NUMBERS):06d}"


@pytest.fixture
def vonage_api(twilio: respx.MockRouter) -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=VONAGE_BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def fake_vonage(vonage_api: respx.MockRouter) -> StatefulVonage:
    return StatefulVonage(vonage_api, CODE, max_attempts=2)


@pytest.fixture
def fake_twilio(twilio: respx.MockRouter) -> StatefulTwilio:
    return StatefulTwilio(twilio, CODE)


async def attempts(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(DeliveryAttempt.__table__))).all())


async def test_a_vonage_send_records_its_attempt_and_the_login_its_conversion(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        assert (await client.post(SEND, json={"phone": phone})).status_code == 200
        (sent,) = await attempts(db_engine)
        (row,) = await verifications(db_engine)
        login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})
        assert login.status_code == 200
        (used,) = await attempts(db_engine)

    assert (sent.provider, sent.attempt_sid, sent.verification_sid) == (
        "vonage",
        row.provider_sid,
        row.provider_sid,
    )
    assert (sent.verification_id, sent.market, sent.channel) == (row.id, "KG", "sms")
    assert (sent.delivery_status, sent.converted, sent.price_micros) == (None, None, None)
    assert (used.converted, used.delivery_status, used.price_micros) == (True, "delivered", None)
    assert used.provider_updated_at is not None


async def test_the_admin_view_shows_a_vonage_codes_conversion(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        body = (await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})).json()
        async with db_engine.begin() as connection:
            await connection.execute(
                update(User).where(User.id == int(body["user"]["id"])).values(roles=["admin"])
            )
        view = await client.get(
            "/api/v1/admin/verifications",
            params={"phone": phone},
            headers=bearer(body["access_token"]),
        )

    (item,) = view.json()["items"]
    assert (item["provider"], item["converted"], item["delivery_status"]) == (
        "vonage",
        True,
        "delivered",
    )
    assert (item["price"], item["price_currency"]) == (None, None)
    assert [a["channel"] for a in item["attempts"]] == ["sms"]


@pytest.mark.parametrize(
    ("wrong_codes", "settings"),
    [
        pytest.param(2, {}, id="locked-by-vonage"),
        pytest.param(1, {"verification_max_attempts": 1}, id="locked-here"),
    ],
)
async def test_a_vonage_code_locked_by_wrong_codes_is_recorded_unconverted(
    client_for: ClientFactory,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    wrong_codes: int,
    settings: dict[str, Any],
) -> None:
    """Locked by Vonage (its own attempts) or here (`VERIFICATION_MAX_ATTEMPTS` first)."""
    phone = kg_phone()
    async with client_for(**ROUTED, **settings) as client:
        await client.post(SEND, json={"phone": phone})
        for _ in range(wrong_codes):
            await client.post(VERIFY, json={"phone": phone, "verification_code": WRONG})

    (attempt,) = await attempts(db_engine)
    assert attempt.converted is False
    assert attempt.delivery_status is None


async def test_a_wrong_code_leaves_the_conversion_unknown(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        await client.post(VERIFY, json={"phone": phone, "verification_code": WRONG})

    (attempt,) = await attempts(db_engine)
    assert attempt.converted is None


async def test_each_vonage_send_is_its_own_attempt(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        await client.post(SEND, json={"phone": phone})

    found = await attempts(db_engine)
    rows = await verifications(db_engine)
    assert sorted(a.attempt_sid for a in found) == sorted(r.provider_sid for r in rows)
    assert len(found) == 2


async def test_a_twilio_login_writes_no_attempt(
    client_for: ClientFactory,
    fake_twilio: StatefulTwilio,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
) -> None:
    phone = "+12025550143"
    async with client_for(**ROUTED) as client:
        await client.post(SEND, json={"phone": phone})
        login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})

    assert login.status_code == 200
    assert await attempts(db_engine) == []


# ------------------------------------------------------------------ signed callbacks

CALLBACK = "/api/v1/callbacks/vonage/verify"
SIGNATURE_SECRET = "vonage-signature-secret-for-tests-0123456789"
WITH_CALLBACKS = {**ROUTED, "vonage_signature_secret": SIGNATURE_SECRET}


def signed(body: dict[str, Any], secret: str = SIGNATURE_SECRET, **claims: Any) -> dict[str, Any]:
    """A callback as Vonage sends it: the JSON body and its JWT."""
    raw = json.dumps(body).encode()
    token = jwt.encode(
        {
            "iat": 1_764_495_000,
            "jti": "0f1e2d3c",
            "iss": "Vonage",
            "api_key": API_KEY,
            "payload_hash": hashlib.sha256(raw).hexdigest(),
            **claims,
        },
        secret,
        algorithm="HS256",
    )
    return {
        "content": raw,
        "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    }


def summary(request_id: str, status: str = "completed", price: Any = 0.105) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "submitted_at": "2026-11-30T09:00:00.000Z",
        "status": status,
        "type": "summary",
        "channel_timeout": 300,
        "workflow": [
            {"channel": "sms", "initiated_at": "2026-11-30T09:00:00.000Z", "status": status}
        ],
        "price": price,
    }


async def test_a_summary_callback_records_price_and_conversion(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**WITH_CALLBACKS) as client:
        await client.post(SEND, json={"phone": phone})
        (sent,) = await attempts(db_engine)
        answer = await client.post(CALLBACK, **signed(summary(sent.attempt_sid)))
        again = await client.post(CALLBACK, **signed(summary(sent.attempt_sid)))

    assert answer.status_code == again.status_code == 204
    (attempt,) = await attempts(db_engine)
    assert (attempt.converted, attempt.price_micros, attempt.price_currency) == (
        True,
        105_000,
        "EUR",
    )
    assert attempt.provider_updated_at.replace(tzinfo=UTC) == datetime(2026, 11, 30, 9, tzinfo=UTC)
    assert attempt.delivery_status is None


async def test_an_expired_event_records_an_unused_code(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    phone = kg_phone()
    async with client_for(**WITH_CALLBACKS) as client:
        await client.post(SEND, json={"phone": phone})
        (sent,) = await attempts(db_engine)
        event = {
            "request_id": sent.attempt_sid,
            "triggered_at": "2026-11-30T09:00:00.000Z",
            "type": "event",
            "channel": "sms",
            "status": "expired",
            "finalized_at": "2026-11-30T09:10:00.000Z",
        }
        answer = await client.post(CALLBACK, **signed(event))

    assert answer.status_code == 204
    (attempt,) = await attempts(db_engine)
    assert (attempt.converted, attempt.price_micros) == (False, None)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: signed(body, secret="another-secret-0123456789abcdef"), id="key"),
        pytest.param(
            lambda body: {**signed(body), "content": json.dumps({**body, "price": 0}).encode()},
            id="body",
        ),
        pytest.param(lambda body: signed(body, api_key="another-account"), id="account"),
        pytest.param(
            lambda body: {**signed(body), "headers": {"Content-Type": "application/json"}},
            id="unsigned",
        ),
    ],
)
async def test_a_forged_callback_answers_401_and_changes_nothing(
    client_for: ClientFactory,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    forge: Any,
) -> None:
    phone = kg_phone()
    async with client_for(**WITH_CALLBACKS) as client:
        await client.post(SEND, json={"phone": phone})
        (before,) = await attempts(db_engine)
        answer = await client.post(CALLBACK, **forge(summary(before.attempt_sid)))

    assert answer.status_code == 401
    assert answer.json() == {"detail": "Invalid or missing callback signature."}
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert await attempts(db_engine) == [before]


async def test_without_the_signature_secret_callbacks_answer_404(
    client_for: ClientFactory, fake_vonage: StatefulVonage, app_logs: Records
) -> None:
    async with client_for(**ROUTED) as client:
        answer = await client.post(CALLBACK, **signed(summary(REQUEST_ID)))

    assert answer.status_code == 404
    assert answer.json() == {"detail": "Vonage callbacks are not configured."}
    assert app_logs.at(logging.ERROR) == [
        "Vonage callback refused: VONAGE_SIGNATURE_SECRET is not set"
    ]


async def test_a_callback_of_an_unknown_request_is_accepted_and_stores_nothing(
    client_for: ClientFactory, fake_vonage: StatefulVonage, db_engine: AsyncEngine
) -> None:
    async with client_for(**WITH_CALLBACKS) as client:
        answer = await client.post(CALLBACK, **signed(summary(REQUEST_ID)))

    assert answer.status_code == 204
    assert await attempts(db_engine) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[1, 2]", {"detail": "Request body must be a JSON object."}),
        (b'{"status": "completed"}', {"request_id": ["This field is required."]}),
        (
            b'{"request_id": "r", "type": "summary", "price": "lots"}',
            {"price": ["A valid number is required."]},
        ),
    ],
)
async def test_a_signed_body_that_is_no_callback_answers_400(
    client_for: ClientFactory, fake_vonage: StatefulVonage, body: bytes, error: dict[str, Any]
) -> None:
    token = jwt.encode(
        {"payload_hash": hashlib.sha256(body).hexdigest()}, SIGNATURE_SECRET, algorithm="HS256"
    )
    async with client_for(**WITH_CALLBACKS) as client:
        answer = await client.post(
            CALLBACK,
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    assert answer.status_code == 400
    assert answer.json() == error


@pytest.fixture
async def attempts_refused(db_engine: AsyncEngine, on_postgres: bool) -> AsyncIterator[None]:
    """Every insert into delivery_attempts fails, as on a database that refuses it."""
    if on_postgres:
        create = [
            "CREATE FUNCTION refuse_attempt() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_attempt BEFORE INSERT ON delivery_attempts "
            "FOR EACH ROW EXECUTE FUNCTION refuse_attempt()",
        ]
        drop = [
            "DROP TRIGGER refuse_attempt ON delivery_attempts",
            "DROP FUNCTION refuse_attempt()",
        ]
    else:
        create = [
            "CREATE TRIGGER refuse_attempt BEFORE INSERT ON delivery_attempts "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        ]
        drop = ["DROP TRIGGER refuse_attempt"]
    async with db_engine.begin() as connection:
        for statement in create:
            await connection.execute(text(statement))
    try:
        yield
    finally:
        async with db_engine.begin() as connection:
            for statement in drop:
                await connection.execute(text(statement))


async def test_an_attempt_that_cannot_be_stored_is_logged_and_the_login_goes_on(
    client_for: ClientFactory,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    attempts_refused: None,
    app_logs: Records,
) -> None:
    phone = kg_phone()
    async with client_for(**ROUTED) as client:
        sent = await client.post(SEND, json={"phone": phone})
        login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})

    assert sent.status_code == login.status_code == 200
    assert await attempts(db_engine) == []
    (warning,) = [m for m in app_logs.at(logging.WARNING) if "not recorded" in m]
    assert warning.startswith(
        f"Delivery attempt of Vonage for {phone[:4]}*****{phone[-4:]} not recorded ("
    )


@pytest.mark.parametrize(("failure", "named"), FAILURES)
async def test_the_log_names_why_an_attempt_was_not_recorded(
    client_for: ClientFactory,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    app_logs: Records,
    failure: BaseException,
    named: str,
) -> None:
    phone = kg_phone()
    inserting = "INSERT INTO delivery_attempts"
    with failing_statements(lambda statement: inserting in statement) as failures:
        async with client_for(**ROUTED) as client:
            failures.append(failure)
            sent = await client.post(SEND, json={"phone": phone})
            login = await client.post(VERIFY, json={"phone": phone, "verification_code": CODE})

    assert sent.status_code == login.status_code == 200
    assert not failures, "the attempt's insert never ran"
    assert await attempts(db_engine) == []
    assert app_logs.at(logging.WARNING) == [
        f"Delivery attempt of Vonage for {phone[:4]}*****{phone[-4:]} not recorded ({named})"
    ]


@pytest.mark.parametrize(
    ("codes", "statuses", "settings"),
    [
        pytest.param([CODE], [200], {}, id="used"),
        pytest.param([WRONG, WRONG], [400, 429], {}, id="locked-by-vonage"),
        pytest.param([WRONG], [400], {"verification_max_attempts": 1}, id="locked-here"),
    ],
)
async def test_an_outcome_that_cannot_be_recorded_is_logged_and_the_answer_stands(
    client_for: ClientFactory,
    fake_vonage: StatefulVonage,
    db_engine: AsyncEngine,
    app_logs: Records,
    codes: list[str],
    statuses: list[int],
    settings: dict[str, Any],
) -> None:
    phone = kg_phone()
    updating = "UPDATE delivery_attempts"
    with failing_statements(lambda statement: updating in statement) as failures:
        async with client_for(**ROUTED, **settings) as client:
            assert (await client.post(SEND, json={"phone": phone})).status_code == 200
            failures.append(ConnectionResetError())
            answers = [
                await client.post(VERIFY, json={"phone": phone, "verification_code": code})
                for code in codes
            ]

    assert [a.status_code for a in answers] == statuses
    assert not failures, "the outcome's update never ran"
    (attempt,) = await attempts(db_engine)
    assert attempt.converted is None
    masked = f"{phone[:4]}*****{phone[-4:]}"
    warning = f"Delivery attempt of Vonage for {masked} not recorded (ConnectionResetError)"
    assert warning in app_logs.at(logging.WARNING)
