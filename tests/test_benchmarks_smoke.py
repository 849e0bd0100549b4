"""The benchmark harness, smoke-tested on the test double (its figures mean nothing for
speed; this only checks that one command produces every figure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from brokers import ROOT

OURS = {"study 3 steps": "maestro-flux",
        "conductor peak RSS, 3 steps": "maestro-flux",
        "study 5 steps": "maestro-flux",  # a --memory-sizes study: ours alone
        "conductor peak RSS, 5 steps": "maestro-flux",
        "adapter construction": "maestro-flux",
        "steady cycle, 3 in progress": "maestro-flux",
        "submit": "maestro-flux adapter.submit",
        "check_jobs 10 ids": "maestro-flux, steady",
        "check_jobs 20 ids": "maestro-flux, steady",
        "cancel_jobs 5 ids": "maestro-flux"}
COUNTED = ("adapter construction", "steady cycle, 3 in progress", "check_jobs 20 ids",
           "cancel_jobs 5 ids")
REFERENCES = {("study 3 steps", "flux submit --cc --wait (flux itself)"),
              ("study 3 steps", "built-in, defaults (nested broker per step)"),
              ("submit", "flux.job.submit_async loop"),
              ("submit", "bare flux.job.submit (sync)"),
              ("check_jobs 20 ids", "built-in (JobList ids=)"),
              ("cancel_jobs 5 ids", "built-in (JobList ids= + cancel per job)")}


def test_harness_produces_every_figure_on_the_double(tmp_path):
    out = tmp_path / "double.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLUX_URI", "MAESTRO_FLUX_BINDINGS", "MAESTRO_FLUX_BENCH_INSIDE")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "double", "--steps", "3",
         "--builtin-sizes", "", "--memory-sizes", "5", "--ids", "10,20", "--cancel-ids", "5",
         "--submit-jobs", "4",
         "--rounds", "2", "--cycle-ids", "3", "--view-sizes", "30", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TEST-DOUBLE MODE" in done.stdout and "mean nothing for speed" in done.stdout
    result = json.loads(out.read_text())
    assert result["mode"] == "double" and result["meaningful_for_speed"] is False
    rows = {(row["figure"], row["path"]): row for row in result["rows"]}
    for figure, path in OURS.items():
        assert rows[(figure, path)]["value"] is not None, (figure, path)
    for figure in COUNTED:
        row = rows[(figure, OURS[figure])]
        assert row["requests"] is not None and row["connections"] is not None, figure
    assert rows[("study 3 steps", "maestro-flux")]["extra"]["ok"] is True
    for key in REFERENCES:  # present; the built-in and the flux CLI say why they are not run
        assert key in rows, key
    assert rows[("check_jobs 20 ids", "built-in (JobList ids=)")]["note"].startswith("skipped")
    for command in ("status", "report"):  # the views' figures (benchmarks/views.py)
        assert rows[("views", f"maestro-flux {command}, 30 steps, from files")]["value"] > 0


def test_critical_path_harness_produces_every_figure_on_the_double(tmp_path):
    out = tmp_path / "critical.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLUX_URI", "MAESTRO_FLUX_BINDINGS", "MAESTRO_FLUX_BENCH_INSIDE")}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "double", "--only", "critical-path",
         "--sleeps", "1", "--level-seconds", "0", "--funnel-leaves", "3", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    measured = {(row["figure"], row["path"]) for row in rows if row["value"] is not None}
    assert measured == {
        (figure, path) for figure in ("chain6: 6 steps, 6 levels, -s 1",
                                      "funnel3: 14 steps, 12 levels, -s 1")
        for path in ("maestro-flux (Flux holds the dependencies)",
                     "maestro-flux, flux_dependencies: false")}
    assert all(row["extra"]["ok"] for row in rows if row["value"] is not None)


def test_fault_harness_kills_resumes_and_counts_on_the_double(tmp_path):
    """Small studies SIGKILLed and resumed, with --hashws and with a failing branch: the
    harness reports no step run twice or lost (the claim the real run measures at scale)."""
    out = tmp_path / "faults.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--mode", "double", "--only", "faults",
         "--fault-sizes", "2", "--kills", "2", "--seed", "7", "--fault-kinds",
         "hashws,failing", "--json", str(out)],
        cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    figures = {row["figure"] for row in rows}
    assert len(figures) == 2 and all("SIGKILLed" in f for f in figures)
    assert any("hashws" in f for f in figures) and any("failing" in f for f in figures)
    for path in ("steps run twice", "steps lost"):
        assert [row["value"] for row in rows if row["path"] == path] == [0, 0]


def bench_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if k not in ("FLUX_URI", "MAESTRO_FLUX_BINDINGS", "MAESTRO_FLUX_BENCH_INSIDE")}


def test_ready_queue_and_resume_figures_are_taken_on_the_double(tmp_path):
    for only, extra in (("ready-queue", ["--queue-sizes", "200"]),
                        ("resume", ["--resume-steps", "40", "--resume-earlier", "80",
                                    "--resume-kill-at", "20"])):
        out = tmp_path / f"{only}.json"
        done = subprocess.run([sys.executable, "-m", "benchmarks", "--mode", "double",
                               "--only", only, *extra, "--json", str(out)], cwd=ROOT,
                              env=bench_env(), capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads(out.read_text())["rows"]
        assert rows and all(row["value"] is not None and row["value"] > 0 for row in rows)
        if only == "resume":
            assert "found by their token" in rows[0]["note"]
