"""A job that a node failure ends is resubmitted, within batch.node_failure_retries
(issue 18): Maestro is told HWFAILURE and submits the step again; past the bound
the step is FAILED with a line saying why, and its children with it.

These drive Maestro's own ExecutionGraph in process (test_ahead.py's helpers), on
the double at every recorded flux-core version and on a real broker where one
exists, which simulates the failure as ``flux job raise --type=node-failure`` does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import test_ahead as graphs
from helpers import TERMINAL, make_step, wait_for, write_and_submit
from maestrowf.abstracts.enums import State, StudyStatus

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro import resume
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES
from maestro_flux.model import jobids
from maestro_flux.model.resume import ResumePlan
from maestro_flux.model.states import JobStatus, status_from_listing

pytestmark = pytest.mark.every_version
NOTE = "simulated by the test"
#: Each attempt of the step writes a line, then runs until the node fails under it.
FAILS_EVERY_TIME = "echo attempt >> attempts; sleep 60"
#: The first attempt runs until the node fails; the second finishes.
FAILS_ONCE = "echo attempt >> attempts; test $(wc -l < attempts) -ge 2 || sleep 60"


@pytest.fixture(autouse=True)
def fresh_studies(flux_mode):
    STUDIES.clear()
    graphs.TEST_START[0] = time.time()  # graphs.jobs_by_name lists this test's jobs
    yield
    STUDIES.clear()


def raise_node_failure(uri: str, jobid: str) -> None:
    """What ``flux job raise --type=node-failure`` sends (the bindings have no call)."""
    handle = bindings.connect(uri)
    handle.rpc("job-manager.raise", {"id": jobids.parse_jobid(jobid), "severity": 0,
                                     "type": "node-failure", "note": NOTE}).get()


def attempts(graph, name: str) -> int:
    path = Path(graph.values[name].workspace.value) / "attempts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def run_with_node_failures(graph, uri: str, name: str, failures: int,
                           timeout: float = 120) -> StudyStatus:
    """Conductor cycles until the study ends; the first ``failures`` attempts of step
    ``name`` each get a node failure once their command runs."""
    raised, end = 0, time.time() + timeout
    while time.time() < end:
        status = graph.execute_ready_steps()
        if status != StudyStatus.RUNNING:
            return status
        if raised < failures and attempts(graph, name) > raised:
            raise_node_failure(uri, graph.values[name].jobid[raised])
            raised += 1
        time.sleep(0.2)
    raise AssertionError("the study did not end in time")


def statuses(uri: str, ids: list[str]) -> list[JobStatus]:
    """The jobs' statuses as job-list gives them, in the order of ``ids``."""
    numbers = [jobids.parse_jobid(jobid) for jobid in ids]
    entries = {e["id"]: e for e in listing.list_jobs(bindings.connect(uri))}
    return [status_from_listing(entries[number]) for number in numbers]


@pytest.mark.parametrize("ahead", [True, False], ids=["flux_dependencies", "maestro_only"])
def test_a_node_failure_is_retried_once_and_the_retry_finishes(flux_mode, tmp_path, caplog,
                                                               ahead):
    graph = graphs.chain(tmp_path, {"a": FAILS_ONCE, "b": "touch ran-b"},
                         flux_dependencies=ahead)
    status = run_with_node_failures(graph, flux_mode.uri, "a", failures=1)
    assert status == StudyStatus.FINISHED
    assert graphs.final_states(graph) == {"a": "FINISHED", "b": "FINISHED"}
    first, retry = graph.values["a"].jobid
    assert attempts(graph, "a") == 2
    assert [(s.result, s.exception_type) for s in statuses(flux_mode.uri, [first, retry])] == [
        ("FAILED", "node-failure"), ("COMPLETED", None)]
    assert (f"step 'a', Flux job {first}: a node of the job failed: {NOTE}; resubmitted "
            "(retry 1 of 1)") in caplog.text
    assert (tmp_path / "b" / "ran-b").exists() and len(graph.values["b"].jobid) == 1


def test_under_a_full_throttle_the_step_is_still_resubmitted(flux_mode, tmp_path):
    """Maestro keeps a HWFAILURE step in in_progress, which its throttle counts: with
    -t 1 it would never resubmit it (pipeline.py frees it; maestro/resubmit.py)."""
    graph = graphs.chain(tmp_path, {"a": FAILS_ONCE, "b": "true"}, throttle=1)
    status = run_with_node_failures(graph, flux_mode.uri, "a", failures=1)
    assert status == StudyStatus.FINISHED
    assert len(graph.values["a"].jobid) == 2 and attempts(graph, "a") == 2
    assert graphs.final_states(graph) == {"a": "FINISHED", "b": "FINISHED"}


