"""The bot challenge (CAPTCHA) on sending a code: when a send needs one, and checking it.

SMS pumping costs money per code, so a send may have to come with a token of a
passed challenge (Turnstile, hCaptcha or reCAPTCHA). With `CAPTCHA_MODE=always`
every send needs one; with `risk` (the default) a send needs one when any of
these holds:

- its number is of a risky type (VoIP, personal, UAN or unknown; libphonenumber
  cannot tell US mobiles from landlines, so FIXED_LINE_OR_MOBILE counts as mobile);
- its market has used more than half of its SMS budget window;
- its client has used up its free sends (`CAPTCHA_FREE_SENDS_PER_IP`); a send that
  needs a challenge for another reason takes none of them.

Test numbers never need one. The challenge never replaces the limits: the
per-client and per-number limits and the budgets still apply after it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import httpx
from phonenumbers import PhoneNumberType

from app.core.config import CaptchaProvider, Settings
from app.core.markets import Market
from app.core.metrics import Metrics
from app.core.phone import Phone
from app.services.challenge.exceptions import (
    ChallengeFailed,
    ChallengeRequired,
    ChallengeUnavailable,
)
from app.services.challenge.siteverify import NoVerdict, SiteverifyClient
from app.services.limits.service import LoginLimits

logger = logging.getLogger(__name__)

__all__ = [
    "ChallengeFailed",
    "ChallengeInfo",
    "ChallengeReason",
    "ChallengeRequired",
    "ChallengeService",
    "ChallengeUnavailable",
]

RISKY_NUMBER_TYPES = frozenset(
    {
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
        PhoneNumberType.UAN,
        PhoneNumberType.UNKNOWN,
    }
)
# A market that has used more than this share of its SMS budget window is under
# pressure: every send to it needs a challenge.
BUDGET_SHARE_FOR_CHALLENGE = 0.5
# reCAPTCHA v3 passes every well-formed token and scores it instead: below this score
# (Google's suggested threshold) the token is not passed. v2 answers no score.
RECAPTCHA_MIN_SCORE = 0.5


class ChallengeReason(StrEnum):
    """Why a send needs a challenge, as the metrics and the log name it."""

    ALWAYS = "always"
    NUMBER_TYPE = "number_type"
    SMS_BUDGET = "sms_budget"
    FREE_SENDS_USED = "free_sends_used"


@dataclass(frozen=True, slots=True)
class ChallengeInfo:
    """What a frontend needs to render the challenge: never the secret."""

    provider: CaptchaProvider
    site_key: str | None
    mode: Literal["always", "risk"] | None

    @property
    def may_be_required(self) -> bool:
        """Whether a send may need a challenge at all."""
        return self.provider is not CaptchaProvider.NONE


class ChallengeService:
    """Decides whether a send needs a challenge and checks its token; one per process."""

    def __init__(
        self,
        settings: Settings,
        limits: LoginLimits,
        metrics: Metrics,
        http_client: httpx.AsyncClient,
    ) -> None:
        provider = settings.captcha_provider
        self._limits = limits
        self._metrics = metrics
        self._always = settings.captcha_mode == "always"
        self._fail_open = settings.captcha_fail_open
        self._hostnames = frozenset(settings.captcha_expected_hostnames)
        self._min_score = RECAPTCHA_MIN_SCORE if provider is CaptchaProvider.RECAPTCHA else None
        self._siteverify: SiteverifyClient | None = None
        url = settings.captcha_siteverify_url
        secret = settings.captcha_secret_key
        if provider is not CaptchaProvider.NONE and url and secret is not None:
            self._siteverify = SiteverifyClient(
                http_client,
                provider=provider,
                url=url,
                secret=secret.get_secret_value(),
                site_key=settings.captcha_site_key,
            )
        enabled = self._siteverify is not None
        self.info = ChallengeInfo(
            provider=provider if enabled else CaptchaProvider.NONE,
            site_key=settings.captcha_site_key if enabled else None,
            mode=settings.captcha_mode if enabled else None,
        )

    async def guard_send(
        self,
        phone: Phone,
        market: Market,
        client_ip: str | None,
        token: str | None,
        *,
        test_number: bool,
    ) -> None:
        """Let a send through, or raise: 400 when it needs a challenge and has no token
        or a token the provider rejects, 503 when the provider gives no verdict (unless
        CAPTCHA_FAIL_OPEN)."""
        siteverify = self._siteverify
        if siteverify is None or test_number:
            return
        reason = await self._reason(phone, market, client_ip)
        if reason is None:
            return
        self._count("required", reason)
        if token is None:
            logger.info(
                "Challenge required (%s), no token: market=%s phone=%s",
                reason.value,
                market.name,
                phone.masked,
            )
            raise ChallengeRequired()
        try:
            verdict = await siteverify.verify(token, client_ip)
        except NoVerdict as exc:
            self._count("errored", reason)
            if self._fail_open:
                self._metrics.challenge_fail_open.inc()
                logger.warning(
                    "Challenge provider gave no verdict (%s): send let through "
                    "(CAPTCHA_FAIL_OPEN) for %s",
                    exc.reason,
                    phone.masked,
                )
                return
            logger.error(
                "Challenge provider gave no verdict (%s): refusing the send to %s",
                exc.reason,
                phone.masked,
            )
            raise ChallengeUnavailable() from exc
        if not verdict.success:
            self._count("failed", reason)
            logger.info(
                "Challenge not passed (%s): market=%s phone=%s",
                ", ".join(verdict.error_codes) or "no error code",
                market.name,
                phone.masked,
            )
            raise ChallengeFailed()
        if (
            self._min_score is not None
            and verdict.score is not None
            and verdict.score < self._min_score
        ):
            self._count("failed", reason)
            logger.info(
                "Challenge not passed (score %g below %g): market=%s phone=%s",
                verdict.score,
                self._min_score,
                market.name,
                phone.masked,
            )
            raise ChallengeFailed()
        if self._hostnames and verdict.hostname not in self._hostnames:
            self._count("failed", reason)
            logger.warning(
                "Challenge solved on an unexpected hostname %r: market=%s phone=%s",
                verdict.hostname,
                market.name,
                phone.masked,
            )
            raise ChallengeFailed()
        self._count("passed", reason)

    async def _reason(
        self, phone: Phone, market: Market, client_ip: str | None
    ) -> ChallengeReason | None:
        """Why this send needs a challenge, or None. The cheapest conditions first; the
        client's free sends are taken only when nothing else asks for a challenge."""
        if self._always:
            return ChallengeReason.ALWAYS
        if phone.number_type in RISKY_NUMBER_TYPES:
            return ChallengeReason.NUMBER_TYPE
        if await self._limits.sms_budget_used(market) > BUDGET_SHARE_FOR_CHALLENGE:
            return ChallengeReason.SMS_BUDGET
        if not await self._limits.take_free_send(client_ip):
            return ChallengeReason.FREE_SENDS_USED
        return None

    def _count(self, outcome: str, reason: ChallengeReason) -> None:
        self._metrics.challenges.labels(outcome, reason.value).inc()
