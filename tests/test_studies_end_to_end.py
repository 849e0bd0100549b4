"""Whole studies through the real ``maestro`` and ``conductor`` entry points."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from brokers import ROOT, TESTS

from maestro_flux.broker import bindings

pytestmark = pytest.mark.e2e

#: Examples that need more than the session broker (``# needs:`` on their first line) have
#: their own tests (tests/test_gpu_example.py).
SPECS = sorted(s for s in (ROOT / "specs").glob("*.yaml")
               if not s.read_text().startswith("# needs:"))
BIN = Path(sys.executable).parent


def study_env(flux_mode, **extra) -> dict:
    env = {**os.environ, **flux_mode.env, **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def maestro(args, env, cwd, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maestro"), *args], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def statuses(outdir: Path) -> dict[str, str]:
    with open(outdir / "status.csv") as handle:
        return {row["Step Name"]: row["State"] for row in csv.DictReader(handle)}


def state_of(outdir: Path, step: str) -> str | None:
    """A step's state, or None before the conductor has written status.csv."""
    if not (outdir / "status.csv").exists():
        return None
    return statuses(outdir).get(step)


def run_fg(spec: Path, flux_mode, tmp_path, **env_extra) -> tuple[subprocess.CompletedProcess,
                                                                  dict]:
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)],
                   study_env(flux_mode, **env_extra), tmp_path)
    return done, statuses(outdir)


def with_uri(spec: Path, uri: str, tmp_path: Path) -> Path:
    """A copy of ``spec`` whose batch block names ``uri`` (the examples name a demo broker)."""
    text = re.sub(r"(?m)^(  flux_uri:) .*$", rf"\1 {uri}", spec.read_text())
    copy = tmp_path / spec.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_every_example_study_finishes(flux_mode, tmp_path, spec):
    example_finishes(spec, flux_mode, tmp_path)


def example_finishes(spec: Path, mode, tmp_path: Path) -> None:
    """An example study runs to FINISHED on ``mode``'s broker (one naming a flux_uri is
    pointed at it, and FLUX_URI elsewhere, to show the batch key wins)."""
    extra = {}
    if "flux_uri:" in spec.read_text():
        spec = with_uri(spec, mode.uri, tmp_path)
        extra["FLUX_URI"] = f"local://{tmp_path}/not-this-one/local-0"
    done, states = run_fg(spec, mode, tmp_path, **extra)
    assert done.returncode == 0, done.stderr[-2000:]
    assert states and set(states.values()) == {"FINISHED"}, states


def test_a_failing_step_fails_and_its_dependents_too(flux_mode, tmp_path):
    done, states = run_fg(TESTS / "specs" / "failing.yaml", flux_mode, tmp_path)
    assert states == {"fails": "FAILED", "after": "FAILED"}
    assert done.returncode != 0


def test_a_step_past_its_walltime_is_timedout(flux_mode, tmp_path):
    _, states = run_fg(TESTS / "specs" / "timeout.yaml", flux_mode, tmp_path)
    assert states == {"slow": "TIMEDOUT"}


