"""/metrics in Prometheus text: requests, verifications, Twilio, limits and spend."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.conftest import ClientFactory
from tests.helpers import KG_PHONE, SEND, US_PHONE, VERIFY
from tests.ops.conftest import Samples, matching, parse_metrics, sample
from tests.twilio_fixtures import (
    CHECK_PATH,
    START_PATH,
    checked,
    mock_start,
    twilio_error,
)


async def scrape(client: httpx.AsyncClient) -> Samples:
    answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return parse_metrics(answer.text)


async def test_a_login_is_counted(client_for: ClientFactory, twilio: respx.MockRouter) -> None:
    mock_start(twilio)
    twilio.post(CHECK_PATH).mock(return_value=checked("approved", KG_PHONE))
    async with client_for() as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        assert (
            await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": "123456"})
        ).status_code == 200
        metrics = await scrape(client)

    send_labels = {"method": "POST", "route": SEND, "status": "200"}
    assert sample(metrics, "phone_auth_http_requests_total", **send_labels) == 1.0
    assert sample(metrics, "phone_auth_http_request_duration_seconds_count", **send_labels) == 1.0
    buckets = matching(metrics, "phone_auth_http_request_duration_seconds_bucket", **send_labels)
    assert {labels["le"] for labels, _ in buckets} >= {"0.005", "0.1", "1.0", "10.0", "+Inf"}
    assert sample(
        metrics, "phone_auth_http_request_duration_seconds_bucket", le="+Inf", **send_labels
    ) == (1.0)
    assert (
        sample(metrics, "phone_auth_http_requests_total", method="POST", route=VERIFY, status="200")
        == 1.0
    )

    assert (
        sample(
            metrics,
            "phone_auth_verifications_started_total",
            market="KG",
            channel="sms",
            outcome="sent",
        )
        == 1.0
    )
    assert (
        sample(metrics, "phone_auth_verifications_approved_total", market="KG", channel="sms")
        == 1.0
    )
    for operation in ("start", "check"):
        count = sample(
            metrics,
            "phone_auth_twilio_request_duration_seconds_count",
            operation=operation,
            status="201" if operation == "start" else "200",
        )
        assert count == 1.0, operation
    assert sample(
        metrics, "phone_auth_sms_spend_usd_total", market="KG", provider="twilio"
    ) == pytest.approx(0.15)
    assert sample(metrics, "phone_auth_twilio_circuit_open") == 0.0


async def test_a_wrong_code_is_counted_as_failed(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    twilio.post(CHECK_PATH).mock(return_value=checked("pending", KG_PHONE))
    async with client_for() as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        wrong = await client.post(VERIFY, json={"phone": KG_PHONE, "verification_code": "000000"})
        assert wrong.status_code == 400
        metrics = await scrape(client)
    assert (
        sample(
            metrics,
            "phone_auth_verifications_failed_total",
            market="KG",
            channel="sms",
            outcome="invalid_code",
        )
        == 1.0
    )
    assert matching(metrics, "phone_auth_verifications_approved_total") == []
    assert (
        sample(metrics, "phone_auth_http_requests_total", method="POST", route=VERIFY, status="400")
        == 1.0
    )


async def test_a_check_without_a_code_to_check_is_counted_under_no_channel(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    """No pending code, hence no channel: the failure is counted with channel `none`."""
    check = twilio.post(CHECK_PATH).mock(return_value=checked("approved", US_PHONE))
    async with client_for() as client:
        refused = await client.post(VERIFY, json={"phone": US_PHONE, "verification_code": "123456"})
        assert refused.status_code == 400
        metrics = await scrape(client)
    assert matching(metrics, "phone_auth_verifications_failed_total") == [
        ({"market": "US", "channel": "none", "outcome": "invalid_code"}, 1.0)
    ]
    assert check.call_count == 0


async def test_twilio_errors_are_counted_by_twilio_code(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    twilio.post(START_PATH).mock(return_value=twilio_error(60200, 400, "Invalid parameter"))
    async with client_for() as client:
        refused = await client.post(SEND, json={"phone": KG_PHONE})
        assert refused.status_code == 400, refused.text
        metrics = await scrape(client)
    assert sample(metrics, "phone_auth_twilio_errors_total", operation="start", code="60200") == 1.0
    assert (
        sample(
            metrics,
            "phone_auth_twilio_request_duration_seconds_count",
            operation="start",
            status="400",
        )
        == 1.0
    )
    started_not_sent = matching(metrics, "phone_auth_verifications_started_total")
    assert started_not_sent == [
        ({"market": "KG", "channel": "sms", "outcome": "number_refused"}, 1.0)
    ]
    # Nothing was sent, so nothing was spent.
    assert matching(metrics, "phone_auth_sms_spend_usd_total") == []


async def test_rate_limit_refusals_are_counted_by_limit(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    async with client_for() as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        again = await client.post(SEND, json={"phone": KG_PHONE})
        assert again.status_code == 429
        metrics = await scrape(client)
    assert sample(metrics, "phone_auth_rate_limit_refusals_total", limit="send_per_phone") == 1.0
    assert (
        sample(metrics, "phone_auth_http_requests_total", method="POST", route=SEND, status="429")
        == 1.0
    )
    # The refused send cost nothing.
    assert sample(
        metrics, "phone_auth_sms_spend_usd_total", market="KG", provider="twilio"
    ) == pytest.approx(0.15)


async def test_a_send_to_a_test_number_is_counted_as_such_and_spends_nothing(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    start = mock_start(twilio)
    async with client_for(test_phone_numbers="+12025550100=123456") as client:
        assert (await client.post(SEND, json={"phone": "+12025550100"})).status_code == 200
        metrics = await scrape(client)
    assert matching(metrics, "phone_auth_verifications_started_total") == [
        ({"market": "US", "channel": "sms", "outcome": "test_number"}, 1.0)
    ]
    assert matching(metrics, "phone_auth_sms_spend_usd_total") == []
    assert start.call_count == 0


async def test_sms_spend_by_market_and_provider(
    client_for: ClientFactory, twilio: respx.MockRouter
) -> None:
    mock_start(twilio)
    async with client_for() as client:
        assert (await client.post(SEND, json={"phone": KG_PHONE})).status_code == 200
        assert (await client.post(SEND, json={"phone": US_PHONE})).status_code == 200
        metrics = await scrape(client)
    assert sample(
        metrics, "phone_auth_sms_spend_usd_total", market="KG", provider="twilio"
    ) == pytest.approx(0.15)
    assert sample(
        metrics, "phone_auth_sms_spend_usd_total", market="US", provider="twilio"
    ) == pytest.approx(0.0575)


async def test_unmatched_routes_share_one_label(client_for: ClientFactory) -> None:
    async with client_for() as client:
        for path in ("/nope/1", "/nope/2", "/wp-login.php"):
            assert (await client.get(path)).status_code == 404
        metrics = await scrape(client)
    assert (
        sample(
            metrics, "phone_auth_http_requests_total", method="GET", route="unmatched", status="404"
        )
        == 3.0
    )
    routes = {labels["route"] for labels, _ in matching(metrics, "phone_auth_http_requests_total")}
    assert not any(route.startswith("/nope") or "wp-login" in route for route in routes)
