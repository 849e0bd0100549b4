"""The journal's schema and its fold, and resume's reconciliation: tables of cases.

model/records.py (what a line holds, and the job identity), model/journal.py (the
records folded into what every submission became) and model/resume.py (what a
resumed study keeps), with no I/O.
"""

from __future__ import annotations

import json

import pytest

from maestro_flux.model.ahead import AheadJob
from maestro_flux.model.journal import replay
from maestro_flux.model.records import VERSION, NewerSchema, Record, identity_from, parse
from maestro_flux.model.resume import StepRecord, reconcile

pytestmark = pytest.mark.unit


# -- parse ----------------------------------------------------------------------------
@pytest.mark.parametrize("line, expected", [
    ('{"event":"intent","step":"a","token":"t1","kind":"maestro","v":2}',
     Record("intent", step="a", token="t1", kind="maestro", v=2)),
    ('{"event":"submitted","step":"a","token":"t1","jobid":"f1","v":1}',  # version 1 reads
     Record("submitted", step="a", token="t1", jobid="f1", v=1)),
    ('{"event":"intent","step":"a","token":"t1"}',  # no version: the first schema
     Record("intent", step="a", token="t1", v=1)),
    ('{"event":"intent","step":"c","token":"t","waits_on":[["a",null],["b","f2"]],"v":2}',
     Record("intent", step="c", token="t", waits_on=(("a", None), ("b", "f2")), v=2)),
    ('{"event":"refused","step":"a","token":"t","reason":"EINVAL","later":"kept","v":2}',
     Record("refused", step="a", token="t", reason="EINVAL", v=2)),  # unknown keys ignored
    ('{"event":"submitted","step":"a","tok', None),  # torn: the writer died mid-line
    ("", None),
    ("not json at all", None),
    ('["event","intent"]', None),  # not an object
    ('{"event":"someday","step":"a"}', None),  # an event this version does not know
    ('{"event":"intent","step":"c","token":"t","waits_on":[1]}', None),  # malformed
])
def test_parse(line, expected):
    assert parse(line, "journal.jsonl:3") == expected


def test_a_newer_schema_is_refused_in_one_line_naming_the_line():
    with pytest.raises(NewerSchema) as refused:
        parse(json.dumps({"event": "intent", "v": VERSION + 1}), "study/journal.jsonl:7")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("study/journal.jsonl:7: ")
    assert f"schema version {VERSION + 1}" in message and "upgrade maestro-flux" in message


def test_a_record_round_trips_through_its_line():
    record = Record("intent", step="c", token="t", kind="ahead", name="c",
                    waits_on=(("a", None), ("b", "f2")), restarts=2, attempt=3, time=5.0)
    assert parse(record.line(), "x") == record
    assert "\n" not in record.line()


# -- identity --------------------------------------------------------------------------
@pytest.mark.parametrize("data, expected", [
    ({"study": "/s", "step": "a", "token": "t", "attempt": 2, "v": 2}, ("/s", "a", "t", 2, 2)),
    ({"study": "/s", "step": "a", "token": "t"}, ("/s", "a", "t", 1, 1)),  # version 1
    ({"study": "/s", "step": "a"}, None),  # no token: not ours to find
    ("a string", None),
    (None, None),
])
def test_identity_from(data, expected):
    found = identity_from(data, "job f1")
    assert (found.study, found.step, found.token, found.attempt, found.v) == expected \
        if expected else found is None


def test_a_newer_identity_is_refused_naming_the_job():
    with pytest.raises(NewerSchema, match=r"^job fABC: the job's identity written by a newer"):
        identity_from({"token": "t", "v": VERSION + 1}, "job fABC")


# -- replay ----------------------------------------------------------------------------
def R(event, **fields) -> Record:  # noqa: N802 - a table's shorthand
    return Record(event, **fields)


REPLAY_CASES = {
    "submitted closes an intent with its id": (
        [R("intent", step="a", token="t1", kind="maestro", time=1.0),
         R("submitted", step="a", token="t1", jobid="f1")],
        {"t1": ("a", "maestro", "f1", "submitted", False, False)}),
    "refused and abandoned close without an id": (
        [R("intent", step="a", token="t1"), R("refused", step="a", token="t1", reason="x"),
         R("intent", step="b", token="t2"), R("abandoned", step="b", token="t2")],
        {"t1": ("a", "maestro", None, "refused", False, False),
         "t2": ("b", "maestro", None, "abandoned", False, False)}),
    "an intent with no closing record stays open": (
        [R("intent", step="a", token="t1", kind="ahead")],
        {"t1": ("a", "ahead", None, None, False, False)}),
    "adopted and dropped mark the job sent ahead by its id": (
        [R("intent", step="c", token="t1", kind="ahead"),
         R("submitted", step="c", token="t1", jobid="f1"), R("adopted", step="c", jobid="f1"),
         R("intent", step="d", token="t2", kind="ahead"),
         R("submitted", step="d", token="t2", jobid="f2"), R("dropped", step="d", jobid="f2")],
        {"t1": ("c", "ahead", "f1", "submitted", True, False),
         "t2": ("d", "ahead", "f2", "submitted", False, True)}),
    "a closing record of an unknown token is ignored (its intent was lost)": (
        [R("submitted", step="a", token="lost", jobid="f9"), R("adopted", step="a", jobid="f9")],
        {}),
}


