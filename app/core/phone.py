"""The `Phone` value object: what a person typed, parsed to E.164, with its masked form."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

MSG_NO_PLUS = "Phone number must start with country code (e.g., +996 or +1)"
MSG_INVALID = "Enter a valid phone number."
MSG_UNSUPPORTED_COUNTRY = "Phone numbers from this country are not supported."
MSG_NO_SMS = "This phone number cannot receive SMS."

# Longest formatted number we bother parsing; E.164 itself is at most 16 characters.
# It bounds what the client sent (trimmed), invisible characters included, so it is
# the schema's `maxLength` and bounds the work of normalising too.
MAX_RAW_LENGTH = 32
# Invisible formatting (Cf: bidi marks such as the U+202A/U+202C iOS wraps around a
# pasted number, zero-width spaces) and spaces of any width (Zs: NBSP, thin space).
_INVISIBLE = frozenset({"Cf", "Zs"})
# Characters a person may type between digits. Letters (vanity numbers) and
# extensions, which libphonenumber would otherwise accept, are refused.
_ALLOWED = re.compile(r"\+[0-9 ().\-]+")

_NO_SMS_TYPES = frozenset(
    {
        PhoneNumberType.FIXED_LINE,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.VOICEMAIL,
        PhoneNumberType.PAGER,
        PhoneNumberType.UAN,
    }
)


class PhoneError(ValueError):
    """A phone number that cannot be used; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class Phone:
    """A valid phone number in E.164 form with its region and its form for logs."""

    e164: str
    region: str
    national_number: str
    can_receive_sms: bool = True
    masked: str = ""
    # libphonenumber's `PhoneNumberType` of the number (MOBILE, FIXED_LINE_OR_MOBILE, VOIP…).
    number_type: int = PhoneNumberType.MOBILE

    def __post_init__(self) -> None:
        if not self.masked:
            object.__setattr__(self, "masked", mask_phone(self.e164))

    def __str__(self) -> str:
        return self.e164


def parse_phone(raw: str, *, check_sms: bool = False) -> Phone:
    """Parse what a person typed into a `Phone`, or raise `PhoneError`.

    With `check_sms`, a number of a type that cannot take SMS is refused here;
    otherwise `can_receive_sms` says so and the caller decides when to refuse.
    """
    text = raw.strip()
    too_long = len(text) > MAX_RAW_LENGTH
    text = normalise(text[: MAX_RAW_LENGTH + 1])
    if not text.startswith("+"):
        raise PhoneError(MSG_NO_PLUS)
    if too_long or not _ALLOWED.fullmatch(text):
        raise PhoneError(MSG_INVALID)
    phone = _parse_valid(text)
    if check_sms and not phone.can_receive_sms:
        raise PhoneError(MSG_NO_SMS)
    return phone


def normalise(text: str) -> str:
    """`text` with compatibility forms folded (NFKC: fullwidth digits and plus become
    ASCII) and invisible formatting and spaces of any kind removed."""
    if text.isascii():
        return text.replace(" ", "")
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) not in _INVISIBLE)


# A login parses its number twice (send, then verify), and libphonenumber's parse
# is the costliest step of validation; only valid numbers are kept, so refusals
# cannot fill the cache.
@functools.lru_cache(maxsize=4096)
def _parse_valid(text: str) -> Phone:
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(MSG_INVALID) from exc
    if number.extension:
        raise PhoneError(MSG_INVALID)
    # A number is valid exactly when its type is known (what is_valid_number
    # checks), so one type lookup answers both.
    kind = phonenumbers.number_type(number)
    region = phonenumbers.region_code_for_number(number)
    if kind == PhoneNumberType.UNKNOWN or region is None:
        raise PhoneError(MSG_INVALID)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Phone(
        e164=e164,
        region=region,
        national_number=phonenumbers.national_significant_number(number),
        can_receive_sms=kind not in _NO_SMS_TYPES,
        masked=mask_phone(e164),
        number_type=kind,
    )


def mask_phone(phone: str) -> str:
    """Hide the middle of a number for logs: `+996555123456` → `+996*****3456`."""
    digits = phone[1:] if phone.startswith("+") else phone
    if not (digits.isascii() and digits.isdigit()) or len(digits) < 8:
        return "***"
    return f"+{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"
