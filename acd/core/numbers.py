"""The one pattern of a number we may dial or read back: digits, ``*`` and ``#``, an optional
leading ``+``, at most 32 characters. Used by the core (transfers, outbound), the runtime
(callback numbers, caller ids) and the IVR (a flow's transfer node)."""
from __future__ import annotations

import re

NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")


def is_number(text: str | None) -> bool:
    """Whether ``text`` is a number we may dial."""
    return bool(NUMBER.match(text or ""))


__all__ = ["NUMBER", "is_number"]
