"""The double's ``flux.util``: the pieces maestro-flux calls."""

from __future__ import annotations

import datetime
import re

_FSD = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_fsd(text: str) -> float:
    """Flux Standard Duration to seconds (a bare number is seconds, as in flux.util)."""
    match = _FSD.match(str(text).strip())
    if not match:
        raise ValueError(f"invalid Flux standard duration '{text}'")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_datetime(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """``+FSD`` from now, or an ISO 8601 time (flux.util also takes words like '3pm')."""
    now = now or datetime.datetime.now().astimezone()
    if str(text).startswith("+"):
        return now + datetime.timedelta(seconds=parse_fsd(text[1:]))
    try:
        return datetime.datetime.fromisoformat(str(text)).astimezone()
    except ValueError:
        raise ValueError(f"Invalid datetime '{text}'") from None
