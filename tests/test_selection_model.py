"""Which steps a retry runs again and a cancel stops (model/selection.py), as tables."""

from __future__ import annotations

import pytest

from maestro_flux.model.selection import SelectionError, StepFacts, matching, to_cancel, to_retry

pytestmark = pytest.mark.unit

#: a -> b_P.1, b_P.2 -> c (the funnel) -> d;  a -> x
GRAPH = {
    "a": StepFacts("FINISHED"),
    "b_P.1": StepFacts("FINISHED", ("a",)),
    "b_P.2": StepFacts("FAILED", ("a",)),
    "c": StepFacts("FAILED", ("b_P.1", "b_P.2")),
    "d": StepFacts("FAILED", ("c",)),
    "x": StepFacts("TIMEDOUT", ("a",)),
}


@pytest.mark.parametrize("name, found", [
    ("c", ["c"]),
    ("b", ["b_P.1", "b_P.2"]),  # a study step: all its combinations
    ("b_*", ["b_P.1", "b_P.2"]),  # a glob, as depends: takes
    ("b_P.2", ["b_P.2"]),
    ("*", list(GRAPH)),
    ("zz", []),
])
def test_matching(name, found):
    assert matching(name, list(GRAPH)) == found


RETRY = {
    "nothing named: what did not succeed, and below it": ((), False,
                                                          ["b_P.2", "c", "d", "x"]),
    "a failed step named: it and below": (("c",), False, ["c", "d"]),
    "a finished step named, forced: it and all below": (("b_P.1",), True, ["b_P.1", "c", "d"]),
    "a study step named": (("b",), True, ["b_P.1", "b_P.2", "c", "d"]),
    "the root, forced: everything": (("a",), True, list(GRAPH)),
}


@pytest.mark.parametrize("names, force, chosen", RETRY.values(), ids=RETRY.keys())
def test_to_retry(names, force, chosen):
    assert to_retry(GRAPH, names, force) == chosen


@pytest.mark.parametrize("names, words", [
    (("a",), "step 'a' FINISHED; --force runs it again"),
    (("bee",), "no step 'bee' in the study (did you mean 'b'?)"),
    (("b",), "step 'b_P.1' FINISHED"),  # one of the combinations finished
])
def test_to_retry_refuses_in_one_line(names, words):
    with pytest.raises(SelectionError) as refused:
        to_retry(GRAPH, names)
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_a_step_still_in_flux_cannot_be_retried():
    running = {**GRAPH, "x": StepFacts("RUNNING", ("a",))}
    with pytest.raises(SelectionError, match="step 'x' is RUNNING: its job is in Flux"):
        to_retry(running, ("x",), force=True)
    assert "x" not in to_retry(running)  # nor chosen when nothing is named


def test_every_step_finished_leaves_nothing_to_retry():
    done = {name: StepFacts("FINISHED", facts.parents) for name, facts in GRAPH.items()}
    assert to_retry(done) == []


RUNNING = {
    "a": StepFacts("FINISHED"),
    "b": StepFacts("RUNNING", ("a",)),
    "c": StepFacts("INITIALIZED", ("b",)),
    "x": StepFacts("PENDING", ("a",)),
}


@pytest.mark.parametrize("names, chosen", [
    (("b",), ["b", "c"]),
    (("a",), ["b", "c", "x"]),  # an ended step: what is below it that has not ended
    (("c",), ["c"]),
])
def test_to_cancel(names, chosen):
    assert to_cancel(RUNNING, names) == chosen


def test_to_cancel_names_the_nearest_step():
    with pytest.raises(SelectionError, match=r"no step 'bb' in the study \(did you mean 'b'\?\)"):
        to_cancel(RUNNING, ("bb",))