def test_the_child_sent_ahead_on_the_failed_job_is_dropped_and_sent_again(flux_mode, tmp_path):
    """b waits in Flux on a's job (afterok); the node failure ends that job, so Flux
    ends b's with a dependency exception, and b is sent again after a's retry."""
    graph = graphs.chain(tmp_path, {"a": FAILS_ONCE, "b": "true"})
    assert run_with_node_failures(graph, flux_mode.uri, "a", failures=1) == StudyStatus.FINISHED
    b_jobs = [status_from_listing(e) for e in graphs.jobs_by_name(graph)["b"]]
    assert sorted((s.result, s.exception_type) for s in b_jobs) == [
        ("COMPLETED", None), ("FAILED", "dependency")]
    assert graph.values["b"].status == State.FINISHED
    assert len(graph.values["b"].jobid) == 1  # Maestro adopted the second one only


def test_a_second_node_failure_fails_the_step_and_its_children(flux_mode, tmp_path, caplog):
    graph = graphs.chain(tmp_path, {"a": FAILS_EVERY_TIME, "b": "touch ran-b",
                                    "c": "touch ran-c"})
    status = run_with_node_failures(graph, flux_mode.uri, "a", failures=2)
    assert status == StudyStatus.FAILURE
    assert graphs.final_states(graph) == {"a": "FAILED", "b": "FAILED", "c": "FAILED"}
    first, second = graph.values["a"].jobid
    assert attempts(graph, "a") == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert (f"maestro-flux: step 'a', Flux job {second}: a node of the job failed: {NOTE}; "
            "retried 1 time(s), the bound (batch.node_failure_retries: 1)") in warnings
    assert not list(tmp_path.glob("*/ran-*"))


def test_no_retries_fails_the_step_at_the_first_node_failure(flux_mode, tmp_path, caplog):
    graph = graphs.chain(tmp_path, {"a": FAILS_EVERY_TIME}, node_failure_retries=0)
    assert run_with_node_failures(graph, flux_mode.uri, "a", failures=1) == StudyStatus.FAILURE
    assert graphs.final_states(graph) == {"a": "FAILED"}
    (only,) = graph.values["a"].jobid
    assert (f"step 'a', Flux job {only}: a node of the job failed: {NOTE}; retried 0 time(s)"
            in caplog.text)


def test_a_node_failure_ends_a_running_job_as_real_flux_ends_it(flux_mode, tmp_path):
    """What job-list says of a job ended by a node-failure exception: the double must
    say what real flux-core says (in real mode, the broker on PATH: 0.61.2, 0.76.0 and
    0.88.0 said exactly this). Its step is known, so Maestro would resubmit it."""
    adapter = FluxAdapter(type="flux")
    jobid, _ = write_and_submit(adapter, make_step(cmd="echo started > started; sleep 60"),
                                tmp_path)
    wait_for(adapter, jobid, {State.RUNNING})
    wait_for_file(tmp_path / "started")
    raise_node_failure(flux_mode.uri, jobid)
    assert wait_for(adapter, jobid, {*TERMINAL, State.HWFAILURE}) == State.HWFAILURE
    (status,) = statuses(flux_mode.uri, [jobid])
    assert status == JobStatus(state="INACTIVE", result="FAILED", returncode=143,
                               exception_type="node-failure", exception_note=NOTE)


def wait_for_file(path: Path, timeout: float = 30) -> None:
    end = time.time() + timeout
    while not path.exists():
        if time.time() > end:
            raise AssertionError(f"{path} was not written")
        time.sleep(0.05)


def test_the_bound_holds_across_a_resume(flux_mode, tmp_path, caplog):
    """A conductor that retried a step after a node failure dies; the resumed one (a
    new StudyState) counts that retry again from the broker, so a second node failure
    fails the step instead of being retried once more."""
    graph = graphs.chain(tmp_path, {"a": FAILS_EVERY_TIME, "b": "true"})
    end = time.time() + 120
    while len(graph.values["a"].jobid) < 2 and time.time() < end:  # failed once, resubmitted
        graph.execute_ready_steps()
        if attempts(graph, "a") == 1 and len(graph.values["a"].jobid) == 1:
            raise_node_failure(flux_mode.uri, graph.values["a"].jobid[0])
        time.sleep(0.2)
    STUDIES.clear()  # the conductor died: what it kept in memory is gone
    resume.apply(graph, ResumePlan(), FluxAdapter(**graph._adapter).broker())
    assert STUDIES.for_block(graph._adapter).node_failures.retries == {"a": 1}
    while attempts(graph, "a") < 2 and time.time() < end:
        graph.execute_ready_steps()
        time.sleep(0.2)
    raise_node_failure(flux_mode.uri, graph.values["a"].jobid[1])
    assert graphs.run(graph)[0] == StudyStatus.FAILURE
    assert graphs.final_states(graph) == {"a": "FAILED", "b": "FAILED"}
    assert "retried 1 time(s), the bound (batch.node_failure_retries: 1)" in caplog.text
