"""A guest of a multi-user instance may not ask for urgency above 16 or for
waitable jobs; the adapter detects guest status and stays within bounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from brokers import NEWEST, RECORDINGS, TESTS
from helpers import make_step, write_and_submit

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES


@pytest.fixture
def guest_broker(tmp_path, monkeypatch):
    """A double broker owned by another uid, so this process is its guest."""
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen([sys.executable, "-m", "fluxdouble", f"--rundir={tmp_path}",
                             f"--owner={os.getuid() + 1}"], env=env, stdout=subprocess.PIPE,
                            text=True)
    uri = proc.stdout.readline().strip()
    monkeypatch.setenv(bindings.BINDINGS_ENV, "fluxdouble")
    monkeypatch.setenv("FLUX_URI", uri)
    bindings.bindings.cache_clear()
    STUDIES.clear()
    yield uri
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    bindings.bindings.cache_clear()
    STUDIES.clear()


def test_double_refuses_guests_as_the_recorded_broker_did(guest_broker, tmp_path):
    recorded = json.loads((RECORDINGS / NEWEST / "guest_submit.json").read_text())
    flux = bindings.bindings()
    handle = bindings.connect(guest_broker)
    js = flux.job.JobspecV1.from_command(["true"])
    js.cwd = str(tmp_path)
    for case, kwargs in (("urgency_17", {"urgency": 17}), ("urgency_31", {"urgency": 31}),
                         ("waitable", {"waitable": True})):
        with pytest.raises(OSError) as info:
            flux.job.submit(handle, js, **kwargs)
        assert str(info.value) == recorded[case]["error"]["str"], case


def test_adapter_clamps_a_guests_expedited_step_to_16(guest_broker, tmp_path):
    adapter = FluxAdapter(type="flux")
    step = make_step(cmd="true", priority="expedited", waitable=True)
    jobid, _ = write_and_submit(adapter, step, tmp_path)
    handle = bindings.connect(guest_broker)
    number = bindings.parse_jobid(jobid)
    for _ in range(50):
        entries = bindings.bindings().job.job_list(handle, attrs=["urgency"]).get_jobs()
        found = [e for e in entries if e["id"] == number]
        if found:
            break
        time.sleep(0.05)
    assert found[0]["urgency"] == 16
