"""A whole login against mocked Twilio, the path every frontend takes."""

from __future__ import annotations

import httpx
import respx

from tests.twilio_fixtures import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CHECK_PATH,
    START_PATH,
    VERIFICATION_SID,
    basic_auth,
    checked,
    form,
    started,
)


async def test_send_then_verify_then_me(
    client: httpx.AsyncClient, twilio: respx.MockRouter
) -> None:
    start = twilio.post(START_PATH).mock(return_value=started("+996555123456"))
    check = twilio.post(CHECK_PATH).mock(return_value=checked("approved", "+996555123456"))

    sent = await client.post("/api/v1/auth/send-verification", json={"phone": "+996 555 123 456"})
    assert sent.status_code == 200, sent.text
    assert sent.json() == {
        "success": True,
        "message": "Verification code sent to +996555123456",
        "phone": "+996555123456",
        "market": "KG",
        "language": "ru",
        "expires_in_minutes": 10,
        "channel": "sms",
    }
    assert form(start.calls.last.request) == {
        "To": "+996555123456",
        "Channel": "sms",
        "Locale": "ru",
        "DeviceIp": "127.0.0.1",
    }
    assert basic_auth(start.calls.last.request) == (ACCOUNT_SID, AUTH_TOKEN)

    verified = await client.post(
        "/api/v1/auth/verify-code", json={"phone": "+996555123456", "verification_code": "123456"}
    )
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert form(check.calls.last.request) == {"VerificationSid": VERIFICATION_SID, "Code": "123456"}
    assert body["is_new_user"] is True
    assert body["user"]["phone"] == "+996555123456"

    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == body["user"]
