"""The `console` provider: random codes of the configured length, only an HMAC kept."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from typing import Any

import pytest

from app.services.verification.providers import console as console_verify
from app.services.verification.providers import local_codes
from app.services.verification.providers.base import CheckOutcome, CheckRequest, StartRequest
from app.services.verification.providers.console import ConsoleVerifyProvider
from app.services.verification.providers.local_codes import CodeHasher

SECRET = "unit-test-secret-that-is-long-enough-0123456789"
PHONE = "+996555123456"


@pytest.fixture
def hasher() -> CodeHasher:
    return CodeHasher(SECRET)


def start_request() -> StartRequest:
    return StartRequest(phone=PHONE, channel="sms", locale="ru")


async def start_and_read_code(
    provider: ConsoleVerifyProvider, caplog: pytest.LogCaptureFixture
) -> tuple[str, str | None, str]:
    """Start a verification; return its sid, stored hash, and the code the log showed."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=console_verify.logger.name):
        result = await provider.start(start_request())
    (record,) = [r for r in caplog.records if r.name == console_verify.logger.name]
    code = record.args[0] if isinstance(record.args, tuple) else None
    assert isinstance(code, str)
    return result.sid, result.code_hash, code


@pytest.mark.parametrize("length", [4, 6, 8, 10])
async def test_codes_have_the_configured_number_of_ascii_digits(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture, length: int
) -> None:
    provider = ConsoleVerifyProvider(hasher, length)

    for _ in range(10):
        _, _, code = await start_and_read_code(provider, caplog)
        assert len(code) == length
        assert code.isascii()
        assert code.isdigit()


async def test_codes_come_from_secrets(hasher: CodeHasher, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real_choice = secrets.choice

    def choice(seq: Any) -> Any:
        calls.append(seq)
        return real_choice(seq)

    monkeypatch.setattr(console_verify.secrets, "choice", choice)

    await ConsoleVerifyProvider(hasher, 6).start(start_request())

    assert len(calls) == 6


async def test_codes_differ_between_starts(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)

    codes = {(await start_and_read_code(provider, caplog))[2] for _ in range(20)}

    assert len(codes) > 1


async def test_start_keeps_only_the_hmac_of_the_code(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)

    sid, code_hash, code = await start_and_read_code(provider, caplog)

    assert re.fullmatch(r"VE[0-9a-f]{32}", sid)
    assert code_hash is not None
    assert re.fullmatch(r"[0-9a-f]{64}", code_hash)
    assert code_hash == hasher.hash(sid, code)
    assert code_hash != code


async def test_code_is_logged_at_warning_with_the_whole_phone(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)

    await start_and_read_code(provider, caplog)

    record = next(r for r in caplog.records if r.name == console_verify.logger.name)
    assert record.levelno == logging.WARNING
    # The provider's "text message": the whole number, unlike every other log line.
    assert f"for {PHONE} via sms" in record.getMessage()
    assert "development only" in record.getMessage()


async def test_right_code_is_approved_and_wrong_code_is_not(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)
    sid, code_hash, code = await start_and_read_code(provider, caplog)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    right_outcome = await provider.check(CheckRequest(sid=sid, code=code, code_hash=code_hash))
    wrong_outcome = await provider.check(CheckRequest(sid=sid, code=wrong, code_hash=code_hash))

    assert right_outcome is CheckOutcome.APPROVED
    assert wrong_outcome is CheckOutcome.WRONG_CODE


async def test_code_is_bound_to_its_verification_sid(
    hasher: CodeHasher, caplog: pytest.LogCaptureFixture
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)
    _, code_hash, code = await start_and_read_code(provider, caplog)
    other_sid = "VE" + "0" * 32

    outcome = await provider.check(CheckRequest(sid=other_sid, code=code, code_hash=code_hash))

    assert outcome is CheckOutcome.WRONG_CODE


async def test_hash_from_another_secret_does_not_match(caplog: pytest.LogCaptureFixture) -> None:
    issuing = ConsoleVerifyProvider(CodeHasher(SECRET), 6)
    checking = ConsoleVerifyProvider(CodeHasher("another-secret-that-is-long-enough-000"), 6)
    sid, code_hash, code = await start_and_read_code(issuing, caplog)

    outcome = await checking.check(CheckRequest(sid=sid, code=code, code_hash=code_hash))

    assert outcome is CheckOutcome.WRONG_CODE


async def test_check_without_a_stored_hash_is_not_found(hasher: CodeHasher) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)

    outcome = await provider.check(CheckRequest(sid="VE" + "0" * 32, code="123456"))

    assert outcome is CheckOutcome.NOT_FOUND


@pytest.mark.parametrize("right", [True, False])
async def test_check_compares_in_constant_time(
    hasher: CodeHasher,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    right: bool,
) -> None:
    provider = ConsoleVerifyProvider(hasher, 6)
    sid, code_hash, code = await start_and_read_code(provider, caplog)
    compared: list[tuple[Any, Any]] = []
    real_compare = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(local_codes.hmac, "compare_digest", spy)
    sent = code if right else f"{(int(code) + 1) % 1_000_000:06d}"

    outcome = await provider.check(CheckRequest(sid=sid, code=sent, code_hash=code_hash))

    assert outcome is (CheckOutcome.APPROVED if right else CheckOutcome.WRONG_CODE)
    assert compared == [(hasher.hash(sid, sent), code_hash)]


def test_hasher_is_keyed_and_deterministic() -> None:
    one = CodeHasher(SECRET)
    same = CodeHasher(SECRET)
    other = CodeHasher(SECRET + "x")

    assert one.hash("VE1", "123456") == same.hash("VE1", "123456")
    assert one.hash("VE1", "123456") != other.hash("VE1", "123456")
    assert one.hash("VE1", "123456") != one.hash("VE2", "123456")
    assert one.matches("VE1", "123456", None) is False
