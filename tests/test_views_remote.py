"""The views as a guest of a multi-user instance and through an ``ssh://`` broker
(issue 27): ``maestro-flux status`` shows each step's Flux state and why it failed, and
``report`` writes its file, whoever owns the instance and wherever it is."""

from __future__ import annotations

import json
import subprocess

import pytest
from brokers import TESTS
from loopback_sshd import NoSshd, start_sshd
from test_guest import _statuses
from test_studies_end_to_end import BIN, maestro, study_env

pytestmark = pytest.mark.e2e
FAILING = TESTS / "specs" / "failing.yaml"


def _check(data: dict) -> None:
    steps = {step["name"]: step for step in data["steps"]}
    assert data["ended"] and steps
    failed = [step for step in steps.values() if step["category"] == "failed"]
    assert failed and all(step["reason"] for step in failed)
    finished = [step for step in steps.values() if step["maestro"] == "FINISHED"]
    assert all(step["flux"] == "INACTIVE (COMPLETED)" or step["flux"] is None
               for step in finished)


def test_a_guest_sees_its_study_as_flux_runs_it(guest_side):
    work = guest_side.workdir("views")
    spec = work / "failing.yaml"
    spec.write_text(FAILING.read_text())
    outdir = work / "out"
    guest_side.run([guest_side.command("maestro"), "run", "-fg", "-y", "-s", "1", "-o",
                    str(outdir), str(spec)], cwd=work)
    assert "FAILED" in _statuses(outdir).values()
    done = guest_side.run([guest_side.command("maestro-flux"), "status", "--json", str(outdir)],
                          cwd=work)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    _check(json.loads(done.stdout))
    report = guest_side.run([guest_side.command("maestro-flux"), "report", str(outdir)],
                            cwd=work)
    assert report.returncode == 0 and (outdir / "report.html").exists(), report.stderr


def test_the_views_through_an_ssh_broker(flux_mode, tmp_path):
    try:
        sshd = start_sshd(tmp_path / "sshd")
    except NoSshd as why:
        pytest.skip(str(why))
    try:
        env = study_env(flux_mode)
        outdir = tmp_path / "study"
        maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(FAILING)], env, tmp_path)
        remote = {k: v for k, v in env.items() if k != "FLUX_URI"}
        remote["FLUX_SSH"] = sshd.client
        uri = sshd.uri(flux_mode.uri)
        done = subprocess.run([str(BIN / "maestro-flux"), "status", "--json", "--uri", uri,
                               str(outdir)], env=remote, text=True, capture_output=True,
                              timeout=120)
        assert done.returncode == 0 and done.stderr == "", done.stderr
        data = json.loads(done.stdout)
        assert data["broker"] is None and uri in data["uri"]  # Flux was asked, over ssh
        _check(data)
    finally:
        sshd.stop()
