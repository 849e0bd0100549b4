"""A guest of a multi-user instance: what the broker refuses a guest, and what
maestro-flux does about it. Every test runs as the guest of the test double (at every
recorded version for ``every_version`` tests, each compared with its version's
recording), and as a real guest of a real multi-user instance (tests/multiuser.py)
where one can be started; each action runs in the guest's own process."""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import time

import multiuser
import pytest
from brokers import FLUXION_ANSWERS_GUESTS, RECORDINGS, ROOT, TESTS

from maestro_flux.model import records

#: Each priority name, and the urgency a guest's job gets: the documented table
#: (docs/pages/reference.md), capped at 16 as the broker demands of guests.
GUEST_URGENCY = {"held": 0, "minimal": 1, "low": 8, "medium": 16, "high": 16,
                 "expedite": 16, "expedited": 16, "0.25": 8, "1.0": 16}


#: The answers of tests/guest_actions.py's "streams" action; the rest of guest_rpcs.json
#: is its "requests" action's.
STREAMED = ("job-manager.events-journal", "flux.job.JournalConsumer", "job-info.eventlog-watch")
#: Answers that depend on the instance's configuration, not on the flux-core version:
#: only whether each is answered is compared.
CONFIGURED = {"config.get"}
#: How the recordings name the owner's uid.
OWNER_UID = "$OWNER_UID"


def _recorded(side, streamed: bool) -> dict:
    """What a guest was answered on a real instance of the guest side's flux-core version."""
    path = RECORDINGS / side.version / "guest_rpcs.json"
    answers = json.loads(path.read_text())["answers"]
    return {name: answer for name, answer in answers.items() if (name in STREAMED) == streamed}


def _as_recorded(side, found: dict) -> dict:
    """``found`` as the recordings hold it (the owner's uid named), written to them with
    MAESTRO_FLUX_RECORD=1 on a real instance running sched-simple (tests/recordings)."""
    if found.get("attr.get security.owner") == {"ok": str(side.owner_uid)}:
        found = {**found, "attr.get security.owner": {"ok": OWNER_UID}}
    if side.real and side.scheduler == "sched-simple" and os.environ.get("MAESTRO_FLUX_RECORD"):
        path = RECORDINGS / side.version / "guest_rpcs.json"
        old = json.loads(path.read_text())["answers"] if path.exists() else {}
        everything = {"setting": multiuser.setting(side), "answers": {**old, **found}}
        path.write_text(json.dumps(everything, indent=1) + "\n")
    return found


def _compare(side, found: dict, recorded: dict) -> None:
    """Every answer as recorded; only whether it is answered where it depends on the
    configuration, or on Fluxion, which answers some requests sched-simple refuses."""
    assert set(found) == set(recorded)
    for name, answer in recorded.items():
        fluxion = side.scheduler == "fluxion" and name in FLUXION_ANSWERS_GUESTS
        if fluxion or ("ok" in answer and name in CONFIGURED):
            assert "ok" in found[name], (name, found[name])
        else:
            assert found[name] == answer, name


@pytest.mark.every_version
def test_a_guest_is_refused_what_only_the_owner_may_submit_as_recorded(guest_side):
    recorded = json.loads((RECORDINGS / guest_side.version / "guest_submit.json").read_text())
    found = guest_side.action("refusals", str(guest_side.workdir("refusals")))
    for case in ("urgency_17", "urgency_31", "waitable"):
        assert found[case] == {"error": recorded[case]["error"]["str"]}, case
    # Not recorded; flux-core's job-ingest (job.c) says so since 0.61.
    assert found["novalidate"] == {
        "error": "[Errno 1] only the instance owner can submit with FLUX_JOB_NOVALIDATE"}


def test_a_guests_owner_only_flags_are_dropped_with_one_warning_each(guest_side):
    found = guest_side.action("step", str(guest_side.workdir("flags")),
                              json.dumps({"flags": ["waitable", "novalidate", "debug"]}),
                              json.dumps({"cmd": "true", "priority": "expedited"}))
    assert found == {"submitted": "OK", "state": "FINISHED", "lines": [
        f"WARNING: maestro-flux: the '{flag}' flag is only for the instance owner; ignored"
        for flag in ("waitable", "novalidate")]}


