"""Flux's after-dependencies, as the recorded brokers answered them: what maestro-flux's
submit-ahead (maestro_flux/maestro/ahead.py) relies on.

Each case submits a target job and a job that depends on it, and compares what the
broker did (refused the submission, or how the dependent job ended, and whether it
waited in DEPEND) with tests/recordings/VERSION/dependencies.json. In real mode with
MAESTRO_FLUX_RECORD=1 the answers are written there (ids replaced by $TARGET).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from brokers import RECORDINGS, session_bindings
from test_recordings import spec

from maestro_flux.broker import listing, submit
from maestro_flux.model.jobids import f58_encode
from maestro_flux.model.states import STATE_NAMES, status_from_listing

pytestmark = pytest.mark.every_version

#: case -> (target command, target urgency, scheme, what happens to the target: False
#: (runs), "ended" (ended before the dependent is submitted), "canceled" (canceled and
#: ended before), "canceled after" (canceled once the dependent waits); chain a third job?)
CASES = {
    "afterok_on_success": (["sleep", "1"], 16, "afterok", False, False),
    "afterok_on_failure": (["sh", "-c", "sleep 1; exit 3"], 16, "afterok", False, True),
    "afterany_on_failure": (["sh", "-c", "sleep 1; exit 3"], 16, "afterany", False, False),
    "afternotok_on_success": (["sleep", "1"], 16, "afternotok", False, False),
    "afterok_on_canceled_before_start": (["true"], 0, "afterok", "canceled", False),
    "afternotok_on_canceled_before_start": (["true"], 0, "afternotok", "canceled", False),
    "afterok_on_held_then_canceled": (["true"], 0, "afterok", "canceled after", True),
    "afterany_on_held_then_canceled": (["true"], 0, "afterany", "canceled after", False),
    "afterok_on_ended_success": (["true"], 16, "afterok", "ended", False),
    "afterok_on_ended_failure": (["false"], 16, "afterok", "ended", False),
    "afterok_on_unknown_job": (None, 16, "afterok", False, False),
}


def _dependent(flux, work, scheme: str, value: str):
    js = spec(flux, ["true"], work)
    js.setattr("system.dependencies", [{"scheme": scheme, "value": value}])
    return js


def _wait(handle, ids, timeout=60, states=frozenset({"INACTIVE"})) -> dict:
    """Each job's last listing and the states it was seen in, once all are in ``states``."""
    end, seen = time.time() + timeout, {jobid: set() for jobid in ids}
    while time.time() < end:
        entries = {e["id"]: e for e in listing.list_jobs(handle)}
        for jobid in ids:
            seen[jobid].add(STATE_NAMES.get(entries.get(jobid, {}).get("state")))
        if all(STATE_NAMES.get(entries.get(j, {}).get("state")) in states for j in ids):
            return {jobid: (entries[jobid], seen[jobid]) for jobid in ids}
        time.sleep(0.05)
    raise AssertionError(f"jobs did not reach {sorted(states)} in time")


def _run_case(flux, handle, work, case: str) -> dict:
    command, urgency, scheme, cancel, chain = CASES[case]
    target = (submit.submit(handle, spec(flux, command, work), urgency) if command
              else 123456789)
    value = f58_encode(target)
    if cancel == "canceled":
        flux.job.cancel(handle, target)
    if cancel in ("ended", "canceled"):
        _wait(handle, [target])  # inactive, not still in CLEANUP: refused at submission
    try:
        dependent = submit.submit(handle, _dependent(flux, work, scheme, value), 16)
    except OSError as err:
        return {"refused": {"errno": err.errno,
                            "text": str(err.strerror or err).replace(value, "$TARGET")}}
    third = (submit.submit(handle, _dependent(flux, work, "afterok", f58_encode(dependent)), 16)
             if chain else None)
    waits = cancel is False and command is not None  # the target runs a while
    if cancel == "canceled after":
        _wait(handle, [dependent], states={"DEPEND"})  # fails unless it waits there
        flux.job.cancel(handle, target)
    ended = _wait(handle, ([target] if waits else []) + [dependent] + ([third] if third else []))
    # Whether a job whose target already ended is ever listed in DEPEND is a race.
    answer = {"dependent": _ending(ended[dependent], value, waits=waits)}
    if third:
        answer["chained"] = _ending(ended[third], f58_encode(dependent), "$DEPENDENT", waits)
    return answer


def _ending(entry_seen: tuple, value: str, name: str = "$TARGET", waits: bool = False) -> dict:
    entry, seen = entry_seen
    status = status_from_listing(entry)
    ending = {"result": status.result, "exception_type": status.exception_type,
              "exception_note": (status.exception_note or "").replace(value, name) or None}
    if waits:
        ending["waited_in_depend"] = "DEPEND" in seen
    return ending


@pytest.fixture(scope="module")
def answers(flux_session, tmp_path_factory):
    with session_bindings(flux_session) as (flux, handle):
        work = tmp_path_factory.mktemp("dependencies")
        yield {case: _run_case(flux, handle, work, case) for case in CASES}, flux_session


def test_dependencies_are_answered_as_recorded(answers):
    found, mode = answers
    path = RECORDINGS / mode.version / "dependencies.json"
    if mode.real and os.environ.get("MAESTRO_FLUX_RECORD"):
        path.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    assert found == mode.recording("dependencies")


def test_what_submit_ahead_relies_on(answers):
    """Whatever the version: a job waits in DEPEND and runs after its target succeeds; a
    failed target fails its afterok dependents (and theirs) with a dependency exception;
    a submission naming a job that already failed is refused with EINVAL."""
    found, _ = answers
    ok = found["afterok_on_success"]["dependent"]
    assert ok["result"] == "COMPLETED" and ok["waited_in_depend"]
    for ending in (found["afterok_on_failure"]["dependent"],
                   found["afterok_on_failure"]["chained"]):
        assert (ending["result"], ending["exception_type"]) == ("FAILED", "dependency")
    assert found["afterok_on_ended_failure"]["refused"]["errno"] == 22
    assert found["afterok_on_ended_success"]["dependent"]["result"] == "COMPLETED"
