"""Flux holds the study's dependencies (issue 17): steps are sent ahead with afterok
dependencies, Maestro adopts their jobs, and the study looks as it would without it.

These drive Maestro's own ExecutionGraph, in process, through real conductor cycles,
on the double at every recorded flux-core version and on a real broker where one
exists. Each compares against the same graph run with ``flux_dependencies: false``
where the claim is "as without it".
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from helpers import make_step
from maestrowf.abstracts.enums import State, StudyStatus
from maestrowf.datastructures.core.executiongraph import SOURCE, ExecutionGraph

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES
from maestro_flux.model import jobids
from maestro_flux.model.states import STATE_NAMES, status_from_listing

pytestmark = pytest.mark.every_version


def study(tmp_path, steps, edges, throttle=0, **batch) -> ExecutionGraph:
    """A graph as Maestro stages it: ``edges`` are (parent, child); roots hang off SOURCE."""
    graph = ExecutionGraph(submission_throttle=throttle)
    graph.add_description("ahead", "steps sent ahead")
    graph.set_adapter({"type": "flux", **batch})
    graph.add_node(SOURCE, None)
    children = {child for _, child in edges}
    for step in steps:
        graph.add_step(step.name, step, str(tmp_path / step.name), 1)
        if step.name not in children:
            graph.add_connection(SOURCE, step.name)
    for parent, child in edges:
        graph.add_connection(parent, child)
    return graph


def chain(tmp_path, commands: dict, **kwargs) -> ExecutionGraph:
    names = list(commands)
    steps = [make_step(name, cmd=cmd) if isinstance(cmd, str) else make_step(name, **cmd)
             for name, cmd in commands.items()]
    return study(tmp_path, steps, list(itertools.pairwise(names)), **kwargs)


def run(graph: ExecutionGraph, sleep: float = 0.5, timeout: float = 120) -> tuple[StudyStatus, int]:
    """Conductor cycles until the study ends; returns its status and the cycles taken."""
    end, cycles = time.time() + timeout, 0
    while time.time() < end:
        cycles += 1
        status = graph.execute_ready_steps()
        if status != StudyStatus.RUNNING:
            return status, cycles
        time.sleep(sleep)
    raise AssertionError("the study did not end in time")


def jobs_by_name(graph: ExecutionGraph) -> dict[str, list[dict]]:
    """Every job of the study's steps in the broker, by step (job) name: the jobs of
    steps so named submitted since the test began (the broker serves the session)."""
    handle = FluxAdapter(**graph._adapter).broker().handle()
    found: dict[str, list[dict]] = {}
    for entry in all_jobs(handle):
        if entry.get("name") in graph.values:
            found.setdefault(entry["name"], []).append(entry)
    return found


def all_jobs(handle) -> list[dict]:
    """The broker's jobs submitted since this test began."""
    jobs = bindings.bindings().job.job_list(handle, max_entries=0, attrs=["all"]).get_jobs()
    return [entry for entry in jobs if entry["t_submit"] >= TEST_START[0]]


def listed(graph: ExecutionGraph, names, timeout: float = 30) -> dict[str, list[dict]]:
    """jobs_by_name once job-list lists a job of each of ``names`` (it may lag)."""
    end = time.time() + timeout
    while True:
        jobs = jobs_by_name(graph)
        if set(names) <= set(jobs) or time.time() > end:
            return jobs
        time.sleep(0.1)


def final_states(graph: ExecutionGraph) -> dict[str, str]:
    return {name: graph.values[name].status.name for name in graph.values if name != SOURCE}


TEST_START = [0.0]


@pytest.fixture(autouse=True)
def fresh_studies(flux_mode):
    STUDIES.clear()
    TEST_START[0] = time.time()
    yield
    STUDIES.clear()


