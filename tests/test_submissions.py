"""The one owner of a job's life (maestro/submissions.py), the journal's writes
(maestro/journal.py), the conductor lock (maestro/conductor_lock.py) and the ready
queue (maestro/ahead.py), with a broker that accepts, refuses or loses answers on
demand."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from collections import deque
from types import SimpleNamespace

import pytest
from helpers import graph_of, make_step

from maestro_flux.maestro import journal as journals
from maestro_flux.maestro import submissions as submissions_module
from maestro_flux.maestro.ahead import ReadyQueue
from maestro_flux.maestro.conductor_lock import ConductorLock, Held, read_holder
from maestro_flux.maestro.study_state import StudyState
from maestro_flux.maestro.submissions import (
    PLACEHOLDER,
    Accepted,
    Refused,
    Submissions,
)
from maestro_flux.model import jobids
from maestro_flux.model.ahead import AheadJob, Verdict
from maestro_flux.model.notices import Notices
from maestro_flux.model.records import parse
from maestro_flux.model.retries import NodeFailures

pytestmark = pytest.mark.unit
#: The ids the fake broker gives its first two jobs (101, 102), as Maestro records them.
FIRST, SECOND = jobids.f58_encode(101), jobids.f58_encode(102)


class Jobspec:
    def __init__(self) -> None:
        self.attributes: dict = {}

    def setattr(self, path: str, value) -> None:
        self.attributes[path] = value


class Broker:
    """Accepts every job (ids 101, 102...); ``refuse`` and ``lose`` name steps whose
    job is refused, or accepted with the answer lost; ``reachable`` False: every later
    request fails as a dead connection does."""

    label = "local:///fake"

    def __init__(self, refuse=(), lose=(), never=()) -> None:
        self.refuse, self.lose, self.reachable = set(refuse), set(lose), True
        self.never = set(never)  # lost on the way: the answer too, and no job made
        self.jobs: dict[str, int] = {}  # token -> id of the jobs the broker has
        self.submitted: set[int] = set()
        self.canceled: list[int] = []
        self.cancel_fails = False

    def submit_async(self, jobspec, urgency, flags):
        identity = jobspec.attributes["user.maestro_flux"]
        return SimpleNamespace(step=identity["step"], token=identity["token"])

    def submit_get_id(self, future, asks=None):
        if future.step in self.refuse:
            raise OSError(errno.EINVAL, "a dependency can never be satisfied")
        if future.step in self.never:
            raise OSError(errno.ECONNRESET, "Connection reset by peer")
        self.jobs[future.token] = 100 + len(self.jobs) + 1
        if future.step in self.lose:
            raise OSError(errno.ECONNRESET, "Connection reset by peer")
        return self.jobs[future.token]

    def call(self, operation):
        if not self.reachable:
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        return operation(None)

    def inventory(self):
        return None

    def cancel(self, numbers, reason):
        if self.cancel_fails:
            raise OSError(errno.ECONNREFUSED, "Connection refused")
        self.canceled += list(numbers)
        return dict.fromkeys(numbers)


@pytest.fixture
def study(tmp_path, monkeypatch):
    (tmp_path / "batch.info").write_text("type: flux\n")
    (tmp_path / "a").mkdir()
    owner = Submissions(Notices(), NodeFailures())
    owner.journal_for(str(tmp_path / "a"))
    monkeypatch.setattr(submissions_module, "SEARCH_GRACE", 0.2)
    return owner


@pytest.fixture
def broker(monkeypatch):
    fake = Broker()

    def find_tokens(handle, tokens, names, since, progress=None):
        return {token: fake.jobs[token] for token in tokens if token in fake.jobs}
    monkeypatch.setattr(submissions_module.identity, "find_tokens", find_tokens)
    return fake


def events(tmp_path) -> list[tuple[str, str | None]]:
    lines = (tmp_path / journals.FOLDER / journals.JOURNAL).read_text().splitlines()
    return [(r.event, r.step) for r in (parse(line, "x") for line in lines) if r]


def send(owner, broker, step, tmp_path, kind="maestro"):
    return owner.send(broker, step, Jobspec(), 16, [], str(tmp_path / "a"), kind=kind,
                      name=step)


def test_an_accepted_id_is_stored_before_it_is_journaled(study, broker, tmp_path):
    seen_at_store = []
    pending = send(study, broker, "a", tmp_path)
    outcome = study.settle(pending, lambda o: seen_at_store.append(events(tmp_path)))
    assert outcome == Accepted(FIRST)  # 101 in ASCII f58
    assert seen_at_store == [[("intent", "a")]]  # stored while only the intent is written
    assert events(tmp_path) == [("intent", "a"), ("submitted", "a")]
    assert study.node_failures.steps == {FIRST: "a"}


def test_a_refusal_closes_the_intent_with_the_brokers_words(study, broker, tmp_path):
    broker.refuse.add("a")
    outcome = study.settle(send(study, broker, "a", tmp_path), lambda o: None)
    assert isinstance(outcome, Refused) and "can never be satisfied" in outcome.line
    assert events(tmp_path) == [("intent", "a"), ("refused", "a")]


def test_a_lost_answer_is_found_by_its_token(study, broker, tmp_path, caplog):
    broker.lose.add("a")
    outcome = study.settle(send(study, broker, "a", tmp_path), lambda o: None)
    assert outcome == Accepted(FIRST)
    assert events(tmp_path)[-1] == ("submitted", "a")
    assert "was lost" in caplog.text


def test_a_lost_answer_whose_job_flux_never_had_is_abandoned(study, broker, tmp_path):
    broker.never.add("a")  # the request never arrived
    pending = send(study, broker, "a", tmp_path)
    outcome = study.settle(pending, lambda o: None)
    assert isinstance(outcome, Refused) and "no job with its token" in outcome.line
    assert events(tmp_path)[-1] == ("abandoned", "a")


def lost_while_down(study, broker, tmp_path, graph) -> str:
    """Maestro submits 'a' in a round; its answer is lost and the broker goes down
    before the round's end; returns the placeholder Maestro holds."""
    broker.lose.add("a")
    study.open_cycle(graph)
    placeholder = study.for_maestro(send(study, broker, "a", tmp_path))
    graph.values["a"].jobid.append(placeholder)  # as Maestro records it
    graph.values["a"].mark_submitted()
    broker.reachable = False
    study.close_cycle(graph)
    return placeholder


