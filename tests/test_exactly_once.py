"""Exactly once, whatever the fault: every step's job starts once, none is lost, and
the study ends as an undisturbed one does.

Whole studies (tests/specs/resume_chain.yaml: a long first step, a sweep gathered by
a funnel, a last step; Flux holds the dependencies) through the real ``maestro`` and
``maestro-flux`` commands, with faults injected into those processes by
tests/inject.py: a journal write that fails at each write point, an answer lost
after the broker accepted the job, a SIGKILL between the broker's answer and each
record of it (then ``maestro-flux resume``), two resumes racing, and a broker gone
when the study is resumed. Each step's runs are counted from the lines it writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import TESTS, start_broker, stop_broker
from test_resume import SPEC, STEPS, assert_ran_once
from test_studies_end_to_end import BIN, statuses, study_env

from maestro_flux.maestro import journal as journals

pytestmark = pytest.mark.e2e
INJECT = TESTS / "inject.py"


def injected(fault: str, program: str, args: list[str], env: dict, cwd: Path,
             steps: str = "*", timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, str(INJECT), fault, program, *args]
    return subprocess.run(command, env={**env, "MAESTRO_FLUX_INJECT_STEP": steps}, cwd=cwd,
                          text=True, capture_output=True, timeout=timeout)


def run_fg(fault: str, flux_mode, tmp_path: Path, steps: str = "*") -> tuple[Path, dict,
                                                                              subprocess.
                                                                              CompletedProcess]:
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    done = injected(fault, "maestro", ["run", "-fg", "-y", "-s", "1", "-o", str(outdir),
                                       str(SPEC)], env, tmp_path, steps)
    return outdir, env, done


def resume_fg(outdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maestro-flux"), "resume", str(outdir), "-fg", *args],
                          env=env, text=True, capture_output=True, timeout=240)


def journal_text(outdir: Path) -> str:
    return (outdir / journals.FOLDER / journals.JOURNAL).read_text()


@pytest.mark.parametrize("event", ["intent", "submitted", "adopted", "dropped", "conductor"])
def test_a_journal_that_cannot_be_written_loses_nothing(flux_mode, tmp_path, event):
    outdir, _, done = run_fg(f"journal:{event}", flux_mode, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_ran_once(outdir)
    said = [line for line in done.stdout.splitlines() + done.stderr.splitlines()
            if "cannot write the study's journal" in line]
    if event != "dropped":  # this study drops no job sent ahead
        assert len(said) == 1 and "No space left on device" in said[0], said
    assert f'"event":"{event}"' not in journal_text(outdir)


@pytest.mark.every_version  # the search by token: job-list's constraints, job-info.lookup
@pytest.mark.parametrize("steps", ["sweep_*", "gather"], ids=["maestros-round", "sent-ahead"])
def test_an_answer_lost_after_the_broker_accepted_the_job_is_found_by_its_token(
        flux_mode, tmp_path, steps):
    outdir, _, done = run_fg("lost-answer", flux_mode, tmp_path, steps)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_ran_once(outdir)
    assert "was lost" in done.stdout + done.stderr
    replay = journals.read(outdir)
    lost = [s for s in replay.sent.values() if s.step.startswith(steps.rstrip("*"))]
    assert lost and all(s.closed == "submitted" and s.jobid for s in lost)


@pytest.mark.every_version
@pytest.mark.parametrize("where, steps", [("accepted", "sweep_*"), ("stored", "sweep_*"),
                                          ("journaled", "sweep_*"), ("stored", "gather"),
                                          ("journaled", "last"), ("adopted", "gather")])
def test_a_conductor_killed_between_the_answer_and_its_records_loses_no_step(
        flux_mode, tmp_path, where, steps):
    outdir, env, done = run_fg(f"kill:{where}", flux_mode, tmp_path, steps)
    assert done.returncode == -9, done.stdout[-3000:] + done.stderr[-3000:]
    resumed = resume_fg(outdir, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert_ran_once(outdir)
    assert not journals.read(outdir).unanswered()  # every submission closed


def started_then_killed(flux_mode, tmp_path: Path) -> tuple[Path, dict]:
    """A study whose conductor was killed while its first step runs."""
    outdir, env, done = run_fg("kill:journaled", flux_mode, tmp_path, "last")
    assert done.returncode == -9, done.stderr[-2000:]
    return outdir, env


@pytest.mark.every_version
def test_two_resumes_at_once_start_one_conductor(flux_mode, tmp_path):
    outdir, env = started_then_killed(flux_mode, tmp_path)
    command = [str(BIN / "maestro-flux"), "resume", str(outdir)]
    racing = [subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE) for _ in range(2)]
    answers = [proc.communicate(timeout=120) + (proc.returncode,) for proc in racing]
    started = [out for out, _, code in answers if code == 0 and "in the background" in out]
    refused = [err for _, err, code in answers if code == 1]
    assert len(started) == 1 and len(refused) == 1, answers
    assert len(refused[0].splitlines()) == 1
    assert "its conductor is still running (pid" in refused[0] and " on " in refused[0]
    wait_until_ended(outdir)
    assert_ran_once(outdir)
    conductors = journals.read(outdir).conductors
    assert len(conductors) == 2  # the killed one, and one resumed


def wait_until_ended(outdir: Path, timeout: float = 180) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if statuses(outdir) == dict.fromkeys(STEPS, "FINISHED"):
            holder = journals.heartbeat(outdir)
            if holder and not _alive(int(holder["pid"])):
                return
        time.sleep(0.3)
    raise AssertionError(f"the study did not end: {statuses(outdir)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


@pytest.mark.every_version
def test_a_broker_gone_at_resume_is_named_and_nothing_starts(flux_mode, tmp_path):
    (tmp_path / "broker").mkdir()
    private = start_broker(flux_mode.param, tmp_path / "broker")
    env = study_env(flux_mode, FLUX_URI=private.uri)
    outdir = tmp_path / "study"
    done = injected("kill:journaled", "maestro", ["run", "-fg", "-y", "-s", "1", "-o",
                                                  str(outdir), str(SPEC)], env, tmp_path, "last")
    assert done.returncode == -9, done.stderr[-2000:]
    before = journal_text(outdir)
    stop_broker(private)
    wait_gone(private.uri)  # a real broker shuts down after flux start has exited
    for args in ((), ("-fg",)):
        gone = subprocess.run([str(BIN / "maestro-flux"), "resume", str(outdir), *args],
                              env=env, text=True, capture_output=True, timeout=120)
        assert gone.returncode == 1 and gone.stdout == "", gone.stdout + gone.stderr
        assert len(gone.stderr.splitlines()) == 1, gone.stderr
        assert private.uri in gone.stderr and "nothing was resumed" in gone.stderr
    assert journal_text(outdir) == before  # nothing was submitted, nothing journaled
    assert not (outdir / journals.FOLDER / "resume.out").exists()


def wait_gone(uri: str, timeout: float = 60) -> None:
    from maestro_flux.broker import bindings

    end = time.time() + timeout
    while time.time() < end:
        try:
            bindings.connect(uri).attr_get("rank")
        except OSError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the broker at {uri} is still answering")


def test_a_resumed_study_submits_with_the_environment_it_was_started_with(flux_mode, tmp_path):
    env = study_env(flux_mode, MAESTRO_FLUX_TEST_MARK="started",
                    MAESTRO_FLUX_TEST_TOKEN="s3cret-value")
    outdir = tmp_path / "study"
    spec = tmp_path / "resume_chain.yaml"  # its last step says what its environment held
    spec.write_text(SPEC.read_text().replace(
        "        echo run >> ran\n      depends: [gather]",
        "        echo run >> ran\n        echo \"mark=$MAESTRO_FLUX_TEST_MARK "
        "new=${MAESTRO_FLUX_TEST_NEW:-unset}\" > seen\n      depends: [gather]"))
    # killed in the first cycle, before 'gather' and 'last' were sent: the resumed
    # conductor submits them
    done = injected("kill:accepted", "maestro", ["run", "-fg", "-y", "-s", "1", "-o",
                                                 str(outdir), str(spec)], env, tmp_path,
                    "sweep_*")
    assert done.returncode == -9, done.stderr[-2000:]
    here = {**env, "MAESTRO_FLUX_TEST_MARK": "resumed", "MAESTRO_FLUX_TEST_NEW": "1"}
    resumed = resume_fg(outdir, here)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    said = [line for line in resumed.stdout.splitlines() if "this shell's differs" in line]
    assert len(said) == 1 and "MAESTRO_FLUX_TEST_MARK" in said[0] and \
        "MAESTRO_FLUX_TEST_NEW" in said[0]
    assert_ran_once(outdir)
    intents = [s for s in journals.read(outdir).sent.values() if s.step == "last"]
    assert len(intents) == 1 and intents[0].jobid  # submitted once, by the resumed conductor
    assert (outdir / "last" / "seen").read_text() == "mark=started new=unset\n"
    assert "s3cret-value" not in journal_text(outdir)  # no secret is written to disk


RESTARTED = """description: {name: restarted, description: a step restarted after a timeout}
batch: {type: flux}
study:
  - name: slow
    description: Times out; its restart times out too (a second one would finish).
    run:
      cmd: |
        echo slow >> ran
        sleep 30
      restart: |
        echo slow.restart >> ran
        if [ ! -f restarted ]; then touch restarted; sleep 30; fi
      walltime: "00:00:02"