def test_a_chain_is_in_flux_after_the_first_cycle_and_each_step_has_one_job(flux_mode,
                                                                           tmp_path):
    commands = {"level0": "sleep 2", **{f"level{n}": "sleep 0.2" for n in range(1, 6)}}
    graph = chain(tmp_path, commands)
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    in_flux = listed(graph, commands)
    assert set(in_flux) == set(commands)  # every level sent in the first cycle
    waiting = {STATE_NAMES[e["state"]] for name in list(commands)[1:] for e in in_flux[name]}
    assert waiting == {"DEPEND"}  # level0 still runs: the rest wait in Flux
    status, _ = run(graph)
    assert status == StudyStatus.FINISHED
    jobs = jobs_by_name(graph)
    assert {name: len(entries) for name, entries in jobs.items()} == dict.fromkeys(commands, 1)
    for name in commands:  # Maestro recorded the job Flux ran, and only that one
        assert graph.values[name].jobid == [jobids.f58_encode(jobs[name][0]["id"])]


def test_flux_runs_the_chain_while_the_conductor_sleeps(flux_mode, tmp_path):
    """Six levels: after one cycle Flux runs them all, with no conductor between them;
    the next cycle, however long the sleep, finds them done and ends the study."""
    commands = {f"level{n}": "sleep 0.2" for n in range(6)}
    graph = chain(tmp_path, commands)
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    wait_all_ended(graph, commands)  # the conductor sleeps; Flux works
    assert graph.execute_ready_steps() == StudyStatus.FINISHED
    assert final_states(graph) == dict.fromkeys(commands, "FINISHED")
    off = chain(tmp_path / "off", {f"off{n}": "sleep 0.2" for n in range(6)},
                flux_dependencies=False)
    assert off.execute_ready_steps() == StudyStatus.RUNNING
    assert set(listed(off, ["off0"])) == {"off0"}  # one level per cycle, as today


