"""Steering a study in place (issue 26): ``maestro-flux retry`` runs again what failed
(or the steps named, and all below them), ``maestro-flux cancel`` stops chosen steps
while the rest goes on; each exactly once, resumable, refused in one line where it
cannot be done. Whole studies through the real ``maestro`` and ``maestro-flux``
commands; every run of every step writes a line, so runs are counted, not guessed."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import TESTS, start_broker, stop_broker
from helpers import wait_until
from test_studies_end_to_end import BIN, maestro, statuses, study_env

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro import journal as journals
from maestro_flux.model import jobids

pytestmark = pytest.mark.e2e
INJECT = TESTS / "inject.py"

BRANCHES = """description: {name: branches, description: a failing branch beside a good one}
batch: {type: flux}
study:
  - name: a
    description: the root
    run: {cmd: echo a >> ran}
  - name: b
    description: fails until the test fixes what it reads
    run:
      cmd: |
        echo b >> ran
        test -f %(fixed)s
      depends: [a]
  - name: c
    description: below b
    run: {cmd: echo c >> ran, depends: [b]}
  - name: d
    description: beside b
    run: {cmd: echo d >> ran, depends: [a]}
"""


def write_spec(tmp_path: Path) -> tuple[Path, Path]:
    fixed = tmp_path / "fixed"
    spec = tmp_path / "branches.yaml"
    spec.write_text(BRANCHES % {"fixed": fixed})
    return spec, fixed


def runs(outdir: Path) -> dict[str, int]:
    count: collections.Counter = collections.Counter()
    for ran in outdir.rglob("ran"):
        count.update(line.strip() for line in ran.read_text().splitlines() if line.strip())
    return dict(count)


def mf(args: list[str], env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maestro-flux"), *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def failed_study(flux_mode, tmp_path) -> tuple[Path, Path, dict]:
    spec, fixed = write_spec(tmp_path)
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]  # FAILURE
    assert statuses(outdir) == {"a": "FINISHED", "b": "FAILED", "c": "FAILED", "d": "FINISHED"}
    assert runs(outdir) == {"a": 1, "b": 1, "d": 1}
    return outdir, fixed, env


def test_a_failed_branch_fixed_and_retried_runs_that_branch_only(flux_mode, tmp_path):
    outdir, fixed, env = failed_study(flux_mode, tmp_path)
    fixed.touch()  # what b reads is fixed; the spec is not read again
    done = mf(["retry", str(outdir), "-fg", "-s", "1"], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 step(s) to run again: b, c" in done.stdout
    assert set(statuses(outdir).values()) == {"FINISHED"}
    assert runs(outdir) == {"a": 1, "b": 2, "c": 1, "d": 1}  # b: one run per attempt
    replay = journals.read(outdir)
    assert replay.attempts == {"b": 2, "c": 2}
    b_jobs = [s for s in replay.sent.values() if s.step == "b" and s.jobid]
    assert [s.attempt for s in b_jobs] == [1, 2]
    assert identity_of(flux_mode, b_jobs[-1].jobid)["attempt"] == 2
    again = mf(["retry", str(outdir), "-fg"], env)  # nothing failed now: nothing runs
    assert again.returncode == 0 and "nothing to retry" in again.stdout
    assert runs(outdir) == {"a": 1, "b": 2, "c": 1, "d": 1}


def identity_of(flux_mode, jobid: str) -> dict:
    handle = bindings.connect(flux_mode.uri)
    answer = handle.rpc("job-info.lookup", {"id": jobids.parse_jobid(jobid),
                                            "keys": ["jobspec"], "flags": 0}).get()
    jobspec = answer["jobspec"]
    jobspec = json.loads(jobspec) if isinstance(jobspec, str) else jobspec
    return jobspec["attributes"]["user"]["maestro_flux"]


def test_dry_lists_what_would_run_and_submits_nothing(flux_mode, tmp_path):
    outdir, _, env = failed_study(flux_mode, tmp_path)
    before = (outdir / journals.FOLDER / journals.JOURNAL).read_text()
    done = mf(["retry", str(outdir), "--dry"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == ["  b  FAILED, attempt 2", "  c  FAILED, attempt 2"]
    assert (outdir / journals.FOLDER / journals.JOURNAL).read_text() == before
    assert statuses(outdir)["b"] == "FAILED"


SWEEP = """description: {name: sweep, description: a sweep and a funnel}
batch: {type: flux}
study:
  - name: s
    description: the sweep
    run: {cmd: echo s.$(N) >> ran}
  - name: f
    description: the funnel
    run: {cmd: echo f >> ran, depends: [s_*]}
global.parameters:
  N: {values: [1, 2, 3], label: N.%%}
"""


def test_a_named_glob_runs_again_with_the_funnel_below_it(flux_mode, tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP)
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    assert maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 0
    refused = mf(["retry", str(outdir), "s_*"], env)
    assert refused.returncode == 1 and len(refused.stderr.splitlines()) == 1
    assert "step 's_N.1' FINISHED; --force runs it again" in refused.stderr
    done = mf(["retry", str(outdir), "s_N.2", "--force", "-fg", "-s", "1"], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert runs(outdir) == {"s.1": 1, "s.2": 2, "s.3": 1, "f": 2}
    done = mf(["retry", str(outdir), "s", "--force", "-fg", "-s", "1"], env)  # the study step
    assert done.returncode == 0, done.stderr[-2000:]
    assert runs(outdir) == {"s.1": 2, "s.2": 3, "s.3": 2, "f": 3}
    assert set(statuses(outdir).values()) == {"FINISHED"}


TWO_BRANCHES = """description: {name: twobranches, description: one branch canceled}
batch: {type: flux}
study:
  - name: a
    description: the root
    run: {cmd: echo a >> ran}
  - name: slow
    description: canceled while it runs
    run: {cmd: echo slow >> ran; sleep 120, depends: [a]}
  - name: below_slow
    description: never runs
    run: {cmd: echo below_slow >> ran, depends: [slow]}
  - name: other
    description: goes on
    run: {cmd: echo other >> ran; sleep 4, depends: [a]}
  - name: below_other
    description: goes on
    run: {cmd: echo below_other >> ran, depends: [other]}