@pytest.mark.every_version
def test_owner_only_requests_are_refused_to_a_guest_as_recorded(guest_side):
    """What a guest who has a job of its own, as the owner has, is answered to each request
    an adapter, its doctor or the conductor's wait may send, as its version answered it."""
    guest_side.action("submit-true", as_owner=True)
    found = guest_side.action("requests")
    assert found["attr.get security.owner"] == {"ok": str(guest_side.owner_uid)}
    _compare(guest_side, _as_recorded(guest_side, found), _recorded(guest_side, False))


@pytest.mark.every_version
def test_a_guest_is_refused_the_journal_and_watches_its_own_jobs_as_recorded(guest_side):
    """The streaming requests of the conductor's wait: the job manager's journal is the
    owner's (raw, and flux.job.JournalConsumer where the bindings have it), while a guest
    watches the eventlog of a job of its own, as its version answered it."""
    found = guest_side.action("streams")
    if not guest_side.real and "unsupported" in found:
        pytest.skip(f"the double does not stream yet: {found['unsupported']}")
    found = _as_recorded(guest_side, found)
    recorded = _recorded(guest_side, True)
    # The double's answer to a topic it lacks, while its streaming is being built.
    lacking = [name for name, answer in found.items() if not guest_side.real
               and answer.get("error", "").endswith(f"Function not implemented: {name}")]
    for name in lacking:
        found[name] = recorded[name]
    _compare(guest_side, found, recorded)
    if lacking:
        pytest.skip(f"the double does not stream {', '.join(lacking)} yet (the rest is as "
                    "recorded)")


def test_every_priority_name_is_accepted_from_a_guest_and_capped_at_16(guest_side):
    found = guest_side.action("priorities", str(guest_side.workdir("priorities")),
                              *GUEST_URGENCY)
    assert found["submitted"] == sorted(GUEST_URGENCY)
    assert found["urgency"] == GUEST_URGENCY
    assert found["cancel"] == "OK"


def test_cancelling_someone_elses_job_is_one_line(guest_side):
    jobid = guest_side.action("submit-sleep", "/tmp", as_owner=True)["id"]
    try:
        found = guest_side.action("cancel", jobid)
    finally:
        assert guest_side.action("cancel", jobid, as_owner=True)["code"] == "OK"
    owner = guest_side.owner_uid
    who = f"owner: {pwd.getpwuid(owner).pw_name}, uid {owner}"
    assert found == {"code": "ERROR", "lines": [
        f"WARNING: maestro-flux: cannot cancel job {jobid}: it is another user's job "
        f"({who}); only they or the instance owner can cancel it"]}


def _statuses(outdir) -> dict[str, str]:
    with open(outdir / "status.csv") as handle:
        return {row["Step Name"]: row["State"] for row in csv.DictReader(handle)}


