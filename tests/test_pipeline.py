"""A conductor cycle sends its ready steps together (maestro_flux/pipeline.py).

These drive Maestro's own ExecutionGraph, in process, through real cycles.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dill
import pytest
from helpers import make_step
from maestrowf.abstracts.enums import State, StudyStatus
from maestrowf.datastructures.core.executiongraph import SOURCE, ExecutionGraph

from maestro_flux.maestro import pipeline
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.model import jobids


def graph_of(steps, tmp_path, **batch) -> ExecutionGraph:
    graph = ExecutionGraph()
    graph.add_description("pipeline", "steps sent together")
    graph.set_adapter({"type": "flux", **batch})
    graph.add_node(SOURCE, None)  # as Maestro's Study.stage does
    for step in steps:
        graph.add_step(step.name, step, str(tmp_path / step.name), 0)
        graph.add_connection(SOURCE, step.name)
    return graph


@pytest.fixture
def submit_calls(flux_mode, monkeypatch):
    """Names of the steps that went through FluxAdapter.submit (one at a time)."""
    calls = []
    submit = FluxAdapter.submit

    def counted(self, step, *args, **kwargs):
        calls.append(step.name)
        return submit(self, step, *args, **kwargs)

    monkeypatch.setattr(FluxAdapter, "submit", counted)
    return calls


def run_to_end(graph: ExecutionGraph, timeout: float = 60) -> StudyStatus:
    end = time.time() + timeout
    while time.time() < end:
        status = graph.execute_ready_steps()
        if status != StudyStatus.RUNNING:
            return status
        time.sleep(0.2)
    raise AssertionError("the study did not end in time")


def test_a_cycle_sends_its_steps_together_and_records_real_ids(submit_calls, tmp_path):
    names = [f"s{i}" for i in range(6)]
    graph = graph_of([make_step(name, cmd="true") for name in names], tmp_path)
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    assert pipeline.installed()
    assert submit_calls == []  # no step waited alone for its id
    assert graph.in_progress == set(names)
    ids = [graph.values[name].jobid[-1] for name in names]
    assert len(set(ids)) == len(names)
    assert all(jobids.canonical(jobid) == jobid for jobid in ids)  # real ids, stored form
    assert all(graph.values[name].status == State.PENDING for name in names)
    assert "_maestro_flux_sent" not in graph.__dict__
    dill.dumps(graph)  # what the conductor pickles after the cycle
    assert run_to_end(graph) == StudyStatus.FINISHED
    assert graph.values["s0"].jobid == [ids[0]]


def test_a_step_that_cannot_be_sent_goes_through_maestros_own_submit(submit_calls, tmp_path):
    good, bad = make_step("good", cmd="true"), make_step("bad", cmd="true", walltime="soon")
    graph = graph_of([good, bad], tmp_path)
    graph.execute_ready_steps()
    assert submit_calls == ["bad"]
    assert graph.values["bad"].status == State.FAILED
    assert graph.in_progress == {"good"}
    assert run_to_end(graph) == StudyStatus.FAILURE


def test_steps_the_broker_refuses_fail_as_with_one_submit_each(submit_calls, tmp_path, caplog):
    graph = graph_of([make_step(f"s{i}", cmd="true") for i in range(3)], tmp_path,
                     queue="no-such-queue", portable=False)  # the broker refuses it
    assert graph.execute_ready_steps() == StudyStatus.FAILURE
    assert sorted(submit_calls) == ["s0", "s1", "s2"]
    assert "'no-such-queue' is not a valid queue" in caplog.text
    assert graph.in_progress == set()


def test_pipeline_can_be_switched_off():
    code = ("from maestro_flux.maestro.adapter import FluxAdapter; "
            "from maestro_flux.maestro import pipeline; "
            "FluxAdapter(type='flux'); print(pipeline.installed())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, MAESTRO_FLUX_PIPELINE="0"))
    assert done.stdout.strip() == "False", done.stderr
