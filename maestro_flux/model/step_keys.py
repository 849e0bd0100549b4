"""A step's own Maestro keys (nodes, procs, cores per task, gpus, walltime, priority,
exclusive, waitable), read and spelled as the flux batch options they become: the top
layer of the step's options (model/precedence.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro_flux.model import durations
from maestro_flux.model.errors import StepError
from maestro_flux.model.urgency import urgency_of


def _count(run: Mapping[str, Any], key: str, default: int | None, minimum: int) -> int | None:
    value = run.get(key, default)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise StepError(f"'{key}' must be a whole number, not {value!r}") from None
    if number < minimum:
        raise StepError(f"'{key}' must be at least {minimum}, not {number}")
    return number


def walltime_seconds(value: Any, key: str = "walltime") -> float:
    """Seconds in a Maestro walltime (or another duration, named by ``key``); the
    forms accepted are durations.seconds'. Raises StepError naming the key."""
    try:
        return durations.seconds(value, key)
    except ValueError as err:
        raise StepError(str(err)) from None


def exclusive_parts(value: Any) -> tuple[bool, bool]:
    """(the allocation is exclusive, $(LAUNCHER) asks for whole nodes) of the step's
    ``exclusive`` key: a bool, a string, or {allocation, launcher}."""
    if isinstance(value, Mapping):
        return bool(value.get("allocation")), bool(value.get("launcher"))
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1"), False
    return bool(value), False


#: Maestro's step keys, spelled as the flux batch options they become.
STEP_KEYS = {"nodes": "nodes", "procs": "nslots", "cores per task": "cores-per-slot",
             "gpus": "gpus-per-slot"}


def step_options(run: Mapping[str, Any]) -> dict[str, Any]:
    """The step's own Maestro keys as flux batch options: the top precedence layer.

    Keys the step leaves empty are absent, so lower layers (profile, batch
    block, template directives) decide them.
    """
    found: dict[str, Any] = {}
    for key, option in STEP_KEYS.items():
        number = _count(run, key, None, 0 if key == "gpus" else 1)
        if number is not None:
            found[option] = number
    if run.get("walltime") not in (None, ""):
        found["time-limit"] = f"{walltime_seconds(run['walltime']):g}s"
    if run.get("priority") not in (None, ""):
        found["urgency"] = urgency_of(run["priority"])
    if run.get("exclusive") not in (None, ""):
        found["exclusive"] = exclusive_parts(run["exclusive"])[0]
    if run.get("waitable") in (True, "true", "True", "yes", 1):
        found["flags"] = ["waitable"]  # the built-in adapter's step key
    return found
