"""Durations, as maestro-flux reads a step's ``walltime`` and flux batch's ``time-limit``.

One reader for both, so that a bad value is refused under the name the user wrote,
wherever it was written (a step, the batch block, a profile, a ``#flux:`` line).
"""

from __future__ import annotations

import re
from typing import Any

_FSD = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_FSD_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
UNLIMITED = (None, "", 0, "0", "inf", "infinity", "unlimited")


def seconds(value: Any, key: str) -> float:
    """Seconds in a duration; ``key`` names it in the error.

    Accepts ``HH:MM:SS``, ``MM:SS``, ``D-HH:MM:SS``, Flux Standard Duration
    (``90s``, ``10m``, ``2h``, ``1d``), and bare numbers, which mean minutes as
    they do for ``flux batch -t`` and Slurm. 0, empty and ``inf`` mean unlimited.

    Raises:
        ValueError: ``'KEY' VALUE is not ...``, one line.
    """
    if value in UNLIMITED:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"'{key}' must be a duration, not {value!r}")
    if isinstance(value, (int, float)):
        return _checked(float(value) * 60, value, key)
    text = value.strip()
    if ":" in text:
        return _checked(_colon_seconds(text, key), value, key)
    match = _FSD.match(text)
    if not match:
        raise ValueError(f"'{key}' {value!r} is not HH:MM:SS, a number of minutes, "
                         "or a duration such as 90s, 10m, 2h, 1d")
    unit = match.group(2) or "m"
    return _checked(float(match.group(1)) * _FSD_UNITS[unit], value, key)


def _colon_seconds(text: str, key: str) -> float:
    days = 0.0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = _number(day_text, text, key)
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"'{key}' {text!r} has too many ':' fields")
    total = 0.0
    for power, part in enumerate(reversed(parts)):
        total += _number(part, text, key) * 60**power
    return days * 86400 + total


def _number(part: str, whole: str, key: str) -> float:
    try:
        number = float(part)
    except ValueError:
        raise ValueError(f"'{key}' {whole!r} is not HH:MM:SS") from None
    if number < 0:
        raise ValueError(f"'{key}' {whole!r} is negative")
    return number


def _checked(total: float, original: Any, key: str) -> float:
    if total < 0 or total != total or total == float("inf"):
        raise ValueError(f"'{key}' {original!r} is not a finite, positive duration")
    return total
