"""model/ahead.py: which steps go ahead, on which jobs they wait, and when a job sent
ahead is no longer of use. Pure tables, no broker."""

from __future__ import annotations

import pytest

from maestro_flux.model.ahead import (
    MAX_WAITS,
    AheadJob,
    StepView,
    Verdict,
    next_wave,
    throttle_room,
    verdict,
)

pytestmark = pytest.mark.unit


def views(*rows) -> dict[str, StepView]:
    """rows: (name, parents, state, job, in_flux)."""
    return {row[0]: StepView(*row) for row in rows}


CHAIN = views(("a", (), "RUNNING", "fA", True), ("b", ("a",), "INITIALIZED", None, False),
              ("c", ("b",), "INITIALIZED", None, False))


@pytest.mark.parametrize("steps, ahead, excluded, budget, expected", [
    # b waits on a's running job; c cannot go until b has a job
    (CHAIN, {}, (), None, [("b", (("a", "fA"),))]),
    # once b is ahead, c waits on b's job sent ahead
    (CHAIN, {"b": AheadJob("fB", (("a", "fA"),))}, (), None, [("c", (("b", "fB"),))]),
    # a finished parent needs no wait
    (views(("a", (), "FINISHED", "fA", False), ("b", ("a",), "INITIALIZED", None, False)),
     {}, (), None, [("b", (("a", None),))]),
    # a failed, timed-out-for-good or never-submitted parent stops it
    (views(("a", (), "FAILED", "fA", False), ("b", ("a",), "INITIALIZED", None, False)),
     {}, (), None, []),
    (views(("a", (), "INITIALIZED", None, False), ("b", ("a",), "INITIALIZED", None, False)),
     {}, (), None, []),
    # a funnel waits on every parent in Flux, none on the finished one
    (views(("p1", (), "RUNNING", "f1", True), ("p2", (), "FINISHED", "f2", False),
           ("p3", (), "PENDING", "f3", True), ("f", ("p1", "p2", "p3"), "INITIALIZED", None,
                                                  False)),
     {}, (), None, [("f", (("p1", "f1"), ("p2", None), ("p3", "f3")))]),
    # Maestro's own ready queue and roots are Maestro's to submit
    (CHAIN, {}, ("b",), None, []),
    (views(("r", (), "INITIALIZED", None, False)), {}, (), None, []),
    # a restarted parent shows TIMEDOUT while Maestro polls its new job: still in Flux
    (views(("a", (), "TIMEDOUT", "fA2", True), ("b", ("a",), "INITIALIZED", None, False)),
     {}, (), None, [("b", (("a", "fA2"),))]),
    # the budget cuts the wave in graph order
    (views(("a", (), "RUNNING", "fA", True), ("b", ("a",), "INITIALIZED", None, False),
           ("c", ("a",), "INITIALIZED", None, False)), {}, (), 1, [("b", (("a", "fA"),))]),
    (CHAIN, {}, (), 0, []),
])
def test_next_wave(steps, ahead, excluded, budget, expected):
    wave = next_wave(steps, ahead, excluded, budget)
    assert [(send.name, send.waits_on) for send in wave] == expected


def funnel(in_flux: int, finished: int) -> dict[str, StepView]:
    parents = [(f"p{n}", (), "RUNNING", f"f{n}", True) for n in range(in_flux)]
    parents += [(f"d{n}", (), "FINISHED", f"g{n}", False) for n in range(finished)]
    return views(*parents, ("f", tuple(row[0] for row in parents), "INITIALIZED", None, False))


@pytest.mark.parametrize("in_flux, finished, sent", [
    (MAX_WAITS, 0, True),
    (MAX_WAITS + 1, 0, False),
    # finished parents are not waited on: only the jobs still in Flux count
    (MAX_WAITS, 500, True),
    (MAX_WAITS + 1, 500, False),
])
def test_a_funnel_goes_ahead_only_once_few_of_its_parents_jobs_are_left(in_flux, finished,
                                                                        sent):
    wave = next_wave(funnel(in_flux, finished), {})
    assert [send.name for send in wave] == (["f"] if sent else [])
    if sent:
        assert sum(job is not None for _, job in wave[0].waits_on) == in_flux


def test_a_wide_funnel_is_held_back_while_the_next_level_of_a_chain_still_goes():
    steps = {**funnel(3, 0), **views(("c", ("p0",), "INITIALIZED", None, False))}
    assert [send.name for send in next_wave(steps, {}, max_waits=2)] == ["c"]


@pytest.mark.parametrize("steps, ahead, name, by_dependency, expected", [
    (CHAIN, {"b": AheadJob("fB", (("a", "fA"),))}, "b", False, Verdict.KEEP),
    # Flux ended it because a parent can never satisfy it
    (CHAIN, {"b": AheadJob("fB", (("a", "fA"),))}, "b", True, Verdict.FORGET),
    # the parent was restarted: it waits on the old attempt
    (views(("a", (), "RUNNING", "fA2", True), ("b", ("a",), "INITIALIZED", None, False)),
     {"b": AheadJob("fB", (("a", "fA"),))}, "b", False, Verdict.CANCEL),
    # Maestro failed or canceled the step itself
    (views(("a", (), "FAILED", "fA", False), ("b", ("a",), "FAILED", None, False)),
     {"b": AheadJob("fB", (("a", "fA"),))}, "b", False, Verdict.CANCEL),
    # it waits on a parent's job sent ahead that is still the parent's
    (CHAIN, {"b": AheadJob("fB", (("a", "fA"),)), "c": AheadJob("fC", (("b", "fB"),))},
     "c", False, Verdict.KEEP),
    # ... or that is gone (dropped): waits on nothing that will run
    (CHAIN, {"c": AheadJob("fC", (("b", "fB"),))}, "c", False, Verdict.CANCEL),
    # a parent that had finished when it was sent is never a reason
    (views(("a", (), "FINISHED", "fA", False), ("b", ("a",), "INITIALIZED", None, False)),
     {"b": AheadJob("fB", (("a", None),))}, "b", False, Verdict.KEEP),
])
def test_verdict(steps, ahead, name, by_dependency, expected):
    assert verdict(steps[name], ahead[name], steps, ahead, by_dependency) is expected


@pytest.mark.parametrize("throttle, in_flux, ahead, expected", [
    (0, 10, 10, None), (3, 1, 1, 1), (3, 2, 1, 0), (3, 3, 2, 0), (5, 0, 0, 5)])
def test_throttle_room(throttle, in_flux, ahead, expected):
    assert throttle_room(throttle, in_flux, ahead) == expected