def test_a_guests_study_runs_as_the_guest_in_its_workspace(guest_side):
    """The jobs run as the guest (the IMP, for real), in their step workspace,
    with the guest's environment, and what they write belongs to the guest."""
    work = guest_side.workdir("study")
    spec = work / "guest.yaml"
    shutil.copy(TESTS / "specs" / "guest.yaml", spec)
    outdir = work / "out"
    done = guest_side.run([guest_side.command("maestro"), "run", "-fg", "-y", "-s", "1",
                           "-o", str(outdir), str(spec)], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _statuses(outdir) == {"whoami": "FINISHED", "launcher": "FINISHED"}
    guest = guest_side.guest
    whoami = outdir / "whoami" / "whoami.txt"
    assert whoami.read_text().split() == [guest.pw_name, str(guest.pw_uid), guest.pw_dir,
                                          guest.pw_name, str(outdir / "whoami")]
    assert (outdir / "launcher" / "launcher.txt").read_text().split() == [guest.pw_name] * 2
    for path in (outdir / "whoami").iterdir():  # the script, the job's output files
        assert os.stat(path).st_uid == guest.pw_uid, path
    assert {path.suffix for path in (outdir / "whoami").iterdir()} >= {".out", ".err", ".sh"}


def test_doctor_exits_0_for_a_guest_and_says_what_a_guest_cannot_see(guest_side):
    done = guest_side.run([guest_side.command("maestro-flux"), "doctor"])
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [text for text in lines if text.startswith("FAIL")] == []

    def line(label: str) -> str:
        return next(text for text in lines if text[6:].split()[:1] == [label])

    assert line("instance").endswith(", you are the guest (urgency capped at 16)")
    assert line("connect") == f"  ok  connect    connected to {guest_side.uri}"
    assert line("queues").startswith("  ok  queues     ")
    assert line("banks") == (
        "  ok  banks      not visible to a guest: job-manager.jobtap refused (Request requires "
        "owner credentials: a guest cannot ask it), and the configuration does not load "
        "mf_priority; where flux-accounting runs, 'flux account view-user $USER' lists your "
        "banks")
    assert lines[-1] == "submission should work"


def test_a_guest_reads_back_the_identity_of_its_jobs(guest_side):
    """What resume relies on: a guest's job carries its study, step and token, and the
    guest finds it again by its token (job-list and job-info.lookup of its own jobs)."""
    workdir = str(guest_side.workdir("identity"))
    found = guest_side.action("identity", workdir)
    assert found == {"identity": {"study": workdir, "step": "identity-step", "token": "t0k3n",
                                  "attempt": 2, "v": records.VERSION},
                     "found": True}


def test_a_guests_graph_is_in_flux_after_one_cycle(guest_side):
    """Dependencies held by Flux for a guest: four levels under a 15 s sleep end in at
    most two conductor cycles, each step with one job."""
    work = guest_side.workdir("graph")
    spec = work / "sweep_funnel_chain.yaml"
    shutil.copy(ROOT / "specs" / "sweep_funnel_chain.yaml", spec)
    outdir = work / "out"
    done = guest_side.run([guest_side.command("maestro"), "run", "-fg", "-y", "-s", "15",
                           "-o", str(outdir), str(spec)], cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(_statuses(outdir).values()) == {"FINISHED"} and len(_statuses(outdir)) == 7
    log = done.stdout + done.stderr
    assert "maestro-flux: 3 step(s) sent ahead" in log
    assert log.count("Checking DAG status at") <= 2


def test_a_guests_study_is_resumed_after_its_conductor_is_killed(guest_side):
    """The journal and the jobs' identity work for a guest: killed while jobs run (the
    chain waiting in Flux), resumed by the guest, every step runs once."""
    work = guest_side.workdir("resume")
    spec = work / "resume_chain.yaml"
    shutil.copy(TESTS / "specs" / "resume_chain.yaml", spec)
    outdir = work / "out"
    launched = guest_side.run([guest_side.command("maestro"), "run", "-y", "-s", "1",
                               "-o", str(outdir), str(spec)], cwd=work)
    assert launched.returncode == 0, launched.stderr[-3000:]
    journal = outdir / "meta" / "maestro-flux" / "journal.jsonl"
    end = time.time() + 120
    while time.time() < end and not (journal.exists() and
                                     journal.read_text().count('"kind":"ahead"') >= 2):
        time.sleep(0.2)  # until gather and last wait in Flux
    beat = json.loads((outdir / "meta" / "maestro-flux" / "conductor.json").read_text())
    os.kill(int(beat["pid"]), signal.SIGKILL)  # as root: the guest's conductor dies
    done = guest_side.run([guest_side.command("maestro-flux"), "resume", str(outdir), "-fg"],
                          cwd=work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert set(_statuses(outdir).values()) == {"FINISHED"} and len(_statuses(outdir)) == 6
    ran = [path.read_text().splitlines() for path in outdir.glob("**/ran")]
    assert len(ran) == 6 and all(len(lines) == 1 for lines in ran)
