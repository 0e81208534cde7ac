"""Property tests: phone normalisation, arbitrary phone input, code format."""

from __future__ import annotations

import re
from typing import Any

import httpx
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.core.phone import PhoneError, parse_phone
from tests.conftest import ClientFactory
from tests.helpers import SEND, VERIFY

# Digits that are not ASCII: Arabic-Indic and fullwidth (str.isdigit() is true for them).
OTHER_DIGITS = "".join(chr(0x660 + i) + chr(0xFF10 + i) for i in range(10))
SEPARATORS = ["", " ", "-", ".", "(", ")"]
API = settings(
    max_examples=40,
    deadline=None,
    database=None,
    # Random digits make a valid KG or US number often but not always (`assume`).
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
PURE = settings(max_examples=300, deadline=None, database=None)


@st.composite
def kg_or_us_numbers(draw: st.DrawFn) -> str:
    """A valid KG or US number that can take SMS, in E.164."""
    country, length, first = draw(st.sampled_from([("1", 10, "23456789"), ("996", 9, "23579")]))
    national = draw(st.sampled_from(first)) + draw(
        st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1)
    )
    e164 = f"+{country}{national}"
    try:
        phone = parse_phone(e164)
    except PhoneError:
        assume(False)
        raise
    assume(phone.region in {"KG", "US"} and phone.can_receive_sms)
    return e164


@st.composite
def formatted(draw: st.DrawFn, e164: str) -> str:
    """`e164` with a space, dash, dot or parenthesis (or nothing) in every gap."""
    digits = e164[1:]
    gaps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(digits), max_size=len(digits)))
    padding = draw(st.sampled_from(["", " ", "  "]))
    return padding + "+" + "".join(sep + digit for sep, digit in zip(gaps, digits, strict=True))


@st.composite
def number_and_formatting(draw: st.DrawFn) -> tuple[str, str]:
    e164 = draw(kg_or_us_numbers())
    return e164, draw(formatted(e164))


@PURE
@given(number_and_formatting())
def test_any_formatting_parses_to_the_same_e164(case: tuple[str, str]) -> None:
    e164, typed = case
    phone = parse_phone(typed)
    assert phone.e164 == e164
    assert phone.region == phonenumbers.region_code_for_number(phonenumbers.parse(e164))


@API
@given(case=number_and_formatting())
async def test_any_formatting_is_answered_in_e164(
    client_for: ClientFactory, case: tuple[str, str]
) -> None:
    e164, typed = case
    async with client_for(verify_provider="console", rate_limit_enabled=False) as client:
        sent = await client.post(SEND, json={"phone": typed})
    assert sent.status_code == 200, (typed, sent.text)
    assert sent.json()["phone"] == e164


# Strings of every kind, with a bias to the characters a phone field is attacked with.
ANY_TEXT = st.one_of(
    st.text(max_size=64),
    st.text(alphabet="+0123456789 ().-\n\r\t\x00\x1b[]%s{}<>'\"\\/" + OTHER_DIGITS, max_size=40),
    st.from_regex(r"\+[0-9 ().\-]{0,40}", fullmatch=True),
)
ANY_JSON: Any = st.one_of(
    ANY_TEXT,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@pytest.fixture
async def console_client(client_for: ClientFactory) -> Any:
    async with client_for(verify_provider="console", rate_limit_enabled=False) as client:
        yield client


@API
@given(phone=ANY_JSON)
async def test_any_phone_never_yields_a_server_error(
    console_client: httpx.AsyncClient, phone: Any
) -> None:
    sent = await console_client.post(SEND, json={"phone": phone})
    assert sent.status_code in {200, 400}, (phone, sent.status_code, sent.text)
    if sent.status_code == 400:
        assert set(sent.json()) == {"phone"}
    verified = await console_client.post(VERIFY, json={"phone": phone, "code": "123456"})
    assert verified.status_code in {400}, (phone, verified.status_code, verified.text)


SIX_DIGITS = re.compile(r"[0-9]{6}")


def _not_six_digits(code: Any) -> bool:
    text = code.strip() if isinstance(code, str) else code
    if isinstance(code, int) and not isinstance(code, bool):
        text = str(code)
    return not (isinstance(text, str) and SIX_DIGITS.fullmatch(text))


BAD_CODES = st.one_of(
    st.text(max_size=12),
    st.text(alphabet="0123456789", min_size=0, max_size=12),
    st.text(alphabet="0123456789 \t\n" + OTHER_DIGITS, min_size=6, max_size=8),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
).filter(_not_six_digits)


@API
@given(code=BAD_CODES)
async def test_codes_outside_six_ascii_digits_are_400(
    console_client: httpx.AsyncClient, code: Any
) -> None:
    answer = await console_client.post(
        VERIFY, json={"phone": "+996555123456", "verification_code": code}
    )
    assert answer.status_code == 400, (code, answer.text)
    assert set(answer.json()) == {"verification_code"}, (code, answer.text)
