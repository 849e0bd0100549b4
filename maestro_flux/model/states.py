"""Flux job states and results, and what Maestro is told about them.

``job-list`` answers with numeric state and result codes (flux/constants.py);
these tables are the whole mapping, in the style of PSI/J's _STATE_MAP. The
values name members of Maestro's ``State`` enum; the Maestro side turns a name
into the member, so this model imports nothing of Maestro's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Flux state bit -> name, as flux.job.info spells them.
STATE_NAMES = {1: "NEW", 2: "DEPEND", 4: "PRIORITY", 8: "SCHED", 16: "RUN",
               32: "CLEANUP", 64: "INACTIVE"}
#: Flux result bit -> name.
RESULT_NAMES = {1: "COMPLETED", 2: "FAILED", 4: "CANCELED", 8: "TIMEOUT"}

#: Active Flux states -> Maestro State name. Maestro only acts on RUNNING and the
#: terminal states; the others are shown by ``maestro status``.
ACTIVE_STATE_MAP = {
    "NEW": "PENDING",
    "DEPEND": "PENDING",
    "PRIORITY": "PENDING",  # the built-in adapter misses this one
    "SCHED": "QUEUED",
    "RUN": "RUNNING",
    "CLEANUP": "FINISHING",
}

#: Results of INACTIVE jobs -> Maestro State name. TIMEOUT stays distinct because
#: Maestro restarts timed-out steps that have a restart command.
RESULT_MAP = {
    "COMPLETED": "FINISHED",
    "FAILED": "FAILED",
    "CANCELED": "CANCELLED",
    "TIMEOUT": "TIMEDOUT",
}

#: Exception types -> a reason a person can act on.
REASONS = {
    "alloc": "the scheduler cannot satisfy the request",
    "exec": "the job's command could not be started",
    "timeout": "the job ran past its time limit",
    "cancel": "the job was canceled",
    "node-failure": "a node of the job failed",
    "lost": "the job's resources were lost",
}


@dataclass(frozen=True)
class JobStatus:
    """One job as job-list reports it, reduced to what Maestro needs."""

    state: str
    result: str | None = None
    returncode: int | None = None
    exception_type: str | None = None
    exception_note: str | None = None

    @property
    def maestro_state(self) -> str:
        """The name of the Maestro State this job is in."""
        if self.state != "INACTIVE":
            return ACTIVE_STATE_MAP.get(self.state, "UNKNOWN")
        return RESULT_MAP.get(self.result or "", "UNKNOWN")

    def reason(self, asks: str | None = None) -> str:
        """One line that says why an inactive job did not complete; for a request the
        scheduler cannot satisfy, with what the step asked for (``asks``, in words)."""
        parts = []
        if self.result:
            parts.append(self.result)
        if self.returncode is not None:
            parts.append(f"exit code {self.returncode}")
        if self.exception_type:
            explained = REASONS.get(self.exception_type, self.exception_type)
            note = f": {self.exception_note}" if self.exception_note else ""
            alloc = asks and self.exception_type == "alloc"
            asked = f" (the step asks for {asks})" if alloc else ""
            parts.append(f"{explained}{note}{asked}")
        return ", ".join(parts)


def returncode_of(waitstatus: int | None, result: str | None) -> int | None:
    """Flux's JobInfo.returncode rule: the job shell's exit code, minus the signal
    if the shell itself was killed, -128 for a job canceled before it ran, and 1
    for a job that failed before it started (an alloc exception, say)."""
    if waitstatus is None:
        return {"CANCELED": -128, "FAILED": 1}.get(result or "")
    if waitstatus & 0x7F:
        return -(waitstatus & 0x7F)
    return (waitstatus >> 8) & 0xFF


def status_from_listing(entry: dict) -> JobStatus:
    """A JobStatus from one raw job-list entry (numeric state and result)."""
    state = STATE_NAMES.get(entry.get("state"), "UNKNOWN")
    if state != "INACTIVE":
        return JobStatus(state=state)
    result = RESULT_NAMES.get(entry.get("result"))
    occurred = entry.get("exception_occurred")
    return JobStatus(
        state=state,
        result=result,
        returncode=returncode_of(entry.get("waitstatus"), result),
        exception_type=(entry.get("exception_type") or None) if occurred else None,
        exception_note=(entry.get("exception_note") or None) if occurred else None,
    )


@dataclass(frozen=True)
class Notice:
    """A line for the log, shown once per ``key`` (model/notices.py)."""

    level: str  # a logging level name
    key: str
    text: str


@dataclass(frozen=True)
class Polled:
    """What Maestro is told of one job at a poll, and what the log says of it."""

    state: str  # the name of a Maestro State
    notice: Notice | None = None


@dataclass(frozen=True)
class PollFacts:
    """What is known of one job id at a poll, besides its listing."""

    jobid: str
    broker: str  # the broker polled, in words
    #: The other broker this study submitted the job to, if the study has left it.
    moved_from: str | None = None
    #: This process submitted the job and job-list may not have caught up yet.
    awaiting: bool = False
    #: The listing grace (seconds) if it ran out for this job; None: never submitted here.
    grace_passed: float | None = None
    #: The node-failure decision (model/retries.py) for a job a node failure ended.
    node_failure: Any = None
    #: What the job asked for, in words (an end's line says it for an alloc exception).
    asks: str | None = None


#: Maestro states whose end is worth a line in the log.
TOLD_ENDS = frozenset(("FAILED", "TIMEDOUT", "CANCELLED"))


def decide(status: JobStatus | None, facts: PollFacts) -> Polled:
    """The Maestro state of a polled job (None: job-list does not list it)."""
    jobid, broker = facts.jobid, facts.broker
    if status is None:
        if facts.moved_from:  # Maestro resubmits a HWFAILURE, on the study's new broker
            return Polled("HWFAILURE", Notice(
                "WARNING", f"moved:{jobid}", f"maestro-flux: job {jobid} was submitted to "
                f"{facts.moved_from}, which the study has left for {broker}; step "
                "resubmitted there"))
        if facts.awaiting:
            return Polled("PENDING")  # submitted by us; job-list has not caught up yet
        why = ("purged, or submitted to another broker" if facts.grace_passed is None else
               "job-list has not listed it within the grace period of "
               f"{facts.grace_passed:g}s after its submission")
        return Polled("UNKNOWN", Notice("WARNING", f"unknown:{jobid}",
                                        f"maestro-flux: job {jobid} is unknown to {broker} "
                                        f"({why}); step marked UNKNOWN"))
    if facts.node_failure is not None:
        decision = facts.node_failure
        return Polled(decision.state, Notice(
            "WARNING", f"node:{jobid}",
            f"maestro-flux: step '{decision.step or '?'}', Flux job {jobid}: {decision.reason}"))
    state = status.maestro_state
    if status.state == "INACTIVE" and state in TOLD_ENDS:
        reason = status.reason(facts.asks)
        return Polled(state, Notice("WARNING", f"end:{jobid}",
                                    f"maestro-flux: job {jobid} ended: {reason}"))
    return Polled(state)
