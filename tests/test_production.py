"""A production-shaped instance (tests/flux-config/production/): named queues with a
default, and under Fluxion node-exclusive matching, backfilling and a feasibility
check at submission. Every example study runs there unchanged, a step that names no
queue runs in the default one, and a request the instance can never satisfy ends in
one line that says what is missing, whichever scheduler answers."""

from __future__ import annotations

import logging
import os

import pytest
from brokers import PRODUCTION_QUEUES, extra_broker, pointed_at
from helpers import make_step, wait_for
from test_studies_end_to_end import SPECS, example_finishes

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def production(flux_session, tmp_path_factory):
    with extra_broker(flux_session, tmp_path_factory.mktemp("production"), size=2,
                      production=True) as broker:
        yield broker


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_every_example_study_finishes_on_a_production_instance(production, tmp_path, spec):
    example_finishes(spec, production, tmp_path)


@pytest.fixture
def on_production(production, monkeypatch):
    with pointed_at(production, monkeypatch) as mode:
        yield mode


def test_a_step_that_names_no_queue_runs_in_the_default_queue(on_production, tmp_path):
    assert on_production.queues == tuple(sorted(PRODUCTION_QUEUES))
    adapter = FluxAdapter(type="flux")
    step = make_step(cmd="true")
    _, script, _ = adapter.write_script(str(tmp_path), step)
    jobid = adapter.submit(step, script, str(tmp_path)).job_identifier
    handle = bindings.connect(on_production.uri)
    entry = handle.rpc("job-list.list-id", {"id": bindings.parse_jobid(jobid),
                                            "attrs": ["queue"]}).get()["job"]
    assert entry["queue"] == "pbatch"


def test_a_gpu_step_on_a_cpu_only_instance_fails_in_one_line_naming_the_gpu(
        flux_mode, tmp_path, caplog):
    """Fluxion with the feasibility check refuses it at submission ("Unsatisfiable
    request", which names nothing); sched-simple accepts it and fails it with a note."""
    caplog.set_level(logging.WARNING, logger="maestro_flux")
    adapter = FluxAdapter(type="flux")
    step = make_step(name="gpu", cmd="true", procs=1, gpus=1)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    record = adapter.submit(step, script, str(tmp_path))
    if record.submission_code.name == "OK":
        assert wait_for(adapter, record.job_identifier).name == "FAILED"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    asks = "the step asks for 1 slot of 1 core and 1 GPU"
    if flux_mode.scheduler == "fluxion":
        cores = 2 * (os.cpu_count() or 1)  # --test-size=2 on this machine
        assert lines == [f"maestro-flux: step 'gpu' was not submitted: Flux refused the job: "
                         f"Unsatisfiable request: the instance has 2 nodes, {cores} cores, "
                         f"no GPUs; {asks}"]
    else:  # the scheduler's own note, then what the step asked for
        assert lines[0].startswith(f"maestro-flux: job {record.job_identifier} ended: FAILED, "
                                   "exit code 1, the scheduler cannot satisfy the request: ")
        assert lines[0].endswith(f"({asks})")


def test_what_a_job_asked_for_is_kept_only_while_it_runs(flux_mode, tmp_path):
    """The study's Broker keeps each job's request in words for its end's message,
    and forgets it when the end is seen, however the job ended."""
    adapter = FluxAdapter(type="flux")
    broker = adapter.study.broker(adapter.broker_choice.uri)
    ids = []
    for name, cmd in (("ok", "true"), ("bad", "false")):
        step = make_step(name=name, cmd=cmd, procs=1)
        _, script, _ = adapter.write_script(str(tmp_path), step)
        ids.append(adapter.submit(step, script, str(tmp_path)).job_identifier)
    assert len(broker._asks) == 2
    assert [wait_for(adapter, jobid).name for jobid in ids] == ["FINISHED", "FAILED"]
    assert len(broker._asks) == 0
