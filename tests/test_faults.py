"""Faults, whole studies through the real maestro/conductor, in both modes:
the broker killed mid-study, refused submissions beside good ones, a mix of
good and bad ids, and ``maestro cancel`` while submissions are in flight.
Each study gets a private broker so that killing it spares the session's."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from brokers import start_broker, stop_broker
from helpers import make_step, wait_for
from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State
from test_studies_end_to_end import maestro, state_of, study_env

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.model.states import STATE_NAMES

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_broker(flux_mode, tmp_path):
    (tmp_path / "broker").mkdir()
    # Three nodes: the tests run three one-core jobs at once, which node-exclusive
    # matching (Fluxion's lonodex, tests/flux-config/production/scheduling.toml) gives a node each.
    mode = start_broker(flux_mode.param, tmp_path / "broker", size=3)
    yield mode
    if mode.process.poll() is None:  # a test may have killed it already
        stop_broker(mode)


@pytest.fixture
def outdir(tmp_path):
    """The study directory; a conductor left running by a failed test is stopped by pid."""
    path = tmp_path / "study"
    yield path
    for pid in conductor_pids(path):
        os.kill(pid, signal.SIGTERM)


def spec_file(tmp_path: Path, uri: str, steps: dict[str, str], batch: str = "") -> Path:
    body = "".join(f"  - name: {name}\n    description: {name}\n    run:\n      cmd: {cmd}\n"
                   for name, cmd in steps.items())
    spec = tmp_path / "fault.yaml"
    spec.write_text(f"description:\n  name: fault\n  description: fault test\n"
                    f"batch:\n  type: flux\n  flux_uri: {uri}\n{batch}study:\n{body}")
    return spec


def rows(outdir: Path) -> dict[str, dict]:
    with open(outdir / "status.csv") as handle:
        return {row["Step Name"]: row for row in csv.DictReader(handle)}


def wait_until(predicate, timeout: float = 120, what: str = "condition") -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def conductor_pids(outdir: Path) -> list[int]:
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True,
                        text=True).stdout
    return [int(line.split()[0]) for line in ps.splitlines()
            if "conductor" in line and str(outdir) in line]


def conductor_alive(outdir: Path) -> bool:
    return bool(conductor_pids(outdir))


def launch(spec: Path, flux_mode, tmp_path: Path, outdir: Path) -> Path:
    done = maestro(["run", "-y", "-s", "1", "-o", str(outdir), str(spec)], study_env(flux_mode),
                   tmp_path)
    assert done.returncode == 0, done.stderr
    return outdir


def test_a_killed_broker_leaves_the_conductor_running_with_every_job_id(
        flux_mode, private_broker, tmp_path, outdir):
    steps = {f"sleeper{i}": "sleep 60" for i in range(3)}
    launch(spec_file(tmp_path, private_broker.uri, steps), flux_mode, tmp_path, outdir)
    wait_until(lambda: all(state_of(outdir, s) == "RUNNING" for s in steps), what="RUNNING")
    before = {name: row["Job ID"] for name, row in rows(outdir).items()}
    # SIGKILL: the broker vanishes without the orderly shutdown SIGTERM gives,
    # in which a real broker cancels its jobs and answers one last poll.
    os.killpg(private_broker.process.pid, signal.SIGKILL)
    private_broker.process.wait(timeout=30)
    log = outdir / "logs" / "fault.log"
    wait_until(lambda: "is unreachable" in log.read_text(), what="the outage in the log")
    time.sleep(4)  # several conductor cycles without a broker
    assert conductor_alive(outdir)
    after = rows(outdir)
    assert {name: row["Job ID"] for name, row in after.items()} == before
    assert {row["State"] for row in after.values()} == {"RUNNING"}  # kept, not guessed
    assert maestro(["cancel", "-y", str(outdir)], study_env(flux_mode), tmp_path).returncode == 0
    wait_until(lambda: not conductor_alive(outdir), what="the conductor to stop after cancel")
    assert {name: row["Job ID"] for name, row in rows(outdir).items()} == before


def test_refused_submissions_fail_their_step_with_the_brokers_reason_only(
        flux_mode, private_broker, tmp_path):
    # portable: false submits the queue, so that the broker's own refusal is seen.
    batch = ("  portable: false\n  profiles:\n    badqueue: {queue: no-such-queue}\n"
             "    huge: {nodes: 64, nested: true}\n"
             "  steps: {\"bad*\": badqueue, \"huge*\": huge}\n")
    steps = {"good": "echo fine > fine.txt", "badq": "echo never", "hugestep": "echo never"}
    spec = spec_file(tmp_path, private_broker.uri, steps, batch)
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)],
                   study_env(flux_mode), tmp_path)
    states = {name: row["State"] for name, row in rows(outdir).items()}
    assert states == {"good": "FINISHED", "badq": "FAILED", "hugestep": "FAILED"}, done.stderr
    log = (outdir / "logs" / "fault.log").read_text() + done.stderr
    assert "step 'badq' was not submitted: Flux refused the job:" in log
    assert "queue" in log.split("step 'badq' was not submitted:")[1].splitlines()[0]
    # Fluxion's feasibility check refuses it at submission, in its own words.
    assert ("Unsatisfiable request" if flux_mode.scheduler == "fluxion" else "unsatisfiable") in log


def test_some_ids_good_some_unknown_some_malformed(flux_mode, tmp_path):
    adapter = FluxAdapter(type="flux")
    (tmp_path / "ws").mkdir()
    step = make_step(cmd="sleep 30")
    _, script, _ = adapter.write_script(str(tmp_path / "ws"), step)
    good = adapter.submit(step, script, str(tmp_path / "ws")).job_identifier
    assert wait_for(adapter, good, {State.RUNNING}) == State.RUNNING
    unknown, malformed = "f2222222", "not-an-id;rm -rf /"
    code, states = adapter.check_jobs([good, unknown, malformed])
    assert code == JobStatusCode.OK
    assert states == {good: State.RUNNING, unknown: State.UNKNOWN, malformed: State.UNKNOWN}
    record = adapter.cancel_jobs([good, unknown, malformed])
    assert record.cancel_status.name == "ERROR"
    assert record.lookup_status(CancelCode.OK) == {good}
    assert record.lookup_status(CancelCode.ERROR) == {unknown, malformed}
    assert wait_for(adapter, good) == State.CANCELLED


def test_cancel_while_submissions_are_in_flight_leaves_no_job_behind(
        flux_mode, private_broker, tmp_path, outdir):
    steps = {f"s{i:02d}": "sleep 60" for i in range(40)}
    launch(spec_file(tmp_path, private_broker.uri, steps), flux_mode, tmp_path, outdir)
    wait_until(lambda: (outdir / "status.csv").exists() and
               any(row["Job ID"] not in ("", "--") for row in rows(outdir).values()),
               what="the first submission")
    assert maestro(["cancel", "-y", str(outdir)], study_env(flux_mode), tmp_path).returncode == 0
    wait_until(lambda: not conductor_alive(outdir), timeout=180, what="the conductor to stop")
    handle = bindings.connect(private_broker.uri)

    def active() -> list:
        return [j for j in listing.list_jobs(handle) if STATE_NAMES[j["state"]] != "INACTIVE"]

    wait_until(lambda: not active(), timeout=60, what="every job to end")
    final = rows(outdir)
    submitted = {row["Job ID"] for row in final.values() if row["Job ID"] not in ("", "--")}
    ended = {j["id"] for j in listing.list_jobs(handle)}
    assert len(ended) == len(submitted)  # every job the broker got is one Maestro recorded
    assert {row["State"] for row in final.values()} <= {"CANCELLED", "INITIALIZED"}


def test_hostile_names_and_values_stay_data(flux_mode, tmp_path):
    """Step names and option values reach the job as data: the written header
    quotes them (flux's own directive parser reads back the exact text) and
    nothing in maestro-flux hands them to a shell."""
    from test_header_matches_jobspec import read_header

    name = "x$(touch PWNED1);`touch PWNED2`'\""
    note = "$(touch PWNED3) && touch PWNED4"
    adapter = FluxAdapter(type="flux", setattr={"user.note": note})
    workspace = tmp_path / "ws"
    workspace.mkdir()
    step = make_step(name=name, cmd="echo ok")
    _, script, _ = adapter.write_script(str(workspace), step)
    header = read_header(Path(script).read_text())
    assert header.job_name == name.replace(" ", "_")  # spaces would split Flux listings
    assert header.setattr == {"user.note": note}
    jobid = adapter.submit(step, script, str(workspace)).job_identifier
    assert wait_for(adapter, jobid) == State.FINISHED
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_a_study_moved_to_a_new_broker_resubmits_what_the_old_one_lost(
        flux_mode, private_broker, tmp_path, outdir):
    """The allocation ends (its broker is killed), a new one starts, and the user
    writes its URI into flux_uri_file: the lost steps run again there."""
    uri_file = tmp_path / "broker.uri"
    uri_file.write_text(private_broker.uri + "\n")
    once = f"test -e {tmp_path}/ran-$STEP || {{ touch {tmp_path}/ran-$STEP; sleep 60; }}"
    steps = {f"mover{i}": once.replace("$STEP", str(i)) for i in range(2)}
    spec = spec_file(tmp_path, "local:///nowhere/local-0", steps,
                     batch=f"  flux_uri_file: {uri_file}\n")
    launch(spec, flux_mode, tmp_path, outdir)
    wait_until(lambda: all(state_of(outdir, s) == "RUNNING" for s in steps), what="RUNNING")
    before = {name: row["Job ID"] for name, row in rows(outdir).items()}
    os.killpg(private_broker.process.pid, signal.SIGKILL)
    private_broker.process.wait(timeout=30)
    (tmp_path / "second").mkdir()
    second = start_broker(flux_mode.param, tmp_path / "second")
    try:
        uri_file.write_text(second.uri + "\n")
        wait_until(lambda: not conductor_alive(outdir), timeout=180, what="the study to end")
        final = rows(outdir)
        assert {row["State"] for row in final.values()} == {"FINISHED"}
        assert all(final[name]["Job ID"] != before[name] for name in steps)
        log = (outdir / "logs" / "fault.log").read_text()
        assert log.count("step resubmitted there") == 2
    finally:
        stop_broker(second)
