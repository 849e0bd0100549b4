"""A conductor cycle sends its ready steps together (maestro_flux/maestro/pipeline.py,
submissions.py),
and records every job the broker accepted, even when Maestro raises mid-cycle.

These drive Maestro's own ExecutionGraph, in process, through real cycles.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import dill
import pytest
from helpers import graph_of, make_step
from maestrowf.abstracts.enums import State, StudyStatus
from maestrowf.datastructures.core import executiongraph
from maestrowf.datastructures.core.executiongraph import ExecutionGraph

from maestro_flux.broker import listing
from maestro_flux.broker.connection import Broker
from maestro_flux.maestro import gate
from maestro_flux.maestro.study_state import STUDY_KEY
from maestro_flux.maestro.submissions import PLACEHOLDER
from maestro_flux.model import jobids


@pytest.fixture
def broker_calls(flux_mode, monkeypatch):
    """What reached the broker: 'async' (sent), the ids the broker answered with, and
    the order of the two."""
    calls = {"async": [], "ids": [], "order": []}
    submit_async, get_id = Broker.submit_async, Broker.submit_get_id

    def counted_async(self, *args, **kwargs):
        calls["async"].append(args)
        calls["order"].append("sent")
        return submit_async(self, *args, **kwargs)

    def counted_id(self, future, *rest):
        jobid = get_id(self, future, *rest)
        calls["ids"].append(jobids.f58_encode(jobid))
        calls["order"].append("answered")
        return jobid

    monkeypatch.setattr(Broker, "submit_async", counted_async)
    monkeypatch.setattr(Broker, "submit_get_id", counted_id)
    return calls


def run_to_end(graph: ExecutionGraph, timeout: float = 60) -> StudyStatus:
    end = time.time() + timeout
    while time.time() < end:
        status = graph.execute_ready_steps()
        if status != StudyStatus.RUNNING:
            return status
        time.sleep(0.2)
    raise AssertionError("the study did not end in time")


def test_a_cycle_sends_its_steps_together_and_records_real_ids(broker_calls, tmp_path, caplog):
    names = [f"s{i}" for i in range(6)]
    # Steps that outlast the cycle (Flux ending one during it would be caught up at once).
    graph = graph_of([make_step(name, cmd="sleep 3") for name in names], tmp_path)
    caplog.set_level(logging.INFO, logger="maestro_flux")
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    assert getattr(ExecutionGraph, gate.MARK)
    # no step waited alone for its id: every one was sent before any answer was taken
    assert broker_calls["order"] == ["sent"] * len(names) + ["answered"] * len(names)
    assert graph.in_progress == set(names)
    ids = [graph.values[name].jobid[-1] for name in names]
    assert sorted(ids) == sorted(broker_calls["ids"])  # real ids, every one recorded
    assert all(jobids.f58_encode(jobids.parse_jobid(jobid)) == jobid for jobid in ids)
    assert all(graph.values[name].status == State.PENDING for name in names)
    assert graph._adapter[STUDY_KEY]  # the study's own key travels with its graph
    said = [r.message for r in caplog.records if "as Flux job" in r.message]
    assert sorted(said) == sorted(f"maestro-flux: submitted step '{name}' as Flux job {jobid}"
                                  for name, jobid in zip(names, ids, strict=True))
    dill.dumps(graph)  # what the conductor pickles after the cycle
    assert run_to_end(graph) == StudyStatus.FINISHED
    assert graph.values["s0"].jobid == [ids[0]]


def test_a_step_that_cannot_be_built_fails_through_maestros_own_path(broker_calls, tmp_path):
    good, bad = make_step("good", cmd="sleep 5"), make_step("bad", cmd="true", walltime="soon")
    graph = graph_of([good, bad], tmp_path)
    graph.execute_ready_steps()
    assert len(broker_calls["async"]) == 1  # the bad step never reached the broker
    assert graph.values["bad"].status == State.FAILED
    assert graph.in_progress == {"good"}
    assert run_to_end(graph) == StudyStatus.FAILURE


def test_steps_the_broker_refuses_fail_with_their_subtree(broker_calls, tmp_path, caplog):
    first, second = make_step("s0", cmd="true"), make_step("s1", cmd="true")
    graph = graph_of([first, second], tmp_path, queue="no-such-queue",
                     portable=False)  # kept, so the broker refuses it
    child = make_step("child", cmd="true")
    graph.add_step("child", child, str(tmp_path / "child"), 0)
    graph.add_connection("s0", "child")
    run_to_end(graph)
    refusals = [r.message for r in caplog.records if "was not submitted" in r.message]
    assert len(refusals) == 2 and all("'no-such-queue' is not a valid queue" in r
                                      for r in refusals)
    assert graph.in_progress == set()
    assert graph.failed_steps >= {"s0", "s1", "child"}
    assert all(graph.values[n].jobid == [] for n in ("s0", "s1"))  # no placeholder left


def test_an_exception_mid_cycle_leaves_no_accepted_job_unrecorded(broker_calls, tmp_path,
                                                                   monkeypatch):
    names = [f"s{i}" for i in range(5)]
    graph = graph_of([make_step(name, cmd="true") for name in names], tmp_path)
    record_class = executiongraph._StepRecord
    generate = record_class.generate_script
    written = []

    def failing(self, adapter, tmp_dir=""):
        if len(written) == 3:  # Maestro itself fails on the fourth step of the cycle
            raise RuntimeError("injected: Maestro failed mid-cycle")
        written.append(self.name)
        return generate(self, adapter, tmp_dir)

    monkeypatch.setattr(record_class, "generate_script", failing)
    with pytest.raises(RuntimeError, match="injected"):
        graph.execute_ready_steps()
    accepted = broker_calls["ids"]
    assert len(accepted) == 3 and len(broker_calls["async"]) == 3
    recorded = {jobid for name in names for jobid in graph.values[name].jobid}
    assert recorded == set(accepted)  # every accepted job is on its step...
    assert graph.in_progress == set(written)  # ...and will be polled
    assert not any(str(j).startswith(PLACEHOLDER) for j in recorded)
    listed = {jobids.f58_encode(int(e["id"]))
              for e in listing.list_jobs(graph_broker_handle(graph))}
    assert set(accepted) <= listed  # and the broker has them
    monkeypatch.setattr(record_class, "generate_script", generate)
    assert run_to_end(graph) == StudyStatus.FINISHED


def graph_broker_handle(graph: ExecutionGraph):
    from maestro_flux.maestro.adapter import FluxAdapter

    return FluxAdapter(**graph._adapter).broker().handle()


def test_pipeline_can_be_switched_off(broker_calls, tmp_path, monkeypatch):
    monkeypatch.setenv(gate.SWITCH, "0")
    assert gate.why_off() == f"{gate.SWITCH}=0"
    names = ["a", "b"]
    graph = graph_of([make_step(name, cmd="true") for name in names], tmp_path)
    graph.execute_ready_steps()
    # one at a time: each step's answer is taken before the next step is sent
    assert broker_calls["order"] == ["sent", "answered", "sent", "answered"]
    assert STUDY_KEY not in graph._adapter
    assert run_to_end(graph) == StudyStatus.FINISHED


@pytest.mark.unit
def test_an_untested_maestro_gets_one_submit_per_step_and_says_why():
    code = ("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
            "from maestro_flux.maestro import maestro_names\n"
            "maestro_names.maestro_version = lambda: '9.9.9'\n"
            "from maestro_flux.maestro.adapter import FluxAdapter\n"
            "from maestrowf.datastructures.core.executiongraph import ExecutionGraph\n"
            "FluxAdapter(type='flux'); FluxAdapter(type='flux')\n"
            "print('wrapped', hasattr(ExecutionGraph, '_maestro_flux_pipeline'))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != gate.SWITCH})
    assert "wrapped False" in done.stdout, done.stderr
    said = [line for line in done.stdout.splitlines() if "one step at a time" in line]
    assert len(said) == 1 and "maestrowf 9.9.9 is not a version it was tested with" in said[0]
