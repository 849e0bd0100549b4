"""No flux-python: importing, writing scripts and dry runs work; a submission
fails that step with one line saying what to install, and nothing raises."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import make_step
from maestrowf.abstracts.enums import CancelCode, JobStatusCode, State, SubmissionCode

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES


@pytest.fixture
def no_bindings(monkeypatch):
    monkeypatch.setenv(bindings.BINDINGS_ENV, "no_such_flux_bindings")
    monkeypatch.setenv("FLUX_URI", "local:///nowhere/local-0")
    bindings.bindings.cache_clear()
    STUDIES.clear()
    yield
    bindings.bindings.cache_clear()
    STUDIES.clear()


def test_submit_fails_the_step_with_install_advice(no_bindings, tmp_path, caplog):
    adapter = FluxAdapter(type="flux")
    step = make_step()
    _, script, _ = adapter.write_script(str(tmp_path), step)
    assert "#flux: --nslots=1" in open(script).read()
    record = adapter.submit(step, script, str(tmp_path))
    assert record.submission_code == SubmissionCode.ERROR
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "cannot be imported" in errors[0] and 'pip install "flux-python==V" ply' in errors[0]


def test_polling_and_cancel_survive_missing_bindings(no_bindings):
    adapter = FluxAdapter(type="flux")
    code, states = adapter.check_jobs(["fHmYssD"])
    assert code == JobStatusCode.OK and states == {"fHmYssD": State.NOTFOUND}
    assert adapter.cancel_jobs(["fHmYssD"]).cancel_status == CancelCode.ERROR


def test_package_imports_without_flux():
    code = ("import sys, maestro_flux.maestro.adapter, maestro_flux.cli.main;"
            "print('flux' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"  # nothing imported the bindings
