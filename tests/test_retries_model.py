"""The node-failure decision (model/retries.py), as tables: a job's end and the
step's retries so far in, what Maestro is told out."""

from __future__ import annotations

import json

import pytest

from maestro_flux.model.batch_options import parse_batch_block
from maestro_flux.model.errors import BatchBlockError
from maestro_flux.model.retries import (
    DEFAULT_RETRIES,
    NodeFailures,
    after_node_failure,
    is_node_failure,
)
from maestro_flux.model.states import JobStatus


def ended(kind: str | None, result: str = "FAILED", note: str | None = "rank 1 died",
          state: str = "INACTIVE") -> JobStatus:
    return JobStatus(state=state, result=result if state == "INACTIVE" else None,
                     returncode=143, exception_type=kind, exception_note=note)


@pytest.mark.parametrize("status, expected", [
    (ended("node-failure"), True),
    (ended("lost"), True),
    (ended("node-failure", result="COMPLETED"), False),  # a non-fatal one: it completed
    (ended("node-failure", state="RUN"), False),  # not ended yet
    (ended("exec"), False),
    (ended("cancel", result="CANCELED"), False),
    (ended("timeout", result="TIMEOUT"), False),
    (ended("dependency"), False),
    (ended(None, note=None), False),
])
def test_only_jobs_that_their_nodes_ended_are_node_failures(status, expected):
    assert is_node_failure(status) is expected


@pytest.mark.parametrize("kind, retries, bound, state, reason", [
    ("node-failure", 0, 1, "HWFAILURE",
     "a node of the job failed: rank 1 died; resubmitted (retry 1 of 1)"),
    ("lost", 0, 1, "HWFAILURE",
     "the job's resources were lost: rank 1 died; resubmitted (retry 1 of 1)"),
    ("node-failure", 2, 3, "HWFAILURE",
     "a node of the job failed: rank 1 died; resubmitted (retry 3 of 3)"),
    ("node-failure", 1, 1, "FAILED", "a node of the job failed: rank 1 died; retried 1 "
     "time(s), the bound (batch.node_failure_retries: 1)"),
    ("lost", 0, 0, "FAILED", "the job's resources were lost: rank 1 died; retried 0 "
     "time(s), the bound (batch.node_failure_retries: 0)"),
])
def test_the_decision_table(kind, retries, bound, state, reason):
    decision = after_node_failure(ended(kind), retries, bound)
    assert (decision.state, decision.reason) == (state, reason)


def test_a_step_is_retried_up_to_the_bound_and_each_job_counts_once():
    failures = NodeFailures()
    failures.known("fAAA", "a")
    first = failures.decide("fAAA", ended("node-failure"), 1)
    # Polled again (the pipeline polls between Maestro's rounds): the same answer.
    assert failures.decide("fAAA", ended("node-failure"), 1) == first
    assert (first.state, first.step) == ("HWFAILURE", "a")
    failures.known("fBBB", "a")  # the resubmitted job
    second = failures.decide("fBBB", ended("node-failure"), 1)
    assert (second.state, second.step) == ("FAILED", "a")
    assert "retried 1 time(s)" in second.reason
    assert failures.as_data() == {"retries": {"a": 1}, "steps": {}}
    assert json.loads(json.dumps(failures.as_data())) == failures.as_data()


def test_steps_count_apart_and_ended_jobs_leave_the_map():
    failures = NodeFailures()
    for jobid, step in (("f1", "a"), ("f2", "b"), ("f3", "c")):
        failures.known(jobid, step)
    assert failures.decide("f1", ended("lost"), 1).state == "HWFAILURE"
    assert failures.decide("f2", ended("node-failure"), 1).state == "HWFAILURE"
    failures.ended("f3")  # finished: nothing to keep
    assert failures.as_data() == {"retries": {"a": 1, "b": 1}, "steps": {}}


def test_a_job_of_no_known_step_is_not_retried():
    decision = NodeFailures().decide("f9", ended("node-failure"), 5)
    assert decision.state == "FAILED" and decision.step is None
    assert decision.reason == ("a node of the job failed: rank 1 died; not retried: its step "
                               "is not known to this conductor")


@pytest.mark.parametrize("block, retries", [
    ({}, DEFAULT_RETRIES),
    ({"node_failure_retries": 0}, 0),
    ({"node_failure_retries": 3}, 3),
])
def test_the_batch_key(block, retries):
    assert parse_batch_block({"type": "flux", **block}).node_failure_retries == retries
    assert DEFAULT_RETRIES == 1  # as Slurm requeues a batch job once on node failure


@pytest.mark.parametrize("value, message", [
    (-1, "batch.node_failure_retries: -1 is less than the minimum of 0"),
    ("2", "batch.node_failure_retries: '2' is not of type 'integer'"),
    (True, "batch.node_failure_retries: True is not of type 'integer'"),
])
def test_the_batch_key_refuses_what_is_not_a_count(value, message):
    with pytest.raises(BatchBlockError) as err:
        parse_batch_block({"type": "flux", "node_failure_retries": value})
    assert str(err.value) == message
