"""Small helpers shared by the contract tests."""

from __future__ import annotations

import time

from maestrowf.abstracts.enums import State
from maestrowf.datastructures.core import StudyStep
from maestrowf.datastructures.core.executiongraph import SOURCE, ExecutionGraph

from maestro_flux.maestro.adapter import FluxAdapter

TERMINAL = {State.FINISHED, State.FAILED, State.CANCELLED, State.TIMEDOUT, State.UNKNOWN}


def make_step(name: str = "step", cmd: str = "echo hi", **run) -> StudyStep:
    step = StudyStep()
    step.name = name
    step.description = f"test step {name}"
    step.run.update(cmd=cmd, **run)
    return step


def write_and_submit(adapter: FluxAdapter, step: StudyStep, workspace) -> tuple[str, str]:
    """Write the step's script into workspace and submit it; returns (jobid, script)."""
    workspace.mkdir(parents=True, exist_ok=True)
    _, script, _ = adapter.write_script(str(workspace), step)
    record = adapter.submit(step, script, str(workspace))
    assert record.submission_code.name == "OK", "submission failed"
    return record.job_identifier, script


def wait_for(adapter: FluxAdapter, jobid: str, states=TERMINAL, timeout: float = 60) -> State:
    end = time.time() + timeout
    while time.time() < end:
        code, found = adapter.check_jobs([jobid])
        assert code.name == "OK"
        if found[jobid] in states:
            return found[jobid]
        time.sleep(0.1)
    raise AssertionError(f"job {jobid} did not reach {states} in {timeout}s")


def graph_of(steps, tmp_path, **batch) -> ExecutionGraph:
    """An ExecutionGraph of independent steps with a flux batch block, as Maestro stages it."""
    graph = ExecutionGraph()
    graph.add_description("pipeline", "steps sent together")
    graph.set_adapter({"type": "flux", **batch})
    graph.add_node(SOURCE, None)  # as Maestro's Study.stage does
    for step in steps:
        graph.add_step(step.name, step, str(tmp_path / step.name), 0)
        graph.add_connection(SOURCE, step.name)
    return graph


def wait_until(check, timeout: float = 120, what: str = "the condition",
               every: float = 0.2) -> None:
    """Until ``check()`` is true; AssertionError naming ``what`` after ``timeout`` s."""
    end = time.time() + timeout
    while time.time() < end:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
