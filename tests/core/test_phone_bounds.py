"""Phone parsing and masking at their bounds: the raw text's length cap, the shortest
number that is masked, and digits of other scripts."""

from __future__ import annotations

import pytest

from app.core.phone import MAX_RAW_LENGTH, MSG_INVALID, PhoneError, mask_phone, parse_phone


def _spaced(length: int) -> str:
    """`+996 555 123 456` widened with spaces to exactly `length` characters."""
    text = "+996" + " " * (length - 13) + "555123456"
    assert len(text) == length
    return text


def test_raw_text_of_exactly_the_cap_is_parsed() -> None:
    assert MAX_RAW_LENGTH == 32
    assert parse_phone(_spaced(32)).e164 == "+996555123456"


def test_raw_text_one_over_the_cap_is_refused() -> None:
    with pytest.raises(PhoneError) as caught:
        parse_phone(_spaced(33))

    assert str(caught.value) == MSG_INVALID


def test_the_cap_counts_the_text_without_surrounding_spaces() -> None:
    assert parse_phone("  " + _spaced(32) + "  ").e164 == "+996555123456"


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        pytest.param("+12345678", "+123*5678", id="eight-digits-the-shortest-masked"),
        pytest.param("+123456789", "+123**6789", id="nine-digits"),
    ],
)
def test_the_shortest_numbers_that_are_masked(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    "phone",
    [
        pytest.param(
            "+\u0669\u0669\u0666\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666",
            id="arabic-indic",
        ),
        pytest.param("+996555\uff11\uff12\uff13\uff14\uff15\uff16", id="fullwidth-tail"),
        pytest.param("+\u0969\u0969\u0966555123456", id="devanagari-head"),
    ],
)
def test_digits_of_other_scripts_are_hidden_entirely(phone: str) -> None:
    assert phone[1:].isdigit()  # digits to str.isdigit, though not ASCII

    assert mask_phone(phone) == "***"