def test_an_answer_lost_while_the_broker_is_down_is_kept_open_and_found_later(
        study, broker, tmp_path, flux_free_graph):
    graph = flux_free_graph
    placeholder = lost_while_down(study, broker, tmp_path, graph)
    assert set(study.unresolved) == {"a"}  # answer lost, and the broker cannot be asked
    assert graph.values["a"].jobid == [placeholder] and "a" in graph.in_progress
    assert events(tmp_path) == [("intent", "a")]  # open: a resume would search it
    assert study.blocked("a")
    study.resolve(graph)  # still down: nothing changes
    assert graph.values["a"].jobid == [placeholder]
    broker.reachable = True
    study.resolve(graph)
    assert graph.values["a"].jobid == [FIRST] and not study.unresolved
    assert events(tmp_path)[-1] == ("submitted", "a")


def test_a_lost_answer_found_missing_later_makes_the_step_ready_again(
        study, broker, tmp_path, flux_free_graph):
    graph = flux_free_graph
    lost_while_down(study, broker, tmp_path, graph)
    broker.reachable, broker.jobs = True, {}  # Flux has no job with its token
    study.resolve(graph)
    assert graph.values["a"].jobid == [] and "a" not in graph.in_progress
    assert graph.values["a"].status.name == "INITIALIZED" and "a" in graph.ready_steps
    assert events(tmp_path)[-1] == ("abandoned", "a")


@pytest.fixture
def flux_free_graph(tmp_path):
    return graph_of([make_step("a")], tmp_path)


def test_a_journal_that_cannot_be_written_loses_no_id(study, broker, tmp_path, monkeypatch,
                                                      caplog):
    def full(path, mode="r", *args, **kwargs):
        if "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return open(path, mode, *args, **kwargs)
    monkeypatch.setattr(journals, "open", full, raising=False)
    stored = []
    for step in ("a", "b"):
        outcome = study.settle(send(study, broker, step, tmp_path), stored.append)
        assert isinstance(outcome, Accepted)
    assert [o.jobid for o in stored] == [FIRST, SECOND]
    said = [r for r in caplog.records if "cannot write the study's journal" in r.message]
    assert len(said) == 1 and "No space left on device" in said[0].message


def test_a_dropped_job_leaves_only_once_its_cancel_is_confirmed(study, broker):
    study.ahead.update({"c": AheadJob(FIRST, ()), "d": AheadJob(SECOND, ())})
    broker.cancel_fails = True
    study.drop({"c": Verdict.CANCEL, "d": Verdict.KEEP}, broker)
    assert set(study.cancelling) == {"c"} and set(study.ahead) == {"d"}
    assert study.blocked("c")  # nothing new is sent for it meanwhile
    broker.cancel_fails = False
    study.confirm_cancels(broker)
    assert study.cancelling == {} and broker.canceled == [101]