def test_background_conductor_uses_maestro_flux_and_maestro_cancel_cancels(flux_mode, tmp_path):
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    spec = TESTS / "specs" / "long.yaml"
    launched = maestro(["run", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert launched.returncode == 0, launched.stderr
    end = time.time() + 120
    while time.time() < end and state_of(outdir, "sleeper") != "RUNNING":
        time.sleep(0.5)
    assert state_of(outdir, "sleeper") == "RUNNING"
    log = (outdir / "logs" / "long.log").read_text()
    assert "maestro-flux: submitting to" in log  # the conductor process used our adapter
    # ...and its first cycle, which submits every root step, already sent them together.
    assert "maestro-flux: 1 step(s) sent together this cycle" in log
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    while time.time() < end and state_of(outdir, "sleeper") != "CANCELLED":
        time.sleep(0.5)
    assert state_of(outdir, "sleeper") == "CANCELLED"


def test_dry_run_needs_no_broker_and_no_bindings(tmp_path):
    env = dict(os.environ, MAESTRO_FLUX_BINDINGS="no_such_bindings_module",
               FLUX_URI=f"local://{tmp_path}/none/local-0")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    outdir = tmp_path / "dry"
    spec = str(ROOT / "specs" / "hello_world.yaml")
    done = maestro(["run", "--dry", "-fg", "-y", "-o", str(outdir), spec],
                   env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scripts = list(outdir.glob("say_hello/*/*.flux.sh"))
    assert len(scripts) == 3
    assert "#flux: --time-limit=60s" in scripts[0].read_text()
    assert set(statuses(outdir).values()) == {"DRYRUN"}


def test_real_entry_points_resolve_type_flux_to_maestro_flux():
    code = ("from maestrowf.interfaces import ScriptAdapterFactory as F;"
            "print(F.get_adapter('flux').__module__, F.get_adapter('flux-builtin').__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["maestro_flux.maestro.adapter",
                                   "maestrowf.interfaces.script.fluxscriptadapter"]
    assert shutil.which("conductor", path=str(BIN))


def test_a_graph_is_in_flux_after_one_cycle_and_ends_within_about_one_more(flux_mode,
                                                                           tmp_path):
    """Four levels (a sweep, its funnel, a chain of two) under a 15 s conductor sleep:
    Flux runs every level while the conductor sleeps, and each step has one job."""
    outdir = tmp_path / "study"
    spec = ROOT / "specs" / "sweep_funnel_chain.yaml"
    done = maestro(["run", "-fg", "-y", "-s", "15", "-o", str(outdir), str(spec)],
                   study_env(flux_mode), tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    states = statuses(outdir)
    assert len(states) == 7 and set(states.values()) == {"FINISHED"}, states
    log = done.stdout + done.stderr  # a foreground conductor logs to the terminal
    assert "maestro-flux: 3 step(s) sent ahead" in log  # gather, fit, report
    cycles = log.count("Checking DAG status at")
    assert cycles <= 2, f"{cycles} conductor cycles for 4 levels"
    with open(outdir / "status.csv") as handle:
        ids = [row["Job ID"] for row in csv.DictReader(handle)]
    assert len(set(ids)) == 7  # one job per step


def test_maestro_cancel_leaves_no_job_waiting_in_flux(flux_mode, tmp_path):
    """The chain after a running step waits in Flux; `maestro cancel` cancels it too."""
    env = study_env(flux_mode)
    outdir = tmp_path / "study"
    spec = TESTS / "specs" / "long_chain.yaml"
    launched = maestro(["run", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert launched.returncode == 0, launched.stderr
    handle = bindings.connect(flux_mode.uri)
    end = time.time() + 120
    waiting = []
    while time.time() < end and len(waiting) < 2:
        waiting = [e for e in study_jobs(handle, outdir) if e["state"] == 2]  # DEPEND
        time.sleep(0.5)
    assert len(waiting) == 2, "the chain was not sent ahead"
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    while time.time() < end and state_of(outdir, "sleeper") != "CANCELLED":
        time.sleep(0.5)
    assert statuses(outdir) == dict.fromkeys(("sleeper", "after_sleeper", "last"), "CANCELLED")
    while time.time() < end and any(e["state"] != 64 for e in study_jobs(handle, outdir)):
        time.sleep(0.5)
    assert [e for e in study_jobs(handle, outdir) if e["state"] != 64] == []
    assert not list(outdir.glob("*/ran"))


def study_jobs(handle, outdir: Path) -> list[dict]:
    """The broker's jobs of the study's steps, submitted since the study began."""
    jobs = bindings.bindings().job.job_list(handle, max_entries=0, attrs=["all"]).get_jobs()
    names = {"sleeper", "after_sleeper", "last"}
    return [e for e in jobs if e.get("name") in names and e["t_submit"] >= started(outdir)]


def started(outdir: Path) -> float:
    return (outdir / "batch.info").stat().st_mtime - 1
