"""Maestro step priority -> Flux urgency.

Flux urgency runs 0 (held) to 31 (expedite), 16 being the default. An instance
owner may use the whole range; a guest (an ordinary user of a multi-user
system instance) is refused anything above 16 with EINVAL, so guests are
clamped to 16.
"""

from __future__ import annotations

from typing import Any

from maestro_flux.model.errors import StepError

URGENCY_HOLD = 0
URGENCY_DEFAULT = 16
URGENCY_EXPEDITE = 31
GUEST_MAX = 16

#: Every spelling Maestro's schema and its StepPriority enum accept.
PRIORITY_URGENCY = {
    "held": URGENCY_HOLD,
    "minimal": 1,
    "low": 8,
    "medium": URGENCY_DEFAULT,
    "high": 24,
    "expedite": URGENCY_EXPEDITE,
    "expedited": URGENCY_EXPEDITE,
}


def _from_number(value: float) -> int:
    # Maestro's schema allows 0.0..1.0; whole numbers up to 31 are taken as urgencies.
    if 0.0 <= value <= 1.0:
        return round(value * URGENCY_EXPEDITE)
    if float(value).is_integer() and 0 <= value <= URGENCY_EXPEDITE:
        return int(value)
    raise StepError(f"'priority' {value!r} is outside 0.0-1.0 (or a Flux urgency 0-31)")


def urgency_of(priority: Any) -> int:
    """Flux urgency for a Maestro priority name or number (``clamp`` fits it to a
    guest when the broker is known).

    Args:
        priority: None, a name (held, minimal, low, medium, high, expedited,
            any case), a fraction 0.0-1.0, or a whole Flux urgency 0-31.
    """
    if priority in (None, ""):
        urgency = URGENCY_DEFAULT
    elif isinstance(priority, bool):
        raise StepError(f"'priority' must be a name or a number, not {priority!r}")
    elif isinstance(priority, (int, float)):
        urgency = _from_number(priority)
    else:
        name = str(priority).strip().lower()
        if name not in PRIORITY_URGENCY:
            try:
                urgency = _from_number(float(name))
            except ValueError:
                names = ", ".join(sorted(PRIORITY_URGENCY))
                raise StepError(f"'priority' {priority!r} is not one of {names}") from None
        else:
            urgency = PRIORITY_URGENCY[name]
    return clamp(urgency)


def clamp(urgency: int | None, guest: bool = False) -> int:
    """A Flux urgency (0-31, None meaning the default) as this submitter may ask for it."""
    urgency = URGENCY_DEFAULT if urgency is None else urgency
    return min(urgency, GUEST_MAX) if guest else urgency
