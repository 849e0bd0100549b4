"""Which steps ``maestro-flux retry`` runs again and ``maestro-flux cancel`` stops.

A step is named as a user knows it: its full name (``b_P.2``), the name of the study
step it was expanded from (``b``: every combination), or a glob as ``depends:`` takes
(``b_*``). A name that matches nothing is refused with the nearest name; the steps
below a chosen one always come with it (their inputs change, or will never come).
This module decides from a snapshot of the graph (each step's state and parents);
it reads and changes nothing.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from maestro_flux.model.errors import MaestroFluxError

#: Maestro states of a step that ended without succeeding: what a retry runs again.
RETRIABLE = frozenset(("FAILED", "TIMEDOUT", "HWFAILURE", "CANCELLED", "UNKNOWN"))
#: Maestro states of a step that has ended.
ENDED = RETRIABLE | {"FINISHED"}
#: Maestro states of a step whose job is (or may be) in Flux.
ACTIVE = frozenset(("PENDING", "QUEUED", "RUNNING", "FINISHING", "NOTFOUND"))


class SelectionError(MaestroFluxError):
    """A step named wrongly, or one that cannot be chosen (one line)."""


@dataclass(frozen=True)
class StepFacts:
    """One step of the graph, as the choice needs it."""

    state: str
    parents: tuple[str, ...] = ()


def matching(name: str, steps: Sequence[str]) -> list[str]:
    """The steps ``name`` stands for: itself, the combinations of a study step, or a glob."""
    if name in steps:
        return [name]
    found = [step for step in steps if step.startswith(f"{name}_")]
    return found or [step for step in steps if fnmatch.fnmatchcase(step, name)]


def _nearest(name: str, steps: Sequence[str]) -> str:
    bases = sorted({step.split("_")[0] for step in steps} | set(steps))
    close = difflib.get_close_matches(name, bases, n=1, cutoff=0.4)
    return f" (did you mean '{close[0]}'?)" if close else ""


def below(steps: Mapping[str, StepFacts], chosen: set[str]) -> set[str]:
    """Every step that depends, directly or not, on one of ``chosen``."""
    children: dict[str, list[str]] = {name: [] for name in steps}
    for name, facts in steps.items():
        for parent in facts.parents:
            children.setdefault(parent, []).append(name)
    found, todo = set(), list(chosen)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def named(steps: Mapping[str, StepFacts], names: Sequence[str]) -> set[str]:
    """The steps the names stand for; SelectionError naming a name that matches none."""
    order, chosen = list(steps), set()
    for name in names:
        found = matching(name, order)
        if not found:
            raise SelectionError(f"no step '{name}' in the study{_nearest(name, order)}")
        chosen.update(found)
    return chosen


def to_retry(steps: Mapping[str, StepFacts], names: Sequence[str] = (),
             force: bool = False) -> list[str]:
    """The steps a retry runs again, in the graph's order.

    With no names: every step that ended without succeeding, and the steps below it
    that never ran. With names: those steps and every step below them; a named step
    that FINISHED needs ``force``, and one whose job is still in Flux cannot be chosen.
    """
    if not names:
        failed = {name for name, facts in steps.items() if facts.state in RETRIABLE}
        chosen = failed | {name for name in below(steps, failed)
                           if steps[name].state != "FINISHED"}
    else:
        picked = named(steps, names)
        for name in sorted(picked, key=list(steps).index):
            state = steps[name].state
            if state == "FINISHED" and not force:
                raise SelectionError(f"step '{name}' FINISHED; --force runs it again, and "
                                     "every step below it")
            if state in ACTIVE:
                raise SelectionError(f"step '{name}' is {state}: its job is in Flux; "
                                     "'maestro-flux cancel' stops it first")
        chosen = picked | below(steps, picked)
    return [name for name in steps if name in chosen]


def to_cancel(steps: Mapping[str, StepFacts], names: Sequence[str]) -> list[str]:
    """The steps a cancel stops, in the graph's order: the named ones and every step
    below them, those that have ended left as they are."""
    picked = named(steps, names)
    chosen = picked | below(steps, picked)
    return [name for name in steps if name in chosen and steps[name].state not in ENDED]
