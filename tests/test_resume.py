"""A study outlives its conductor (issue 18): ``maestro-flux resume`` takes it up again
from its directory and the broker, with every step run exactly once.

Whole studies through the real ``maestro`` and ``conductor`` entry points; the
conductor is SIGKILLed while jobs run, and, in a conductor whose cycle is cut
short by a kill between the broker's answers and their recording, while a cycle
is submitting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import TESTS
from test_studies_end_to_end import BIN, maestro, state_of, statuses, study_env

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro import gate
from maestro_flux.maestro import journal as journals
from maestro_flux.maestro import resume as maestro_resume
from maestro_flux.model import jobids
from maestro_flux.model.errors import MaestroFluxError

pytestmark = pytest.mark.e2e
SPEC = TESTS / "specs" / "resume_chain.yaml"
STEPS = {"first", "sweep_N.1", "sweep_N.2", "sweep_N.3", "gather", "last"}


def resume(outdir: Path, env: dict, *args: str, timeout: float = 180):
    return subprocess.run([str(BIN / "maestro-flux"), "resume", str(outdir), *args], env=env,
                          text=True, capture_output=True, timeout=timeout)


def heartbeat_pid(outdir: Path, timeout: float = 60) -> int:
    end = time.time() + timeout
    while time.time() < end:
        beat = journals.heartbeat(outdir)
        if beat:
            return int(beat["pid"])
        time.sleep(0.2)
    raise AssertionError("the conductor never beat")


def wait_until(check, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def runs(outdir: Path) -> dict[str, int]:
    """How many times each step ran (each appends a line to its workspace's 'ran')."""
    found = {}
    for ran in outdir.glob("**/ran"):
        name = ran.parent.name if ran.parent.parent == outdir else ran.parent.name
        found[name] = len(ran.read_text().splitlines())
    return found


def held_first(tmp_path: Path) -> tuple[Path, Path]:
    """The spec with 'first' running until the test creates the returned file (not a
    fixed sleep: on a loaded machine the study could end before the test acts)."""
    release = tmp_path / "release-first"
    text = SPEC.read_text().replace(
        "sleep 4", f"until [ -e {release} ]; do sleep 0.1; done")
    assert str(release) in text
    spec = tmp_path / SPEC.name
    spec.write_text(text)
    return spec, release


def started_in_background(flux_mode, tmp_path, spec: Path = SPEC) -> tuple[Path, dict]:
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    launched = maestro(["run", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert launched.returncode == 0, launched.stderr
    return outdir, env


def assert_ran_once(outdir: Path) -> None:
    assert statuses(outdir) == dict.fromkeys(STEPS, "FINISHED")
    ran = runs(outdir)
    assert ran == dict.fromkeys(ran, 1) and len(ran) == len(STEPS), ran


def test_a_study_whose_conductor_is_killed_while_jobs_run_finishes_after_resume(
        flux_mode, tmp_path):
    spec, release = held_first(tmp_path)
    outdir, env = started_in_background(flux_mode, tmp_path, spec)
    pid = heartbeat_pid(outdir)
    # 'first' runs, the sweep is done or running, gather and last wait in Flux
    wait_until(lambda: state_of(outdir, "first") == "RUNNING")
    wait_until(lambda: len([s for s in journals.read(outdir).sent.values()
                            if s.kind == "ahead" and s.jobid]) == 2)
    os.kill(pid, signal.SIGKILL)
    release.touch()
    done = resume(outdir, env, "-fg")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    said = [line for line in done.stdout.splitlines() if "resuming" in line]
    assert len(said) == 1 and "job(s) in Flux kept" in said[0]
    assert_ran_once(outdir)
    # maestro status reads the resumed study
    status = maestro(["status", str(outdir)], {**env, "COLUMNS": "300"}, tmp_path)
    assert status.returncode == 0 and status.stdout.count("FINISHED") == len(STEPS)


KILL_MID_CYCLE = """
import os, signal, sys
from maestro_flux.maestro.submissions import Submissions
cut = Submissions.close_cycle
def killed(self, graph):
    if any(p.step == "gather" or p.step.startswith("sweep") for p in self.in_cycle or ()):
        os.kill(os.getpid(), signal.SIGKILL)  # the broker has the jobs; nothing recorded
    return cut(self, graph)
Submissions.close_cycle = killed
sys.argv = ["maestro", *sys.argv[1:]]
from maestrowf.maestro import main
sys.exit(main())
"""


def test_a_conductor_killed_while_a_cycle_submits_loses_no_job(flux_mode, tmp_path):
    """The first cycle sends its jobs and is killed before recording any id: resume
    finds in Flux, by their token, every one the broker accepted (a request still in
    flight when the process died may never have arrived: that step is submitted when
    ready), and no step runs twice."""
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    started = time.time()
    done = subprocess.run([sys.executable, "-c", KILL_MID_CYCLE, "run", "-fg", "-y", "-s", "1",
                           "-o", str(outdir), str(SPEC)], env=env, cwd=tmp_path, text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    before = journals.read(outdir).unanswered()
    unanswered = {sent.step for sent in before}
    assert unanswered, "the kill came after the ids were journaled"
    time.sleep(1)  # let the broker list what reached it before the kill
    accepted = len([entry for entry in all_jobs(flux_mode.uri, started)
                    if entry.get("name") in unanswered])
    assert accepted >= 1, "no job reached the broker before the kill"
    resumed = resume(outdir, env, "-fg")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"({accepted} found by their token)" in resumed.stdout
    # every open submission is closed: what was found as submitted (never searched
    # again), what never arrived as abandoned
    after = journals.read(outdir)
    closed = [after.sent[sent.token] for sent in before]
    assert sorted(s.closed for s in closed) == sorted(
        ["submitted"] * accepted + ["abandoned"] * (len(before) - accepted))
    assert all(s.jobid for s in closed if s.closed == "submitted")
    assert after.unanswered() == []
    assert_ran_once(outdir)


def all_jobs(uri: str, since: float) -> list[dict]:
    """This user's jobs in the broker submitted since ``since``, with their names (the
    broker serves the whole session: other tests ran studies of the same spec)."""
    handle = bindings.connect(uri)
    jobs = bindings.bindings().job.job_list(handle, max_entries=0,
                                            attrs=["name", "t_submit"]).get_jobs()
    return [entry for entry in jobs if entry["t_submit"] >= since]


def test_resume_refuses_with_one_line(flux_mode, tmp_path):
    env = study_env(flux_mode)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, words, code in ((empty, "holds no Maestro study", 1),
                                (tmp_path / "missing", "holds no Maestro study", 1)):
        done = resume(folder, env)
        assert done.returncode == code and done.stdout == ""
        assert len(done.stderr.splitlines()) == 1 and words in done.stderr
    spec, release = held_first(tmp_path)
    outdir, env = started_in_background(flux_mode, tmp_path, spec)
    heartbeat_pid(outdir)
    alive = resume(outdir, env)
    assert alive.returncode == 1 and len(alive.stderr.splitlines()) == 1
    assert "its conductor is still running" in alive.stderr
    release.touch()
    wait_until(lambda: state_of(outdir, "last") == "FINISHED")
    wait_until(lambda: not _conductor_alive(outdir))
    finished = resume(outdir, env)
    assert finished.returncode == 0 and len(finished.stdout.splitlines()) == 1
    assert "the study has ended (FINISHED); nothing to resume" in finished.stdout
    assert_ran_once(outdir)


def test_resume_refuses_a_study_of_another_adapter(flux_mode, tmp_path):
    env = study_env(flux_mode)
    spec = tmp_path / "local.yaml"
    spec.write_text("description: {name: local_one, description: a local study}\n"
                    "batch: {type: local}\n"
                    "study:\n  - name: one\n    description: one\n    run: {cmd: 'true'}\n")
    outdir = tmp_path / "study"
    assert maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env,
                   tmp_path).returncode == 0
    done = resume(outdir, env)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1
    assert "a study of the 'local' adapter" in done.stderr


def _conductor_alive(outdir: Path) -> bool:
    beat = json.loads((outdir / journals.FOLDER / journals.HEARTBEAT).read_text())
    try:
        os.kill(int(beat["pid"]), 0)
    except OSError:
        return False
    return True


def test_maestro_cancel_works_on_a_resumed_study(flux_mode, tmp_path):
    """Resumed in the background, the study answers `maestro cancel` as before: its
    jobs, those waiting in Flux included, are canceled and none is left."""
    spec, _ = held_first(tmp_path)  # 'first' runs until the cancel: never released
    outdir, env = started_in_background(flux_mode, tmp_path, spec)
    os.kill(heartbeat_pid(outdir), signal.SIGKILL)
    done = resume(outdir, env)  # in the background, as maestro run starts its conductor
    assert done.returncode == 0 and "in the background" in done.stdout, done.stderr
    wait_until(lambda: len(journals.read(outdir).conductors) == 2)  # the resumed one runs
    assert maestro(["cancel", "-y", str(outdir)], env, outdir).returncode == 0
    wait_until(lambda: state_of(outdir, "last") == "CANCELLED")
    handle = bindings.connect(flux_mode.uri)
    ids = {jobids.parse_jobid(s.jobid) for s in journals.read(outdir).sent.values() if s.jobid}
    wait_until(lambda: all(e["state"] == 64 for e in listing.list_jobs(handle)
                           if e["id"] in ids))
    assert state_of(outdir, "first") == "CANCELLED" and "first" not in runs(outdir)


def test_resume_refuses_a_maestro_outside_the_tested_versions(monkeypatch, tmp_path):
    (tmp_path / "batch.info").write_text("type: flux\n")
    monkeypatch.setattr(gate, "why_off", lambda: "maestrowf 9.9.9 is not a version "
                                                     "it was tested with (1.2.0, 1.2.1)")
    with pytest.raises(MaestroFluxError, match=r"cannot resume .*: the cycle pipeline is off "
                                               r"\(maestrowf 9.9.9 is not a version"):
        maestro_resume.load(str(tmp_path))