"""


def test_the_restart_limit_holds_across_a_resume(flux_mode, tmp_path):
    """The conductor restarts 'slow' after its timeout and is killed before the cycle's
    pickle: the resumed one knows the restart from the journal, so under -r 1 the
    restart's own timeout fails the step, as in an undisturbed run, instead of
    restarting it a second time."""
    spec = tmp_path / "restarted.yaml"
    spec.write_text(RESTARTED)
    env = study_env(flux_mode, MAESTRO_FLUX_INJECT_NTH="2")  # the restart's submission
    outdir = tmp_path / "study"
    done = injected("kill:journaled", "maestro", ["run", "-fg", "-y", "-s", "1", "-r", "1",
                                                  "-o", str(outdir), str(spec)], env, tmp_path,
                    "slow")
    assert done.returncode == -9, done.stdout[-2000:] + done.stderr[-2000:]
    replay = journals.read(outdir)
    assert len(replay.sent) == 2 and replay.restarts == {"slow": 1}
    resumed = resume_fg(outdir, study_env(flux_mode))
    assert resumed.returncode == 2, resumed.stdout[-2000:] + resumed.stderr[-2000:]  # FAILURE
    assert statuses(outdir) == {"slow": "FAILED"}
    ran = (outdir / "slow" / "ran").read_text().split()
    assert ran == ["slow", "slow.restart"]
