"""1000 steps submitted in one conductor cycle and polled at once: none is lost
because job-list has not caught up with the job manager (issue 11).

The steps are held (urgency 0), so the broker ingests and lists them without
running 1000 processes. On the double, job-list lags by seconds (``--list-lag``);
on a real broker the lag is whatever it is, and the test counts it.
"""

from __future__ import annotations

import time

from brokers import extra_broker
from helpers import graph_of, make_step
from maestrowf.abstracts.enums import State

from maestro_flux.broker import bindings, listing
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES

STEPS = 1000
#: The double's job-list lag: far longer than sending 1000 steps takes (2-3 s on a busy
#: 2-core machine), so that every one is still unlisted at the first poll on any machine.
LAG = 15.0


def one_cycle(tmp_path) -> tuple[FluxAdapter, list[str]]:
    """One conductor cycle of Maestro's own ExecutionGraph (the pipeline sends every
    step, then records every id); the adapter Maestro's next cycle would build."""
    steps = [make_step(name=f"s{n}", cmd="true", priority="held") for n in range(STEPS)]
    graph = graph_of(steps, tmp_path / "ws")
    graph.execute_ready_steps()
    ids = [graph.values[step.name].jobid[-1] for step in steps]
    assert len(set(ids)) == STEPS and graph.in_progress == {step.name for step in steps}
    return FluxAdapter(**graph._adapter), ids


def poll_at_once(adapter: FluxAdapter, ids: list[str], uri: str) -> tuple[dict, int]:
    """check_jobs right after the cycle, and how many ids job-list missed just before."""
    listed = {entry["id"] for entry in listing.list_jobs(bindings.connect(uri))}
    missing = sum(bindings.parse_jobid(jobid) not in listed for jobid in ids)
    _, states = adapter.check_jobs(ids)
    return states, missing


def test_1000_steps_polled_at_once_are_none_unknown(flux_mode, tmp_path, monkeypatch, capsys):
    with extra_broker(flux_mode, tmp_path / "broker", list_lag=LAG) as broker:
        monkeypatch.setenv("FLUX_URI", broker.uri)
        STUDIES.clear()
        started = time.time()
        adapter, ids = one_cycle(tmp_path)
        states, missing = poll_at_once(adapter, ids, broker.uri)
        with capsys.disabled():
            print(f"\n[{flux_mode.name}] {STEPS} steps sent in {time.time() - started:.1f}s; "
                  f"job-list had not listed {missing} of them at the first poll")
        assert State.UNKNOWN not in states.values()
        assert set(states.values()) <= {State.PENDING, State.QUEUED}
        if not flux_mode.real:
            assert missing == STEPS  # the double's job-list lags by LAG: all were missed
        grace = adapter.study.broker(broker.uri).listing_grace
        end = time.time() + 120
        while len(grace) and time.time() < end:  # until job-list has listed them all
            time.sleep(0.5)
            states = adapter.check_jobs(ids)[1]
        assert len(grace) == 0
        assert set(states.values()) == {State.QUEUED}  # held: listed, waiting for urgency
        record = adapter.cancel_jobs(ids)
        assert record.cancel_status.name == "OK"
        STUDIES.clear()
