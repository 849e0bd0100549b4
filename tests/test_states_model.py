"""The state decision of a polled job (model/states.py ``decide``), as a table:
its listing (or none), what else is known of it, and the node-failure decision, in;
Maestro's state and the log line, out."""

from __future__ import annotations

import pytest

from maestro_flux.model.retries import Decision
from maestro_flux.model.states import JobStatus, PollFacts, decide

pytestmark = pytest.mark.unit

RUNNING = JobStatus("RUN")
DONE = JobStatus("INACTIVE", "COMPLETED", 0)
FAILED = JobStatus("INACTIVE", "FAILED", 3)
TIMEOUT = JobStatus("INACTIVE", "TIMEOUT", 142, "timeout", "resource allocation expired")
CANCELED = JobStatus("INACTIVE", "CANCELED", -128, "cancel", "canceled by maestro cancel")
ALLOC = JobStatus("INACTIVE", "FAILED", 1, "alloc", "unsatisfiable request")
NODE = JobStatus("INACTIVE", "FAILED", 1, "node-failure", "rank 1 died")


def facts(**known) -> PollFacts:
    return PollFacts(jobid="fJOB", broker="local:///b", **known)


CASES = {
    # listing, facts -> state, (notice key, words in the notice) or None
    "running": (RUNNING, facts(), "RUNNING", None),
    "waiting on dependencies": (JobStatus("DEPEND"), facts(), "PENDING", None),
    "waiting for its priority": (JobStatus("PRIORITY"), facts(), "PENDING", None),
    "queued": (JobStatus("SCHED"), facts(), "QUEUED", None),
    "cleaning up": (JobStatus("CLEANUP"), facts(), "FINISHING", None),
    "completed": (DONE, facts(), "FINISHED", None),
    "failed: said why": (FAILED, facts(), "FAILED", ("end:fJOB", "ended: FAILED, exit code 3")),
    "timed out: said why": (TIMEOUT, facts(), "TIMEDOUT",
                            ("end:fJOB", "the job ran past its time limit")),
    "canceled": (CANCELED, facts(), "CANCELLED", ("end:fJOB", "the job was canceled")),
    "unsatisfiable: says what the step asked for": (
        ALLOC, facts(asks="64 nodes"), "FAILED", ("end:fJOB", "(the step asks for 64 nodes)")),
    "node failure within the bound": (
        NODE, facts(node_failure=Decision("HWFAILURE", "a node failed; resubmitted", "a")),
        "HWFAILURE", ("node:fJOB", "step 'a', Flux job fJOB: a node failed; resubmitted")),
    "node failure past the bound": (
        NODE, facts(node_failure=Decision("FAILED", "retried 1 time(s), the bound", "a")),
        "FAILED", ("node:fJOB", "retried 1 time(s), the bound")),
    "not listed, just submitted": (None, facts(awaiting=True), "PENDING", None),
    "not listed, left on a broker the study moved from": (
        None, facts(moved_from="local:///old", awaiting=True), "HWFAILURE",
        ("moved:fJOB", "submitted to local:///old, which the study has left")),
    "not listed past the grace": (
        None, facts(grace_passed=15.0), "UNKNOWN",
        ("unknown:fJOB", "not listed it within the grace period of 15s")),
    "not listed, never submitted here": (
        None, facts(), "UNKNOWN", ("unknown:fJOB", "purged, or submitted to another broker")),
}


@pytest.mark.parametrize("status, known, state, notice", CASES.values(), ids=CASES.keys())
def test_decide(status, known, state, notice):
    polled = decide(status, known)
    assert polled.state == state
    if notice is None:
        assert polled.notice is None
    else:
        key, words = notice
        assert polled.notice.key == key and words in polled.notice.text
        assert polled.notice.level == "WARNING" and "\n" not in polled.notice.text
