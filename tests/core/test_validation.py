"""Bad input answers 400 with the old backend's messages, and never reaches Twilio."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from tests.helpers import BAD_BODY, KG_PHONE, SEND, VERIFY

REQUIRED = "This field is required."
NO_PLUS = "Phone number must start with country code (e.g., +996 or +1)"
INVALID = "Enter a valid phone number."
NOT_SUPPORTED = "Phone numbers from this country are not supported."
NO_SMS = "This phone number cannot receive SMS."
CODE_DIGITS = {"verification_code": ["Verification code must be 6 digits."]}

PHONE_ERRORS = [
    pytest.param("996555123456", NO_PLUS, id="no-plus"),
    pytest.param("0555 123 456", NO_PLUS, id="national-format"),
    pytest.param("+99655512345", INVALID, id="too-short"),
    pytest.param("+996555123456789", INVALID, id="too-long"),
    pytest.param("+996abc123456", INVALID, id="letters"),
    pytest.param("+1 202 555 0143 ext 5", INVALID, id="extension"),
    pytest.param("+", INVALID, id="plus-only"),
    pytest.param("+447911123456", NOT_SUPPORTED, id="UK-mobile"),
    pytest.param("+79161234567", NOT_SUPPORTED, id="Russia-mobile"),
    pytest.param("+18762091234", NOT_SUPPORTED, id="Jamaica-+1-876"),
    pytest.param("+14165551234", NOT_SUPPORTED, id="Canada-+1-416"),
    pytest.param("+996312123456", NO_SMS, id="KG-fixed-line"),
    pytest.param("+18005551234", NO_SMS, id="US-toll-free"),
    pytest.param("+19005551234", NO_SMS, id="US-premium-rate"),
]


@pytest.fixture
def no_twilio(twilio: respx.MockRouter) -> respx.MockRouter:
    """Twilio with no routes; the test asserts that nothing was sent."""
    return twilio


async def test_send_without_phone(client: httpx.AsyncClient, no_twilio: respx.MockRouter) -> None:
    response = await client.post(SEND, json={})

    assert response.status_code == 400
    assert response.json() == {"phone": [REQUIRED]}
    assert not no_twilio.calls


async def test_verify_without_fields(
    client: httpx.AsyncClient, no_twilio: respx.MockRouter
) -> None:
    response = await client.post(VERIFY, json={})

    assert response.status_code == 400
    assert response.json() == {"phone": [REQUIRED], "verification_code": [REQUIRED]}
    assert not no_twilio.calls


async def test_verify_without_code(client: httpx.AsyncClient, no_twilio: respx.MockRouter) -> None:
    response = await client.post(VERIFY, json={"phone": KG_PHONE})

    assert response.status_code == 400
    assert response.json() == {"verification_code": [REQUIRED]}
    assert not no_twilio.calls


@pytest.mark.parametrize(("phone", "message"), PHONE_ERRORS)
async def test_send_refuses_phone(
    client: httpx.AsyncClient, no_twilio: respx.MockRouter, phone: str, message: str
) -> None:
    response = await client.post(SEND, json={"phone": phone})

    assert response.status_code == 400
    assert response.json() == {"phone": [message]}
    assert not no_twilio.calls


@pytest.mark.parametrize(("phone", "message"), PHONE_ERRORS)
async def test_verify_refuses_phone(
    client: httpx.AsyncClient, no_twilio: respx.MockRouter, phone: str, message: str
) -> None:
    response = await client.post(VERIFY, json={"phone": phone, "verification_code": "123456"})

    assert response.status_code == 400
    assert response.json() == {"phone": [message]}
    assert not no_twilio.calls


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("\u0661\u0662\u0663\u0664\u0665\u0666", id="arabic-indic-digits"),
        pytest.param("\uff11\uff12\uff13\uff14\uff15\uff16", id="fullwidth-digits"),
        pytest.param("12345", id="5-digits"),
        pytest.param("1234567", id="7-digits"),
        pytest.param("12a456", id="a-letter"),
        pytest.param("abcdef", id="letters"),
        pytest.param("123 456", id="inner-space"),
        pytest.param("-12345", id="sign"),
        pytest.param("12345\u00b2", id="superscript-two"),
    ],
)
@pytest.mark.parametrize("field", ["verification_code", "code"])
async def test_code_must_be_six_ascii_digits(
    client: httpx.AsyncClient, no_twilio: respx.MockRouter, field: str, code: str
) -> None:
    response = await client.post(VERIFY, json={"phone": KG_PHONE, field: code})

    assert response.status_code == 400
    assert response.json() == CODE_DIGITS
    assert not no_twilio.calls


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[]", id="empty-array"),
        pytest.param(b'[{"phone": "+996555123456"}]', id="array-of-object"),
        pytest.param(b'"+996555123456"', id="string"),
        pytest.param(b"123", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"", id="empty"),
    ],
)
@pytest.mark.parametrize(
    ("path", "envelope"), [(SEND, {"success": False}), (VERIFY, {})], ids=["send", "verify"]
)
async def test_body_that_is_not_a_json_object(
    client: httpx.AsyncClient,
    no_twilio: respx.MockRouter,
    path: str,
    envelope: dict[str, Any],
    content: bytes,
) -> None:
    response = await client.post(
        path, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {**envelope, **BAD_BODY}
    assert not no_twilio.calls


@pytest.mark.parametrize("path", [SEND, VERIFY])
async def test_invalid_input_is_never_answered_with_422(
    client: httpx.AsyncClient, no_twilio: respx.MockRouter, path: str
) -> None:
    bodies: list[Any] = [{}, {"phone": 1.5}, {"phone": ["+996555123456"]}, {"phone": True}]
    for body in bodies:
        response = await client.post(path, json=body)
        assert response.status_code == 400, (body, response.text)
        assert "phone" in response.json()
    assert not no_twilio.calls
