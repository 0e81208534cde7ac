"""The checks of request bodies that depend on the settings (a number's market, the
code's length), made while a body is validated so that every bad field of a request
is reported at once.

pydantic validators take no arguments from FastAPI, so `InputRulesMiddleware` makes
the app's rules current for the request; outside a request (no rules) the validators
check syntax only and the services make these checks themselves.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.config import Settings
from app.core.markets import Markets


@dataclass(frozen=True, slots=True)
class InputRules:
    """What an app's settings ask of its input."""

    code_length: int
    markets: Markets

    @classmethod
    def from_settings(cls, settings: Settings) -> InputRules:
        """The rules of `settings`."""
        return cls(code_length=settings.verification_code_length, markets=Markets(settings))


_current: ContextVar[InputRules | None] = ContextVar("input_rules", default=None)


def current_input_rules() -> InputRules | None:
    """The rules of the app serving this request, if any."""
    return _current.get()


class InputRulesMiddleware:
    """Makes `rules` current while the app handles a request."""

    def __init__(self, app: ASGIApp, rules: InputRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _current.set(self.rules)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def code_format_error(code: str, length: int) -> str | None:
    """Why `code` is not a code of `length` ASCII digits, if it is not."""
    if len(code) != length or not (code.isascii() and code.isdigit()):
        return f"Verification code must be {length} digits."
    return None