@pytest.mark.parametrize("records, expected", REPLAY_CASES.values(), ids=REPLAY_CASES.keys())
def test_replay(records, expected):
    sent = replay(records).sent
    assert {token: (s.step, s.kind, s.jobid, s.closed, s.adopted, s.dropped)
            for token, s in sent.items()} == expected


def test_replay_keeps_conductors_restarts_attempts_and_the_studys_start():
    state = replay([
        R("conductor", info={"pid": 1, "sleep": 30}, time=100.0),
        R("intent", step="a", token="t1", restarts=1, time=101.0),
        R("intent", step="a", token="t2", restarts=2, time=102.0),
        R("intent", step="a", token="t3", restarts=1, time=103.0),  # an older count later
        R("retry", step="b", attempt=2),
        R("conductor", info={"pid": 2}, time=200.0),
    ])
    assert state.conductors == [{"pid": 1, "sleep": 30, "time": 100.0},
                                {"pid": 2, "time": 200.0}]
    assert state.options == {"pid": 1, "sleep": 30, "time": 100.0}  # the first one's
    assert state.restarts == {"a": 2} and state.attempts == {"b": 2}
    assert state.started == 100.0
    assert [s.token for s in state.unanswered()] == ["t1", "t2", "t3"]


# -- reconcile ---------------------------------------------------------------------------
def journal(*records: Record):
    return replay(records)


def intent(step, token, kind="maestro", **fields):
    return R("intent", step=step, token=token, kind=kind, **fields)


def submitted(step, token, jobid):
    return R("submitted", step=step, token=token, jobid=jobid)


RECONCILE_CASES = {
    "a job of Maestro's the pickle lacks goes on its step": (
        {"a": StepRecord("PENDING")},
        journal(intent("a", "t1"), submitted("a", "t1", "f1")), {},
        {"a": ["f1"]}, {}, 0),
    "a job the pickle has is not added again": (
        {"a": StepRecord("RUNNING", ("f1",))},
        journal(intent("a", "t1"), submitted("a", "t1", "f1")), {},
        {}, {}, 0),
    "an open submission found by its token goes on its step": (
        {"a": StepRecord("INITIALIZED")}, journal(intent("a", "t1")), {"t1": "f7"},
        {"a": ["f7"]}, {}, 0),
    "an open submission not found never reached Flux": (
        {"a": StepRecord("INITIALIZED")}, journal(intent("a", "t1")), {},
        {}, {}, 1),
    "a job sent ahead, not adopted, goes back to be adopted": (
        {"c": StepRecord("INITIALIZED")},
        journal(intent("c", "t1", "ahead", waits_on=(("a", "f1"),)),
                submitted("c", "t1", "f3")), {},
        {}, {"c": AheadJob("f3", (("a", "f1"),))}, 0),
    "a job sent ahead and adopted is the step's": (
        {"c": StepRecord("INITIALIZED")},
        journal(intent("c", "t1", "ahead"), submitted("c", "t1", "f3"),
                R("adopted", step="c", jobid="f3")), {},
        {"c": ["f3"]}, {}, 0),
    "a dropped job sent ahead is forgotten": (
        {"c": StepRecord("INITIALIZED")},
        journal(intent("c", "t1", "ahead"), submitted("c", "t1", "f3"),
                R("dropped", step="c", jobid="f3")), {},
        {}, {}, 0),
    "a step that has ended takes no job": (
        {"a": StepRecord("FINISHED", ("f1",))},
        journal(intent("a", "t2"), submitted("a", "t2", "f2")), {},
        {}, {}, 0),
    "a refused submission keeps nothing and is not counted as never sent": (
        {"a": StepRecord("FAILED")},
        journal(intent("a", "t1"), R("refused", step="a", token="t1")), {},
        {}, {}, 0),
    "a step the graph does not know is left alone": (
        {}, journal(intent("ghost", "t1"), submitted("ghost", "t1", "f1")), {},
        {}, {}, 0),
}


@pytest.mark.parametrize("steps, replayed, found, record, ahead, never_sent",
                         RECONCILE_CASES.values(), ids=RECONCILE_CASES.keys())
def test_reconcile(steps, replayed, found, record, ahead, never_sent):
    plan = reconcile(steps, replayed, found)
    assert (plan.record, plan.ahead, plan.never_sent) == (record, ahead, never_sent)


@pytest.mark.parametrize("pickled, journaled, expected", [
    (0, 2, {"a": 2}),  # restarted in cycles after the last pickle
    (2, 2, {}),
    (3, 1, {}),  # the pickle knows more
    (0, 0, {}),
])
def test_reconcile_restores_restart_counts(pickled, journaled, expected):
    replayed = journal(intent("a", "t1", restarts=journaled or None),
                       submitted("a", "t1", "f1"))
    plan = reconcile({"a": StepRecord("RUNNING", ("f1",), pickled)}, replayed, {})
    assert plan.restarts == expected
