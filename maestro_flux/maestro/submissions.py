"""One owner for a job's life: sent, answered, put on its step, journaled, adopted,
dropped, cancelled.

Every path that puts a job in Flux goes through :class:`Submissions`, held by the
study's StudyState: Maestro's submit, one at a time or during a pipelined cycle
(pipeline.py), steps sent ahead (ahead.py), and what resume finds in Flux. Its rules:

- each submission's ``intent`` is journaled before the request is sent, and every
  intent is closed (``submitted``, ``refused`` or ``abandoned``), so that resume
  knows which are still open;
- an id the broker returned is never dropped: it goes into memory first (the step's
  record, or the jobs sent ahead), then into the journal; a journal write that fails
  is logged once and the study goes on (journal.py);
- a submission whose answer was lost (the connection went between request and
  answer) is searched in Flux by its token before its step is handed back; while
  the broker cannot be asked, it stays open, its step holding a placeholder id that
  is polled as PENDING, and it is searched again before each of Maestro's rounds;
- a job sent ahead that is of no use any more leaves the study's jobs sent ahead
  only once the broker said it is canceled (or had already ended).
"""

from __future__ import annotations

import errno
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro_flux.broker import identity
from maestro_flux.broker import jobspec as jobspecs
from maestro_flux.broker.connection import LOST_CONNECTION, Broker
from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro.journal import Journal, for_workspace
from maestro_flux.model import jobids
from maestro_flux.model.ahead import AheadJob, Verdict
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.notices import Notices
from maestro_flux.model.records import Identity
from maestro_flux.model.refusals import UNSATISFIABLE, refusal
from maestro_flux.model.retries import NodeFailures

LOGGER = logging.getLogger(__name__)
#: Maestro records this in place of a job id whose answer is not read yet.
PLACEHOLDER = "maestro-flux-pending-"
#: Seconds a lost answer's job is looked for (job-list may lag a job just accepted).
SEARCH_GRACE = 2.0
CANCEL_REASON = "sent ahead by maestro-flux; no longer needed"


def is_placeholder(jobid: Any) -> bool:
    return isinstance(jobid, str) and jobid.startswith(PLACEHOLDER)


@dataclass
class Pending:
    """A submission sent, whose answer is not taken yet."""

    step: str
    kind: str  # "maestro" or "ahead"
    name: str  # the job's name in Flux, to look for it by token
    future: Any
    broker: Broker
    token: str | None = None
    asks: str | None = None  # what the step asks for, in words, for a refusal's line
    waits_on: tuple[tuple[str, str | None], ...] = ()
    placeholder: str | None = None
    sent_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Accepted:
    jobid: str  # ASCII f58


@dataclass(frozen=True)
class Refused:
    error: Exception
    line: str  # the broker's refusal, as one line a person can act on


@dataclass(frozen=True)
class Unresolved:
    """The answer was lost and the broker cannot be asked yet whether it has the job."""

    error: Exception


Outcome = Accepted | Refused | Unresolved


def _answer_lost(err: Exception) -> bool:
    """True when the error says nothing of the job (the connection went), so the
    broker may have accepted it; False for a refusal."""
    if isinstance(err, OSError):
        return err.errno in LOST_CONNECTION or err.errno == errno.EIO
    return not isinstance(err, MaestroFluxError | ValueError | TypeError)


