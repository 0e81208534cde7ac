"""Phone parsing (libphonenumber), market resolution by region, and masking for logs."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from app.core.config import Settings
from app.core.errors import FieldErrors
from app.core.markets import Markets
from app.core.phone import (
    MAX_RAW_LENGTH,
    MSG_INVALID,
    MSG_NO_PLUS,
    MSG_NO_SMS,
    MSG_UNSUPPORTED_COUNTRY,
    Phone,
    PhoneError,
    _parse_valid,
    mask_phone,
    parse_phone,
)

# These tests build `Settings` themselves: the process environment stays out.
pytestmark = pytest.mark.usefixtures("clean_settings_env")


@pytest.mark.parametrize(
    "raw",
    [
        "+996555123456",
        "+996 555 123 456",
        "+996-555-123-456",
        "+996.555.123.456",
        "+996 (555) 12-34-56",
        "+(996) 555 123456",
        "  +996555123456  ",
        "\t+996 555 123 456\n",
    ],
)
def test_kg_number_in_any_format_gives_one_e164(raw: str) -> None:
    phone = parse_phone(raw)

    assert phone == Phone(e164="+996555123456", region="KG", national_number="555123456")
    assert str(phone) == "+996555123456"


@pytest.mark.parametrize(
    "raw",
    [
        "+14155552671",
        "+1 415 555 2671",
        "+1 (415) 555-2671",
        "+1-415-555-2671",
        "+1.415.555.2671",
        "+1 415.555.2671",
        " +1 (415) 555 2671 ",
    ],
)
def test_us_number_in_any_format_gives_one_e164(raw: str) -> None:
    phone = parse_phone(raw)

    assert phone.e164 == "+14155552671"
    assert phone.region == "US"
    assert phone.national_number == "4155552671"


@pytest.mark.parametrize(
    "raw",
    [
        "996555123456",
        "0555123456",
        "00996555123456",
        "(415) 555-2671",
        "4155552671",
        "",
        "   ",
        "996+555123456",
    ],
)
def test_missing_leading_plus_is_refused_with_the_country_code_message(raw: str) -> None:
    with pytest.raises(PhoneError) as caught:
        parse_phone(raw)

    assert str(caught.value) == MSG_NO_PLUS
    assert MSG_NO_PLUS == "Phone number must start with country code (e.g., +996 or +1)"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("\u202a+996 700 445 566\u202c", id="ios-bidi-marks"),
        pytest.param("\u200e+996 700 445 566", id="left-to-right-mark"),
        pytest.param("+996\u00a0700\u00a0445\u00a0566", id="no-break-spaces"),
        pytest.param("+996\u202f700\u2009445\u2007566", id="narrow-thin-figure-spaces"),
        pytest.param("+996\u200b700\u2060445\ufeff566", id="zero-width-characters"),
        pytest.param("\u3000+996\u3000700\u3000445\u3000566", id="ideographic-spaces"),
        pytest.param("\uff0b\uff19\uff19\uff16 700 445 566", id="fullwidth-plus-and-digits"),
        pytest.param("\u2068+996 (700) 44-55-66\u2069", id="isolates-around-formatting"),
    ],
)
def test_pasted_numbers_with_invisible_formatting_are_read(raw: str) -> None:
    assert parse_phone(raw).e164 == "+996700445566"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("\u202a996 700 445 566\u202c", MSG_NO_PLUS, id="marks-without-plus"),
        pytest.param("\u202a\u202c", MSG_NO_PLUS, id="only-marks"),
        pytest.param("+996\u00a0700\u00a0abc\u00a0566", MSG_INVALID, id="letters-between-nbsp"),
        pytest.param("+\u0669\u0669\u0666 700 445 566", MSG_INVALID, id="arabic-indic-digits"),
        pytest.param("+996 700\u2028445 566", MSG_INVALID, id="line-separator-is-not-zs"),
        pytest.param("+996 700\t445 566", MSG_INVALID, id="tab-is-a-control"),
    ],
)
def test_what_is_still_not_a_number_is_refused(raw: str, message: str) -> None:
    with pytest.raises(PhoneError) as caught:
        parse_phone(raw)

    assert str(caught.value) == message


def test_length_bound_counts_what_was_sent_invisible_characters_included() -> None:
    """The bound is the schema's `maxLength`: it counts every character the client sent
    (once trimmed), so a number padded with invisible characters past it is refused."""
    number = "\u202a+996 700 445 566\u202c"
    at_bound = number + "\u200b" * (MAX_RAW_LENGTH - len(number))
    assert len(at_bound) == MAX_RAW_LENGTH == 32

    assert parse_phone(at_bound).e164 == "+996700445566"
    with pytest.raises(PhoneError) as caught:
        parse_phone(at_bound + "\u200b")
    assert str(caught.value) == MSG_INVALID


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("+1 800 FLOWERS", id="vanity-letters"),
        pytest.param("+1 415 555 CALL", id="letters-at-end"),
        pytest.param("+996 555 abc 456", id="letters-in-middle"),
        pytest.param("+1 415 555 2671 ext. 12", id="ext-word"),
        pytest.param("+1 415 555 2671 x12", id="x-extension"),
        pytest.param("+14155552671;ext=12", id="rfc3966-extension"),
        pytest.param("+1 415 555 2671 #12", id="hash-extension"),
        pytest.param("+9965551234567", id="kg-one-digit-too-long"),
        pytest.param("+99655512345", id="kg-one-digit-too-short"),
        pytest.param("+141555526710", id="us-one-digit-too-long"),
        pytest.param("+1234567890123456789", id="longer-than-e164"),
        pytest.param("+" + "1" * 40, id="very-long"),
        pytest.param("+996 " + " " * 40 + "555123456", id="too-long-raw-text"),
        pytest.param("+", id="plus-only"),
        pytest.param("++996555123456", id="double-plus"),
        pytest.param("+996_555_123_456", id="underscores"),
        pytest.param("+996/555/123456", id="slashes"),
        pytest.param("+\u0669\u0669\u0666555123456", id="arabic-indic-digits"),
        pytest.param("+999 555 123 456", id="unassigned-country-code"),
        pytest.param("+1 415 555 2671\x00", id="nul-byte"),
    ],
)
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(PhoneError) as caught:
        parse_phone(raw)

    assert str(caught.value) == MSG_INVALID


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        pytest.param("+1 876 210 1234", "JM", "+18762101234", id="jamaica-876"),
        pytest.param("+1 (876) 523-0123", "JM", "+18765230123", id="jamaica-876-fixed"),
        pytest.param("+1 416 979 1234", "CA", "+14169791234", id="canada-416"),
        pytest.param("+1 506 234 5678", "CA", "+15062345678", id="canada-506"),
    ],
)
def test_nanp_numbers_get_their_own_region_not_us(raw: str, region: str, e164: str) -> None:
    phone = parse_phone(raw)

    assert phone.region == region
    assert phone.e164 == e164


@pytest.mark.parametrize("raw", ["+1 876 210 1234", "+1 416 979 1234", "+44 7400 123456"])
def test_numbers_outside_the_configured_markets_are_not_supported(raw: str) -> None:
    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]

    with pytest.raises(FieldErrors) as caught:
        Markets(settings).of(parse_phone(raw))

    assert caught.value.errors == {"phone": [MSG_UNSUPPORTED_COUNTRY]}


@pytest.mark.parametrize(
    ("raw", "market", "language"),
    [("+996 555 123 456", "KG", "ru"), ("+1 415 555 2671", "US", "en")],
)
def test_kg_and_us_numbers_resolve_to_their_markets(raw: str, market: str, language: str) -> None:
    settings = Settings(_env_file=None, environment="test")  # type: ignore[call-arg]

    found = Markets(settings).of(parse_phone(raw))

    assert found.name == market
    assert found.settings.language == language
    assert found.settings.code_ttl_minutes == 10


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("+996312123456", id="kg-fixed-line"),
        pytest.param("+996800123456", id="kg-toll-free"),
        pytest.param("+18002345678", id="us-toll-free"),
        pytest.param("+19002345678", id="us-premium-rate"),
        pytest.param("+441212345678", id="gb-fixed-line"),
        pytest.param("+449012345678", id="gb-premium-rate"),
        pytest.param("+447640123456", id="gb-pager"),
        pytest.param("+445512345678", id="gb-uan"),
        pytest.param("+4918012345", id="de-shared-cost"),
        pytest.param("+49177991234567", id="de-voicemail"),
    ],
)
def test_numbers_that_cannot_take_sms_are_refused(raw: str) -> None:
    assert parse_phone(raw).can_receive_sms is False
    with pytest.raises(PhoneError) as caught:
        parse_phone(raw, check_sms=True)

    assert str(caught.value) == MSG_NO_SMS


def test_sms_check_can_be_skipped() -> None:
    assert parse_phone("+996312123456", check_sms=False).region == "KG"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("+996700123456", id="kg-mobile"),
        pytest.param("+12015550123", id="us-fixed-line-or-mobile"),
        pytest.param("+447400123456", id="gb-mobile"),
    ],
)
def test_mobile_and_fixed_line_or_mobile_numbers_are_accepted(raw: str) -> None:
    assert parse_phone(raw).e164 == raw


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("+996555123456", "+996*****3456"),
        ("+14155552671", "+141****2671"),
        ("+447400123456", "+447*****3456"),
        ("996555123456", "+996*****3456"),
    ],
)
def test_mask_phone_hides_the_middle(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("phone", ["", "+", "+1234567", "+99655512345x", "not a phone"])
def test_mask_phone_hides_everything_it_cannot_read(phone: str) -> None:
    assert mask_phone(phone) == "***"


def test_mask_phone_never_shows_the_whole_number() -> None:
    masked = mask_phone("+996555123456")

    assert "555123" not in masked
    assert masked.count("*") == 5


def test_validity_is_libphonenumbers_is_valid_number_across_countries() -> None:
    """The parser asks for a number's type once instead of also calling
    is_valid_number; the two must agree on every number, of every country."""
    rng = random.Random(7)
    country_codes = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    checked = 0
    for _ in range(20_000):
        digits = str(rng.randrange(10 ** rng.randint(3, 11), 10**12))
        raw = f"+{rng.choice(country_codes)}{digits}"
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            continue
        checked += 1
        try:
            parse_phone(raw)
            accepted = True
        except PhoneError:
            accepted = False
        assert accepted == phonenumbers.is_valid_number(number), raw
    assert checked > 15_000


def test_refused_numbers_are_not_remembered() -> None:
    before = _parse_valid.cache_info().currsize
    for raw in ("+99655512345", "+1212555014", "+9960000000000"):
        with pytest.raises(PhoneError):
            parse_phone(raw)
    assert _parse_valid.cache_info().currsize == before
    parse_phone("+996555987654")
    parse_phone("+996 555 987 654")
    assert parse_phone("+996555987654") == parse_phone("+996 555 987 654")
