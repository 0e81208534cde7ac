"""Markets: which configured market a phone number belongs to."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from app.core.config import MarketSettings, Settings
from app.core.errors import FieldErrors
from app.core.phone import MSG_NO_SMS, MSG_UNSUPPORTED_COUNTRY, Phone


@dataclass(frozen=True, slots=True)
class Market:
    """A configured market a number belongs to."""

    name: str
    settings: MarketSettings

    @property
    def calling_code(self) -> str:
        """The country calling code of its numbers, e.g. `+996`."""
        return f"+{phonenumbers.country_code_for_region(self.settings.region.upper())}"


class Markets:
    """The configured markets, keyed by the region of their numbers."""

    def __init__(self, settings: Settings) -> None:
        self._by_region = {
            region: Market(name=name, settings=market)
            for region, (name, market) in settings.market_by_region.items()
        }

    def all(self) -> tuple[Market, ...]:
        """Every configured market, in the order of MARKETS."""
        return tuple(self._by_region.values())

    def of(self, phone: Phone) -> Market:
        """The market of `phone`; a 400 when none is configured for its region, or when
        the number cannot take SMS (fixed line, premium rate, …)."""
        refusal = self.refusal(phone)
        if refusal is not None:
            raise FieldErrors({"phone": [refusal]})
        return self._by_region[phone.region]

    def refusal(self, phone: Phone) -> str | None:
        """Why `phone` cannot log in here (no market for its region, or no SMS), if so."""
        if phone.region not in self._by_region:
            return MSG_UNSUPPORTED_COUNTRY
        if not phone.can_receive_sms:
            return MSG_NO_SMS
        return None