class Submissions:
    """The study's submissions, from the request to the job's adoption or drop."""

    def __init__(self, notices: Notices, node_failures: NodeFailures) -> None:
        self.notices, self.node_failures = notices, node_failures
        #: Step -> its job sent ahead, until Maestro adopts it (ahead.py).
        self.ahead: dict[str, AheadJob] = {}
        #: Jobs sent ahead that are of no use, until the broker confirms their cancel.
        self.cancelling: dict[str, AheadJob] = {}
        #: Step -> its submission whose answer was lost (searched before each round).
        self.unresolved: dict[str, Pending] = {}
        #: Step -> its attempt (maestro-flux retry makes a new one), from the journal.
        self.attempts: dict[str, int] = {}
        #: Maestro's submissions of the round under way (pipeline.py), None outside one.
        self.in_cycle: list[Pending] | None = None
        #: The graph Maestro's conductor drives, once the pipeline has seen it.
        self.graph: Any = None
        self._journal: Journal | bool | None = None

    # -- the journal -----------------------------------------------------------
    def journal_for(self, workspace: str | None) -> Journal | None:
        """The study's journal, found from a step's workspace (None outside a study)."""
        if self._journal is None:
            try:
                self._journal = for_workspace(workspace, self.notices) or False
            except OSError as err:
                self.notices.log_once(LOGGER, logging.ERROR, "journal-open",
                                      "maestro-flux: cannot open the study's journal (%s); "
                                      "the study goes on without one", err.strerror or err)
                self._journal = False
        return self._journal or None

    @property
    def journal(self) -> Journal | None:
        return self._journal or None

    def blocked(self, step: str) -> bool:
        """True while the step has a job whose fate is not settled (its answer lost, or
        its cancel not confirmed): nothing new is sent for it meanwhile."""
        return step in self.unresolved or step in self.cancelling

    # -- sending ---------------------------------------------------------------
    def send(self, broker: Broker, step: str, jobspec: Any, urgency: int, flags: list[str],
             cwd: str, *, kind: str, name: str, asks: str | None = None,
             waits_on: tuple = ()) -> Pending:
        """Journal the intent, stamp the job's identity and send the request."""
        journal = self.journal_for(cwd)
        token = None
        if journal is not None:
            restarts = maestro_graph.restarts(self.graph, step) if (
                self.graph is not None and kind == "maestro") else 0
            attempt = self.attempts.get(step, 1)
            token = journal.intent(step, kind, name, waits_on, restarts, attempt)
            jobspecs.add_identity(jobspec, Identity(str(journal.root), step, token, attempt))
        try:
            future = broker.submit_async(jobspec, urgency, flags)
        except Exception as err:  # never sent: the broker cannot have it
            if journal is not None and token:
                journal.closed("abandoned", step, token, reason=f"{type(err).__name__}: {err}")
            raise
        return Pending(step, kind, name, future, broker, token, asks, tuple(waits_on))

    def answer(self, pending: Pending) -> Outcome:
        """The job's id, or the broker's refusal; a lost answer is looked for by token."""
        # Read once (resolve searches by token): freed after this call, since a waited
        # future holds a reactor and a handle, and a cycle may hold thousands of pendings.
        future, pending.future = pending.future, None
        try:
            number = pending.broker.submit_get_id(future, pending.asks)
        except Exception as err:
            if not _answer_lost(err):
                return self._refused(pending, err)
            LOGGER.warning("maestro-flux: the answer to step '%s''s submission was lost "
                           "(%s); looking for its job in Flux", pending.step, err)
            return self._search(pending, err)
        return Accepted(jobids.f58_encode(number))

    def _refused(self, pending: Pending, err: Exception) -> Refused:
        has = (pending.broker.inventory()
               if getattr(err, "errno", None) in UNSATISFIABLE else None)
        return Refused(err, refusal(err, pending.asks, has))

    def _search(self, pending: Pending, err: Exception) -> Outcome:
        if not pending.token:
            return Refused(err, f"the answer was lost ({err}) and the study has no journal "
                                "to find the job by")
        deadline = pending.sent_at + SEARCH_GRACE
        while True:
            try:
                found = pending.broker.call(lambda h: identity.find_tokens(
                    h, [pending.token], [pending.name], pending.sent_at))
            except (OSError, MaestroFluxError) as again:
                return Unresolved(again)
            if pending.token in found:
                pending.broker.submitted.add(found[pending.token])
                return Accepted(jobids.f58_encode(found[pending.token]))
            if time.time() >= deadline:
                return Refused(err, f"its answer was lost ({err}) and Flux has no job with "
                                    "its token")
            time.sleep(0.2)

    def settle(self, pending: Pending, store: Callable[[Outcome], None],
               outcome: Outcome | None = None) -> Outcome:
        """Take the answer (unless ``outcome`` is known already), ``store`` it (the id into
        memory: the step, the jobs sent ahead), then journal it. ``store`` failing loses
        nothing: the journal has it, and resume puts it on its step."""
        outcome = outcome or self.answer(pending)
        if isinstance(outcome, Accepted):
            self.node_failures.known(outcome.jobid, pending.step)
        try:
            store(outcome)
        except Exception as err:
            LOGGER.error("maestro-flux: could not record step '%s' (%s: %s); "
                         "'maestro-flux resume' finds its job", pending.step,
                         type(err).__name__, err)
        self._close(pending, outcome)
        return outcome

    def _close(self, pending: Pending, outcome: Outcome) -> None:
        journal = self.journal
        if isinstance(outcome, Unresolved):
            self.unresolved[pending.step] = pending
            return
        self.unresolved.pop(pending.step, None)
        if journal is None or not pending.token:
            return
        if isinstance(outcome, Accepted):
            journal.closed("submitted", pending.step, pending.token, jobid=outcome.jobid)
        else:
            event = "refused" if not _answer_lost(outcome.error) else "abandoned"
            journal.closed(event, pending.step, pending.token, reason=outcome.line)

    # -- Maestro's submissions -------------------------------------------------
    def for_maestro(self, pending: Pending) -> str:
        """A submission of Maestro's: its id now, or during a pipelined round a
        placeholder, replaced at the round's end (:meth:`close_cycle`)."""
        if self.in_cycle is not None:
            pending.placeholder = f"{PLACEHOLDER}{uuid.uuid4().hex[:12]}"
            self.in_cycle.append(pending)
            return pending.placeholder
        outcome = self.settle(pending, lambda _: None)
        if isinstance(outcome, Accepted):
            return outcome.jobid
        if isinstance(outcome, Unresolved):
            raise MaestroFluxError(f"its answer was lost and {pending.broker.label} cannot "
                                   f"be asked for it ({outcome.error})")
        raise MaestroFluxError(outcome.line)

    def open_cycle(self, graph: Any) -> None:
        self.graph, self.in_cycle = graph, []

    def close_cycle(self, graph: Any) -> int:
        """Put every answered id of the round on its step, fail the steps whose job
        was refused (and their subtrees, as Maestro does); returns how many were sent.
        One job's failure here never loses another's id."""
        sent, self.in_cycle = self.in_cycle or [], None
        for pending in sent:
            self.settle(pending, lambda outcome, p=pending: self._store(graph, p, outcome))
        if sent:
            LOGGER.info("maestro-flux: %d step(s) sent together this cycle", len(sent))
        return len(sent)

    def _store(self, graph: Any, pending: Pending, outcome: Outcome) -> None:
        if isinstance(outcome, Accepted):
            maestro_graph.set_job(graph, pending.step, pending.placeholder, outcome.jobid)
            LOGGER.info("maestro-flux: submitted step '%s' as Flux job %s", pending.step,
                        outcome.jobid)
        elif isinstance(outcome, Refused):
            LOGGER.error("maestro-flux: step '%s' was not submitted: %s", pending.step,
                         outcome.line)
            maestro_graph.fail_subtree(graph, pending.step, pending.placeholder)
        else:  # polled as PENDING under its placeholder until it is found
            maestro_graph.set_job(graph, pending.step, pending.placeholder,
                                  pending.placeholder or "")
            LOGGER.warning("maestro-flux: %s cannot be asked whether it has step '%s''s job "
                           "(%s); asked again next round", pending.broker.label, pending.step,
                           outcome.error)

    def resolve(self, graph: Any) -> None:
        """Look again for the jobs of submissions whose answer was lost."""
        for pending in list(self.unresolved.values()):
            outcome = self._search(pending, OSError(errno.ECONNRESET, "answer lost"))
            if not isinstance(outcome, Unresolved):
                self.settle(pending, lambda found, p=pending: self._found(graph, p, found),
                            outcome)

    def _found(self, graph: Any, pending: Pending, found: Outcome) -> None:
        if pending.kind == "ahead":
            if isinstance(found, Accepted):
                self.ahead[pending.step] = AheadJob(found.jobid, pending.waits_on)
        elif isinstance(found, Accepted):
            maestro_graph.set_job(graph, pending.step, pending.placeholder, found.jobid)
        else:  # Flux never had it: the step is submitted again, as if for the first time
            maestro_graph.take_back(graph, pending.step, pending.placeholder or "")

    # -- jobs sent ahead -------------------------------------------------------
    def adopt(self, step: str) -> str | None:
        """The job sent ahead for ``step``, now Maestro's (None if there is none)."""
        job = self.ahead.pop(step, None)
        if job is None:
            return None
        self.node_failures.known(job.jobid, step)
        if self.journal is not None:
            self.journal.event("adopted", step, job.jobid)
        LOGGER.info("maestro-flux: step '%s' is Flux job %s, sent ahead", step, job.jobid)
        return job.jobid

    def drop(self, verdicts: Mapping[str, Verdict], broker: Broker) -> None:
        """Forget the jobs sent ahead that ended of no use; cancel those still of no use
        and forget them once the broker confirms."""
        for step, verdict in verdicts.items():
            if verdict is Verdict.KEEP or step not in self.ahead:
                continue
            job = self.ahead.pop(step)
            if verdict is Verdict.FORGET:
                self._dropped(step, job)
            else:
                self.cancelling[step] = job
        self.confirm_cancels(broker)

    def cancel_all(self, broker: Broker) -> None:
        """Cancel every job sent ahead (the study is canceled, or has ended)."""
        self.cancelling.update(self.ahead)
        self.ahead.clear()
        count = len(self.cancelling)
        self.confirm_cancels(broker)
        if count:
            LOGGER.info("maestro-flux: canceled %d job(s) sent ahead", count - len(self.cancelling))

    def confirm_cancels(self, broker: Broker) -> None:
        """Cancel the jobs in ``cancelling``; those canceled (or already ended) go."""
        if not self.cancelling:
            return
        numbers = {jobids.parse_jobid(job.jobid): step for step, job in self.cancelling.items()}
        try:
            outcome = broker.cancel(numbers, CANCEL_REASON)
        except (OSError, MaestroFluxError) as err:
            LOGGER.warning("maestro-flux: cannot cancel %d job(s) sent ahead (%s); tried "
                           "again next round", len(numbers), err)
            return
        for number, step in numbers.items():
            if outcome.get(number) is None:
                self._dropped(step, self.cancelling.pop(step))

    def _dropped(self, step: str, job: AheadJob) -> None:
        if self.journal is not None:
            self.journal.event("dropped", step, job.jobid)

    # -- resume ------------------------------------------------------------------
    def restore(self, ahead: Mapping[str, AheadJob], attempts: Mapping[str, int],
                known: Iterable[tuple[str, str]]) -> None:
        """What resume found: jobs sent ahead, each step's attempt, and job -> step."""
        self.ahead.update(ahead)
        self.attempts.update(attempts)
        for jobid, step in known:
            self.node_failures.known(jobid, step)
