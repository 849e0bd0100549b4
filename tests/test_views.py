"""``maestro-flux status`` and ``report`` on whole studies run through the real
``maestro`` command and conductor (issue 27): a failing branch whose child's
dependency can never be met, a timeout and its restart, a node failure, a cancelled
study and a resumed one; every state and reason shown. The double and a real broker.
Bad input gets one line each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from brokers import TESTS
from test_resume import heartbeat_pid, resume
from test_studies_end_to_end import BIN, maestro, study_env

from maestro_flux.broker import bindings
from maestro_flux.model import jobids

pytestmark = pytest.mark.e2e
MIXED = TESTS / "specs" / "views_mixed.yaml"


def views(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maestro-flux"), *args], env={**env, "COLUMNS": "250"},
                          text=True, capture_output=True, timeout=timeout)


def status_json(outdir: Path, env: dict) -> dict:
    done = views(["status", "--json", str(outdir)], env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return json.loads(done.stdout)


def by_name(data: dict) -> dict[str, dict]:
    """Steps by name (none before the conductor has pickled the graph: an empty dict
    whose lookups answer {} so that waiting loops simply go on)."""
    return Steps({step["name"]: step for step in data["steps"]})


class Steps(dict):
    def __missing__(self, key):
        return {}


def wait_until(check, timeout: float = 120, every: float = 0.3):
    end = time.time() + timeout
    while time.time() < end:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("timed out")


def in_background(spec: Path, env: dict, tmp_path: Path, name: str = "study") -> Path:
    outdir = tmp_path / name
    launched = maestro(["run", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    assert launched.returncode == 0, launched.stderr
    return outdir


@pytest.fixture
def env(flux_mode):
    return study_env(flux_mode)


def test_a_failing_branch_a_never_met_dependency_and_a_restart_are_explained(env, tmp_path):
    outdir = tmp_path / "study"
    done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(MIXED)], env,
                   tmp_path)
    assert done.returncode != 0  # the study failed
    data = status_json(outdir, env)
    steps = by_name(data)
    assert data["ended"] and data["broker"] is None
    assert data["totals"] == {"done": 9, "failed": 2}
    failed = steps["sim_X.3"]
    assert (failed["maestro"], failed["flux"], failed["category"]) == \
        ("FAILED", "INACTIVE FAILED", "failed")
    assert failed["reason"] == "exit code 3; .err: sim 3: diverged at step 17"
    never = steps["post_X.3"]
    assert never["category"] == "failed" and never["maestro"] == "FAILED"
    assert never["reason"].startswith("a job it waited on did not succeed (dependency: ")
    assert failed["jobid"] in never["reason"] or "never started" in never["reason"] \
        or "can never be satisfied" in never["reason"]
    slow = steps["slow"]
    assert (slow["category"], slow["jobs"], slow["maestro"]) == ("done", 2, "FINISHED")
    assert steps["after_slow"]["category"] == "done"
    assert {s["level"] for s in data["steps"]} == {0, 1, 2}
    assert all(s["nodes"] for s in data["steps"] if s["category"] == "done")
    # the terminal view: folded by request, the failed member under its group
    text = views(["status", "--fold-above", "1", str(outdir)], env)
    assert text.returncode == 0, text.stderr
    assert re.search(r"sim_\* \(4\)\s+3 FINISHED, 1 FAILED\s+3 done, 1 failed", text.stdout)
    assert re.search(r"└ sim_X\.3 .*exit code 3; \.err: sim 3: diverged at step 17",
                     text.stdout)
    assert "11 steps: 9 done, 2 failed" in text.stdout
    # the report: the timed-out first job of 'slow' is on the timeline, with why
    report = views(["report", str(outdir), "-o", str(tmp_path / "r.html")], env)
    assert report.returncode == 0, report.stderr
    assert "wrote" in report.stdout and "(11 steps, 12 jobs)" in report.stdout
    html = (tmp_path / "r.html").read_text()
    assert "Failures (2)" in html and "diverged at step 17" in html
    assert "the job ran past its time limit (timeout" in html  # slow's first job
    assert "<script src=" not in html and "<link" not in html


def test_a_node_failure_is_shown_with_its_reason(env, flux_mode, tmp_path):
    spec = tmp_path / "node.yaml"
    spec.write_text("description: {name: node_fails, description: a node fails}\n"
                    "batch: {type: flux, node_failure_retries: 0}\n"
                    "study:\n  - name: victim\n    description: its node fails\n"
                    "    run: {cmd: sleep 60}\n"
                    "  - name: child\n    description: never runs\n"
                    "    run: {cmd: 'true', depends: [victim]}\n")
    outdir = in_background(spec, env, tmp_path)
    running = wait_until(lambda: (lambda d: by_name(d)["victim"].get("category") == "running"
                                  and d)(status_json(outdir, env)))
    victim = by_name(running)["victim"]
    assert victim["flux"] == "RUN" and victim["runtime"] is not None
    child = by_name(running)["child"]
    assert (child["flux"], child["waits_on"]) == ("DEPEND", ["victim"])
    handle = bindings.connect(flux_mode.uri)
    handle.rpc("job-manager.raise", {"id": jobids.parse_jobid(victim["jobid"]), "severity": 0,
                                     "type": "node-failure", "note": "rank 1 died"}).get()
    data = wait_until(lambda: (lambda d: d["ended"] and d)(status_json(outdir, env)))
    victim = by_name(data)["victim"]
    assert victim["category"] == "failed" and victim["maestro"] == "FAILED"
    assert victim["reason"].startswith("a node of the job failed (node-failure: rank 1 died)")
    assert by_name(data)["child"]["category"] == "failed"


def test_a_cancelled_study_shows_every_step_cancelled(env, tmp_path):
    outdir = in_background(TESTS / "specs" / "long_chain.yaml", env, tmp_path)
    data = wait_until(lambda: (lambda d: d["totals"].get("waiting") == 2 and d)(
        status_json(outdir, env)))
    steps = by_name(data)
    assert steps["sleeper"]["category"] == "running"
    assert steps["after_sleeper"]["waits_on"] == ["sleeper"]
    assert steps["last"]["waits_on"] == ["after_sleeper"]
    assert maestro(["cancel", "-y", str(outdir)], env, tmp_path).returncode == 0
    data = wait_until(lambda: (lambda d: d["ended"] and d)(status_json(outdir, env)))
    # sleeper canceled; its children canceled, or failed by Flux first (their dependency
    # could never be met) if Maestro saw that before the cancel: real brokers do both
    assert set(data["totals"]) <= {"cancelled", "failed"} and sum(data["totals"].values()) == 3
    steps = by_name(data)
    assert steps["sleeper"]["reason"].startswith("the job was canceled (cancel")
    for name in ("after_sleeper", "last"):  # canceled while waiting, or failed by Flux first
        assert re.match(r"(the job was canceled|a job it waited on did not succeed) \(",
                        steps[name]["reason"]), steps[name]
    text = views(["status", str(outdir)], env).stdout
    assert "3 steps: " in text and "the study has ended" in text


def test_a_study_whose_conductor_died_then_resumed(env, tmp_path):
    outdir = in_background(TESTS / "specs" / "resume_chain.yaml", env, tmp_path)
    pid = heartbeat_pid(outdir)
    wait_until(lambda: by_name(status_json(outdir, env))["first"].get("category") == "running")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: "gone" in (status_json(outdir, env)["conductor"] or ""))
    data = status_json(outdir, env)
    assert f"gone (pid {pid})" in data["conductor"] and "maestro-flux resume" in \
        data["conductor"]
    assert not data["ended"]  # Flux still runs its jobs
    text = views(["status", str(outdir)], env).stdout
    assert "maestro-flux resume" in text
    done = resume(outdir, env, "-fg")
    assert done.returncode == 0, done.stderr[-2000:]
    data = status_json(outdir, env)
    assert data["ended"] and set(data["totals"]) == {"done"}
    assert all(s["jobs"] == 1 for s in data["steps"])  # every job in Flux was kept
    assert data["conductor"].startswith("exited")
    report = views(["report", str(outdir)], env)
    assert report.returncode == 0 and (outdir / "report.html").exists()


def test_with_the_broker_unreachable_the_files_are_shown_and_the_uri_named(env, tmp_path):
    outdir = tmp_path / "study"
    spec = TESTS / "specs" / "failing.yaml"
    maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(spec)], env, tmp_path)
    gone = f"local://{tmp_path}/no-broker/local-0"
    done = views(["status", "--uri", gone, str(outdir)], env)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if gone in line and "reached" in line]
    assert len(lines) == 1 and "showing what the study's files say" in lines[0]
    assert re.search(r"fails\s+FAILED\s+-", done.stdout)  # Maestro's word, no Flux state
    data = json.loads(views(["status", "--json", "--uri", gone, str(outdir)], env).stdout)
    assert by_name(data)["fails"]["category"] == "failed" and data["broker"]
    report = views(["report", "--uri", gone, str(outdir)], env)
    assert report.returncode == 0 and gone in report.stdout


# -- bad input: one line each, exit 1, no traceback -------------------------------------
def bad(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    folder.mkdir()
    if case == "local":
        (folder / "batch.info").write_text("type: local\n")
    if case in ("journal", "newer", "graph", "journal-folder"):
        (folder / "batch.info").write_text("type: flux\n")
        (folder / "meta" / "maestro-flux").mkdir(parents=True)
        journal = folder / "meta" / "maestro-flux" / "journal.jsonl"
        if case == "journal":
            journal.write_bytes(b"\xff\xfe not a journal \x00\x81")
        elif case == "journal-folder":
            journal.mkdir()
        elif case == "newer":
            journal.write_text('{"event":"intent","step":"a","token":"t","v":99}\n')
        (folder / "x.pkl").write_bytes(b"not a pickle")
    return folder


@pytest.mark.parametrize("case, words", [
    ("empty", "holds no Maestro study (no batch.info)"),
    ("local", "a study of the 'local' adapter"),
    ("journal", "journal.jsonl: cannot be read"),
    ("newer", "written by a newer maestro-flux"),
    ("graph", "cannot read the study's graph: "),
    ("journal-folder", "journal.jsonl: cannot be read"),
])
@pytest.mark.parametrize("command", ["status", "report"])
def test_bad_input_gets_one_line(tmp_path, case, words, command):
    folder = bad(tmp_path, case)
    if case == "graph":
        (folder / "meta" / "maestro-flux" / "journal.jsonl").write_text("")
    env = dict(os.environ, COLUMNS="200")
    done = subprocess.run([str(BIN / "maestro-flux"), command, str(folder)], env=env,
                          text=True, capture_output=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("maestro-flux: ") and words in done.stderr
    assert "Traceback" not in done.stderr
