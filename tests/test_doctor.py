"""maestro-flux doctor: one line per check, non-zero exit when submission would fail."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from brokers import ROOT, TESTS
from test_cli import cli

from maestro_flux.broker import bindings
from maestro_flux.cli.doctor import doctor
from maestro_flux.cli.render import render_study


def run(spec=None) -> tuple[int, list[str]]:
    lines: list[str] = []
    return doctor(str(spec) if spec else None, out=lines.append), lines


def line(lines: list[str], label: str) -> str:
    return next(text for text in lines if text[6:].split()[:1] == [label])


def spec_with(tmp_path, batch: str):
    path = tmp_path / "spec.yaml"
    path.write_text(f"description: {{name: t, description: t}}\nbatch:\n{batch}\n"
                    "study:\n  - name: s\n    description: s\n    run: {cmd: 'true'}\n")
    return path


def test_a_working_broker_gets_every_line_ok(flux_mode):
    status, lines = run()
    assert status == 0, lines
    assert line(lines, "uri").endswith("(from FLUX_URI environment variable)")
    assert line(lines, "connect") == f"  ok  connect    connected to {flux_mode.uri}"
    assert "level 0, size 2 broker(s), you are the owner" in line(lines, "instance")
    version = flux_mode.version
    assert line(lines, "version") == f"  ok  version    broker {version}, bindings {version}"
    assert f" {version} imports " in line(lines, "bindings")
    assert line(lines, "queues") == ("  ok  queues     none configured (one anonymous queue) "
                                     "(from config.get): a queue is dropped, with one warning "
                                     "(batch.portable: false keeps it)")
    assert line(lines, "banks").startswith("  ok  banks      flux-accounting is not loaded "
                                           "(job-manager.jobtap)")
    assert lines[-1] == "submission should work"


def test_a_production_queue_is_dropped_here_and_the_bank_kept(flux_mode, tmp_path):
    status, lines = run(spec_with(tmp_path, "  type: flux\n  queue: pdebug\n  bank: guests"))
    assert status == 0, lines
    assert line(lines, "queue") == (
        f"warn  queue      batch.queue: queue 'pdebug' dropped: {flux_mode.uri} has no named "
        "queues (batch.portable: false keeps it); steps still run")
    assert line(lines, "bank") == (
        f"  ok  bank       'guests' is kept in the jobspec; {flux_mode.uri} does not run "
        "flux-accounting, so Flux accepts and ignores it")


def test_portable_false_keeps_the_queue_and_fails_where_flux_would_refuse_it(flux_mode,
                                                                           tmp_path):
    status, lines = run(spec_with(tmp_path, "  type: flux\n  portable: false\n"
                                            "  profiles: {p: {queue: pdebug}}"))
    assert status == 1
    assert line(lines, "queue").startswith("FAIL  queue      batch.profiles.p.queue: queue "
                                           "'pdebug' kept although")


def test_an_unreachable_uri_fails_naming_it(flux_mode, tmp_path):
    uri = f"local://{tmp_path}/gone/local-0"
    status, lines = run(spec_with(tmp_path, f"  type: flux\n  flux_uri: {uri}"))
    assert status == 1
    assert line(lines, "uri").endswith("(from batch block flux_uri)")
    assert line(lines, "connect").startswith("FAIL") and uri in line(lines, "connect")
    assert "is the instance still running?" in line(lines, "connect")


def test_a_resolved_uri_shows_how_it_resolved(flux_mode, tmp_path):
    status, lines = run(spec_with(tmp_path, "  type: flux\n  flux_uri: jobid:fNoSuchJob1"))
    assert status == 1
    assert line(lines, "resolved").startswith("FAIL  resolved   cannot resolve flux_uri "
                                              "'jobid:fNoSuchJob1'")


@pytest.mark.parametrize("batch, words", [
    ("  type: flux\n  qeue: x", "unknown key 'qeue' (did you mean 'queue'?)"),
    ("  type: slurm", "batch.type is 'slurm'"),
])
def test_a_bad_batch_block_fails_on_the_spec_line(tmp_path, batch, words):
    status, lines = run(spec_with(tmp_path, batch))
    assert status == 1 and lines[0].startswith("FAIL  spec") and words in lines[0]


def test_the_command_exits_non_zero_without_bindings(tmp_path):
    env = dict(os.environ, MAESTRO_FLUX_BINDINGS="no_such_bindings_module")
    done = cli("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL  bindings   the Flux Python bindings cannot be imported" in done.stdout
    assert "pip install" in done.stdout


def test_bindings_and_broker_of_different_versions_are_one_warning(tmp_path, monkeypatch):
    """A double broker playing 0.76.0 reached with bindings playing 0.88.0."""
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen([sys.executable, "-m", "fluxdouble", f"--rundir={tmp_path}",
                             "--flux-version=0.76.0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        monkeypatch.setenv("FLUX_URI", proc.stdout.readline().strip())
        monkeypatch.setenv(bindings.BINDINGS_ENV, "fluxdouble")
        monkeypatch.setenv("FLUXDOUBLE_VERSION", "0.88.0")
        bindings.bindings.cache_clear()
        status, lines = run()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        bindings.bindings.cache_clear()
    assert status == 0, lines
    assert [text for text in lines if text.startswith("warn")] == [
        "warn  version    broker 0.76.0, bindings 0.88.0: they differ; install "
        "flux-python==0.76.0 to match the broker"]


def test_bindings_below_the_floor_are_one_line_at_first_use(monkeypatch, caplog):
    monkeypatch.setenv(bindings.BINDINGS_ENV, "fluxdouble")
    monkeypatch.setattr(bindings, "FLOOR", "0.99.0")
    bindings.bindings.cache_clear()
    try:
        for _ in range(3):  # every use after the first reads the cache: no more lines
            bindings.bindings()
    finally:
        bindings.bindings.cache_clear()
    found = [r.getMessage() for r in caplog.records if "oldest version" in r.getMessage()]
    assert found == [f"maestro-flux: flux-python {bindings.loaded_version()} is older than "
                     "0.99.0, the oldest version maestro-flux is tested on; use flux-core "
                     "and flux-python 0.99.0 or later"]


def test_doctor_and_render_say_whether_flux_holds_the_dependencies(tmp_path):

    spec = ROOT / "specs" / "sweep_funnel_chain.yaml"
    off = tmp_path / "off.yaml"
    off.write_text(spec.read_text().replace("flux_dependencies: true",
                                            "flux_dependencies: false"))
    said = {}
    for name, path in (("on", spec), ("off", off)):
        lines = []
        doctor(str(path), out=lines.append)
        said[name] = next(line for line in lines if "conductor" in line)
        printed = io.StringIO()
        render_study(str(path), step="fit", out=printed)
        said[f"render-{name}"] = next(line for line in printed.getvalue().splitlines()
                                      if line.startswith("conductor:"))
    assert "dependencies held by Flux" in said["on"] and said["on"].strip().startswith("ok")
    assert "flux_dependencies: false" in said["off"]
    assert "dependencies held by Flux" in said["render-on"]
    assert "flux_dependencies: false" in said["render-off"]
