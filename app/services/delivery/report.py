"""What one sync of delivery attempts did: the command's summary line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(slots=True)
class SyncReport:
    """Counts of one sync. `fetched` = `new` + `updated` + `unchanged`; `unmatched`
    counts the fetched attempts of no stored verification (started elsewhere, or
    purged). `watermark` is where the next run starts from (before the overlap)."""

    provider: str
    since: datetime
    pages: int = 0
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    unmatched: int = 0
    watermark: datetime | None = None

    def summary(self) -> str:
        """One line for the log and the terminal."""
        watermark = _iso(self.watermark) if self.watermark else "none"
        return (
            f"Synced {self.provider} delivery attempts created after {_iso(self.since)}: "
            f"{self.pages} pages, {self.fetched} fetched, {self.new} new, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.unmatched} unmatched; "
            f"watermark {watermark}"
        )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