"""


def running_branches(flux_mode, tmp_path) -> tuple[Path, dict]:
    """The two-branch study started in the background, its 'slow' step running."""
    spec = tmp_path / "two.yaml"
    spec.write_text(TWO_BRANCHES)
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    assert maestro(["run", "-y", "-s", "600", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 0
    wait_until(lambda: (outdir / "status.csv").exists()
               and statuses(outdir).get("slow") == "RUNNING", what="slow to run")
    return outdir, env


def test_cancel_of_one_branch_lets_the_rest_go_on(flux_mode, tmp_path):
    outdir, env = running_branches(flux_mode, tmp_path)
    done = mf(["cancel", str(outdir), "slow"], env)
    assert done.returncode == 0, done.stderr
    assert "canceled 2 step(s): slow, below_slow" in done.stdout
    wait_until(lambda: statuses(outdir)["below_other"] == "FINISHED", what="the rest")
    assert statuses(outdir) == {"a": "FINISHED", "slow": "CANCELLED",
                                "below_slow": "CANCELLED", "other": "FINISHED",
                                "below_other": "FINISHED"}
    assert runs(outdir) == {"a": 1, "slow": 1, "other": 1, "below_other": 1}
    ids = {jobids.parse_jobid(s.jobid) for s in journals.read(outdir).sent.values()
           if s.jobid and s.step in ("slow", "below_slow")}
    handle = bindings.connect(flux_mode.uri)
    wait_until(lambda: all(e["state"] == 64 for e in listing.list_jobs(handle)
                           if e["id"] in ids), timeout=30, what="their jobs inactive")
    assert ids  # slow's job, and below_slow's sent ahead


def test_a_retry_killed_then_resumed_ends_as_an_undisturbed_retry(flux_mode, tmp_path):
    outdir, fixed, env = failed_study(flux_mode, tmp_path)
    fixed.touch()
    killed = subprocess.run([sys.executable, str(INJECT), "kill:journaled", "maestro-flux",
                             "retry", str(outdir), "-fg", "-s", "1"],
                            env={**env, "MAESTRO_FLUX_INJECT_STEP": "c"}, text=True,
                            capture_output=True, timeout=240)
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-2000:]
    done = mf(["resume", str(outdir), "-fg"], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert set(statuses(outdir).values()) == {"FINISHED"}
    assert runs(outdir) == {"a": 1, "b": 2, "c": 1, "d": 1}


def test_steering_refuses_in_one_line(flux_mode, tmp_path):
    outdir, _, env = failed_study(flux_mode, tmp_path)
    cases = [
        (["retry", str(outdir), "bb"], "no step 'bb' in the study (did you mean 'b'?)"),
        (["retry", str(outdir), "a"], "step 'a' FINISHED; --force runs it again"),
        (["cancel", str(outdir), "b"], "has ended (FAILURE); nothing to cancel"),
        (["retry", str(tmp_path / "nowhere")], "holds no Maestro study"),
    ]
    for args, words in cases:
        done = mf(args, env)
        assert done.returncode == 1 and done.stdout == "", (args, done.stdout)
        assert len(done.stderr.splitlines()) == 1 and words in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert statuses(outdir)["b"] == "FAILED"  # nothing changed


def test_retry_refuses_a_live_conductor_and_cancel_a_dead_one(flux_mode, tmp_path):
    outdir, env = running_branches(flux_mode, tmp_path)
    live = mf(["retry", str(outdir), "slow"], env)
    assert live.returncode == 1 and "its conductor is still running (pid" in live.stderr
    beat = journals.heartbeat(outdir)
    os.kill(int(beat["pid"]), signal.SIGKILL)
    time.sleep(0.5)
    dead = mf(["cancel", str(outdir), "slow"], env)
    assert dead.returncode == 1 and len(dead.stderr.splitlines()) == 1
    assert "no conductor drives twobranches, so nothing was canceled" in dead.stderr
    assert not list((outdir / journals.FOLDER / "requests").glob("cancel-*"))
    mf(["resume", str(outdir)], env)  # taken up again, then canceled as a whole
    wait_until(lambda: len(journals.read(outdir).conductors) == 2, what="the resume")
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    wait_until(lambda: "RUNNING" not in statuses(outdir).values(), what="the cancel")


def test_retry_refuses_a_broker_that_is_gone(flux_mode, tmp_path):
    (tmp_path / "broker").mkdir()
    private = start_broker(flux_mode.param, tmp_path / "broker")
    spec, _ = write_spec(tmp_path)
    env = study_env(flux_mode, FLUX_URI=private.uri)
    outdir = tmp_path / "study"
    assert maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 2
    stop_broker(private)
    from test_exactly_once import wait_gone
    wait_gone(private.uri)
    done = mf(["retry", str(outdir)], env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert private.uri in done.stderr and "nothing was resumed" in done.stderr
    assert statuses(outdir)["b"] == "FAILED"