def wait_all_ended(graph: ExecutionGraph, names, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        jobs = jobs_by_name(graph)
        if set(jobs) == set(names) and all(e["state"] == 64 for n in names for e in jobs[n]):
            return
        time.sleep(0.1)
    raise AssertionError("Flux did not run the chain")


@pytest.mark.parametrize("max_waits, funnel_ahead", [(3, True), (2, False)])
def test_a_funnel_wider_than_the_limit_waits_for_maestro_and_the_rest_goes_on(
        flux_mode, tmp_path, monkeypatch, max_waits, funnel_ahead):
    """Three leaves, a funnel over them and a step below it. Within the limit the funnel
    and its child are in Flux after the first cycle; over it (the broker's cost of a
    job's dependencies grows with their square) neither is, Maestro submits the funnel
    once the leaves have finished, and every step still runs once."""
    monkeypatch.setattr("maestro_flux.model.ahead.MAX_WAITS", max_waits)
    leaves = [make_step(f"leaf{n}", cmd="sleep 1") for n in range(3)]
    steps = [*leaves, make_step("funnel", cmd="true"), make_step("below", cmd="true")]
    edges = [*((leaf.name, "funnel") for leaf in leaves), ("funnel", "below")]
    graph = study(tmp_path, steps, edges)
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    in_flux = listed(graph, [leaf.name for leaf in leaves])
    assert {leaf.name for leaf in leaves} <= set(in_flux)
    if funnel_ahead:
        in_flux = listed(graph, ["funnel", "below"])
        assert {STATE_NAMES[in_flux[name][0]["state"]] for name in ("funnel", "below")} == {
            "DEPEND"}
    else:
        assert not {"funnel", "below"} & set(in_flux)
    status, _ = run(graph, sleep=0.3)
    assert status == StudyStatus.FINISHED
    names = [step.name for step in steps]
    assert {name: len(e) for name, e in jobs_by_name(graph).items()} == dict.fromkeys(names, 1)
    assert final_states(graph) == dict.fromkeys(names, "FINISHED")


def test_a_failing_middle_link_leaves_todays_states_and_nothing_after_it_runs(flux_mode,
                                                                             tmp_path):
    commands = {"a": "true", "b": "sleep 0.5; exit 3", "c": "touch ran-c", "d": "touch ran-d"}
    graph = chain(tmp_path / "on", commands)
    status, _ = run(graph)
    off = chain(tmp_path / "off", commands, flux_dependencies=False)
    status_off, _ = run(off)
    assert status == status_off == StudyStatus.FAILURE
    assert final_states(graph) == final_states(off) == {
        "a": "FINISHED", "b": "FAILED", "c": "FAILED", "d": "FAILED"}
    assert not list(tmp_path.glob("on/*/ran-*"))  # nothing after b ran
    for entry in (e for name in ("c", "d") for e in jobs_by_name(graph).get(name, [])):
        status = status_from_listing(entry)
        assert status.state == "INACTIVE" and status.exception_type == "dependency"
    assert graph.values["c"].jobid == graph.values["d"].jobid == []  # as Maestro left them


def test_a_throttle_of_3_never_has_more_than_3_jobs_in_flux(flux_mode, tmp_path):
    # Two sweeps of 4 roots, each root with a chain of 2 below it: many could go ahead.
    steps, edges = [], []
    for n in range(4):
        steps += [make_step(f"r{n}", cmd="sleep 0.4"), make_step(f"m{n}", cmd="sleep 0.2"),
                  make_step(f"l{n}", cmd="true")]
        edges += [(f"r{n}", f"m{n}"), (f"m{n}", f"l{n}")]
    graph = study(tmp_path, steps, edges, throttle=3)
    handle = bindings.connect(flux_mode.uri)
    names, peak, done = {s.name for s in steps}, [0], threading.Event()

    def watch():
        while not done.is_set():
            active = [e for e in all_jobs(handle)
                      if e.get("name") in names and e["state"] != 64]
            peak[0] = max(peak[0], len(active))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        status, _ = run(graph, sleep=0.3)
    finally:
        done.set()
        watcher.join()
    assert status == StudyStatus.FINISHED
    assert 1 <= peak[0] <= 3
    assert {name: len(e) for name, e in jobs_by_name(graph).items()} == dict.fromkeys(names, 1)


def test_a_timed_out_step_is_restarted_and_its_child_runs_after_the_restart(flux_mode,
                                                                           tmp_path):
    commands = {"a": {"cmd": "sleep 30", "walltime": "00:00:02",
                      "restart": "echo restarted > restarted"},
                "b": "test -f ../a/restarted"}
    graph = chain(tmp_path, commands)
    status, _ = run(graph, sleep=0.5)
    assert status == StudyStatus.FINISHED
    assert graph.values["a"].restarts == 1 and len(graph.values["a"].jobid) == 2
    assert len(graph.values["b"].jobid) == 1  # a fresh job, after the restart
    b_jobs = [status_from_listing(e) for e in jobs_by_name(graph)["b"]]
    assert sorted(s.result for s in b_jobs) == ["COMPLETED", "FAILED"]  # the one ahead...
    assert [s.exception_type for s in b_jobs if s.result == "FAILED"] == ["dependency"]


def test_maestro_cancel_leaves_no_job_behind(flux_mode, tmp_path):
    commands = {"a": "sleep 30", "b": "true", "c": "true"}
    graph = chain(tmp_path, commands)
    assert graph.execute_ready_steps() == StudyStatus.RUNNING
    assert set(listed(graph, commands)) == set(commands)
    graph.cancel_study()  # what the conductor does when `maestro cancel` asks
    status, _ = run(graph)
    assert status == StudyStatus.CANCELLED
    end = time.time() + 30
    while time.time() < end:
        active = [n for n, es in jobs_by_name(graph).items() for e in es if e["state"] != 64]
        if not active:
            break
        time.sleep(0.2)
    assert active == []


def test_a_script_is_written_once_while_its_job_may_run(flux_mode, tmp_path):
    graph = chain(tmp_path, {"a": "sleep 1", "b": "true"})
    graph.execute_ready_steps()
    script = tmp_path / "b" / "b.flux.sh"
    written = script.stat().st_mtime_ns
    time.sleep(0.05)
    assert run(graph)[0] == StudyStatus.FINISHED
    assert script.stat().st_mtime_ns == written  # Maestro's own write of it was skipped


def test_the_batch_key_turns_it_off(flux_mode, tmp_path):
    graph = chain(tmp_path, {"a": "sleep 1", "b": "true"}, flux_dependencies=False)
    graph.execute_ready_steps()
    assert set(listed(graph, ["a"])) == {"a"}
    assert run(graph)[0] == StudyStatus.FINISHED
    assert graph.values["b"].status == State.FINISHED