# -- the journal's writes --------------------------------------------------------------
def test_an_append_after_a_torn_line_starts_on_a_fresh_line(tmp_path):
    path = tmp_path / journals.FOLDER / journals.JOURNAL
    path.parent.mkdir(parents=True)
    path.write_text('{"event":"intent","step":"a","token":"t1","v":2}\n{"event":"subm')
    journal = journals.Journal(tmp_path)
    journal.intent("b", "maestro", "b")
    replay = journals.read(tmp_path)
    assert [s.step for s in replay.sent.values()] == ["a", "b"]
    assert path.read_text().splitlines()[1] == '{"event":"subm'  # skipped, never merged


def test_after_a_failed_write_the_next_starts_on_a_fresh_line(tmp_path, monkeypatch):
    journal = journals.Journal(tmp_path)

    class Half:
        def __init__(self, handle):
            self.handle = handle

        def write(self, text):
            self.handle.write(text[:10])  # a part reaches the disk, then it fills
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            self.handle.flush()

        def close(self):
            self.handle.close()

    monkeypatch.setattr(journals, "open", lambda p, m="r", *a, **k: Half(open(p, m)),
                        raising=False)
    assert journal.intent("a", "maestro", "a")
    monkeypatch.undo()
    journal.intent("b", "maestro", "b")
    assert [s.step for s in journals.read(tmp_path).sent.values()] == ["b"]


# -- the conductor lock ----------------------------------------------------------------
def test_a_second_conductor_is_refused_naming_the_first(tmp_path):
    folder = tmp_path / journals.FOLDER
    first = ConductorLock(folder).acquire("maestro run")
    with pytest.raises(Held) as held:
        ConductorLock(folder).acquire()
    assert f"pid {os.getpid()} on " in str(held.value) and "(maestro run)" in str(held.value)
    first.release()
    ConductorLock(folder).acquire().release()


def test_a_handed_over_lock_is_held_by_the_child_alone(tmp_path):
    folder = tmp_path / journals.FOLDER
    lock = ConductorLock(folder).acquire()
    fd = lock.inheritable()
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from maestro_flux.maestro.conductor_lock import ConductorLock\n"
         f"ConductorLock.adopt(pathlib.Path({str(folder)!r}), {fd})\n"
         "print('adopted', flush=True); time.sleep(30)"],
        pass_fds=(fd,), stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "adopted"
    lock.release()  # the parent goes; the child keeps the lock
    with pytest.raises(Held):
        ConductorLock(folder).acquire()
    assert read_holder(folder).pid == child.pid
    child.kill()
    child.wait()
    end = time.time() + 10
    while time.time() < end:  # the kernel drops the lock with the process
        try:
            ConductorLock(folder).acquire().release()
            return
        except Held:
            time.sleep(0.1)
    raise AssertionError("the lock outlived its holder")


# -- the ready queue -------------------------------------------------------------------
def queue_of(names, ahead=(), throttle=0, in_progress=()):
    state = StudyState("q")
    state.ahead.update({name: AheadJob(f"f{name}", ()) for name in ahead})
    graph = SimpleNamespace(_submission_throttle=throttle, in_progress=set(in_progress))
    return ReadyQueue(names, state, graph), state


def test_steps_with_a_job_sent_ahead_come_out_first():
    queue, _ = queue_of(["a", "b", "c", "d"], ahead=["c"])
    assert [queue.popleft() for _ in range(4)] == ["c", "a", "b", "d"]


def test_the_length_leaves_room_for_the_jobs_already_in_flux():
    queue, _ = queue_of(["a", "b", "c", "d"], ahead=["d"], throttle=3, in_progress=["x"])
    # throttle 3: one polled, one sent ahead (d): one more new job fits, plus d's adoption
    assert len(queue) == 2
    assert [queue.popleft() for _ in range(len(queue))] == ["d", "a"]


def test_membership_removal_and_a_dropped_adoption():
    queue, state = queue_of(["a", "b"], ahead=["b"])
    queue.append("c")
    assert "b" in queue and "c" in queue and "z" not in queue
    queue.remove("a")
    assert list(queue) == ["b", "c"] and "a" not in queue
    del state.ahead["b"]  # its job was dropped before Maestro popped it
    assert [queue.popleft(), queue.popleft()] == ["b", "c"] and not queue
    assert deque(queue_of(["x", "y"])[0]) == deque(["x", "y"])  # what Maestro pickles


def test_a_placeholder_is_polled_as_pending():
    from maestro_flux.maestro.poller import Poller

    poller = Poller(StudyState("p"), lambda: None, 1, logging.getLogger("test"))
    assert poller.parse([f"{PLACEHOLDER}abc"]) == ({}, {f"{PLACEHOLDER}abc": "PENDING"})
