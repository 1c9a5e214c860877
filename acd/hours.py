"""Service hours: is a skill group open at a given moment? Pure: the caller passes the time."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from acd.config import GroupConfig, parse_hours


class ServiceHours:
    def __init__(self, hours: tuple[str, ...], holidays: tuple[str, ...], timezone: str) -> None:
        self.spans = [parse_hours(h) for h in hours]
        self.holidays = {date.fromisoformat(d) for d in holidays}
        self.zone = ZoneInfo(timezone)

    @classmethod
    def of(cls, g: GroupConfig) -> "ServiceHours":
        return cls(g.hours, g.holidays, g.timezone)

    def is_open(self, at: datetime) -> bool:
        """``at`` must be timezone-aware. No spans means always open (but holidays close)."""
        local = at.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        if not self.spans:
            return True
        minute = local.hour * 60 + local.minute
        return any(local.weekday() in days and start <= minute < end
                   for days, start, end in self.spans)
