"""The ``#flux:`` header of a written script and the submitted jobspec ask for
the same thing, because both come from one resource model.

In both modes the header is read back with a parser of ``flux batch``'s options
and rebuilt with the bindings' own ``from_batch_command``. In real-broker mode
the written script is also given to ``flux batch --dry-run`` itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import pytest
from helpers import make_step, wait_for
from maestrowf.abstracts.enums import State

from maestro_flux.broker import bindings, directives
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.model import option_table as flux_options
from maestro_flux.model.step_keys import walltime_seconds

pytestmark = pytest.mark.every_version
SHAPES = {
    "serial": {"cmd": "echo hi"},
    "threads": {"cmd": "./omp_app", "procs": 4, "cores per task": 2},
    "launcher": {"cmd": "$(LAUNCHER) ./mpi_app", "procs": 4, "nodes": 2, "walltime": "01:30:00"},
    "gpus": {"cmd": "$(LAUNCHER) ./gpu_app", "procs": 2, "gpus": 1, "nodes": 1},
    "exclusive": {"cmd": "$(LAUNCHER) ./app", "procs": 2, "nodes": 2, "exclusive": True},
    "forced_nested": {"cmd": "./app", "procs": 3, "nested": True, "walltime": 90},
}


def read_header(script: str) -> argparse.Namespace:
    """The header's options, read with flux's directive parser and our option table."""
    found = {}
    for _, args in directives.parse_directives(script):
        flux_options.merge_into(found, flux_options.from_args(args))
    names = {name.replace("-", "_"): found.get(name) for name in flux_options.OPTIONS}
    names["cores_per_slot"] = names["cores_per_slot"] or 1
    return argparse.Namespace(**names)


def resources_from_header(script: str):
    opts = read_header(script)
    js = bindings.bindings().job.JobspecV1.from_batch_command(
        script, opts.job_name, num_slots=opts.nslots, cores_per_slot=opts.cores_per_slot,
        gpus_per_slot=opts.gpus_per_slot, num_nodes=opts.nodes, exclusive=opts.exclusive)
    return json.loads(js.dumps())["resources"], opts


def written(adapter, shape, tmp_path):
    step = make_step(name=shape, **SHAPES[shape])
    _, script, _ = adapter.write_script(str(tmp_path), step)
    jobspec, urgency, _ = adapter.planner.jobspec(step, script, str(tmp_path))
    return step, script, json.loads(jobspec.dumps()), urgency


@pytest.mark.parametrize("portable", [False, True], ids=["queue-kept", "queue-dropped"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_header_reads_back_as_the_jobspec(flux_mode, tmp_path, shape, portable):
    # The test broker has no named queues: portable drops the queue from both.
    adapter = FluxAdapter(type="flux", queue="batch", bank="physics", portable=portable)
    step, script, jobspec, urgency = written(adapter, shape, tmp_path)
    text = open(script).read()
    resources, opts = resources_from_header(text)
    system = jobspec["attributes"]["system"]
    assert resources == jobspec["resources"]
    limit = float(opts.time_limit.rstrip("s")) if opts.time_limit else 0.0
    assert limit == system.get("duration", 0)
    assert walltime_seconds(step.run.get("walltime")) == system.get("duration", 0)
    assert (opts.queue, opts.bank, opts.job_name) == (system.get("queue"), system["bank"],
                                                      system["job"]["name"])
    assert opts.queue == (None if portable else "batch")
    dropped = "# maestro-flux: queue 'batch' dropped: " in text
    assert dropped == portable
    out = system["shell"]["options"]["output"]
    assert (opts.output, opts.error) == (out["stdout"]["path"], out["stderr"]["path"])
    assert opts.urgency == urgency


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_flux_batch_asks_for_the_same_resources(flux_mode, tmp_path, shape):
    if not flux_mode.real:
        pytest.skip("needs the real 'flux batch --dry-run'")
    adapter = FluxAdapter(type="flux")
    _, script, jobspec, _ = written(adapter, shape, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != bindings.BINDINGS_ENV}
    dry = subprocess.run(["flux", "batch", "--dry-run", script], capture_output=True,
                         text=True, cwd=tmp_path, env=env, check=True)
    by_hand = json.loads(dry.stdout)
    assert by_hand["resources"] == jobspec["resources"]
    assert by_hand["attributes"]["system"].get("duration", 0) == \
        jobspec["attributes"]["system"].get("duration", 0)


@pytest.mark.parametrize("shape", ["launcher", "gpus", "exclusive"])
def test_launcher_agrees_with_the_resource_model(flux_mode, tmp_path, shape):
    adapter = FluxAdapter(type="flux")
    step = make_step(name=shape, **SHAPES[shape])
    _, script, _ = adapter.write_script(str(tmp_path), step)
    opts = read_header(open(script).read())
    run_line = next(line for line in open(script) if line.startswith("flux run"))
    words = run_line.split()
    assert f"-n{opts.nslots}" in words and f"-c{opts.cores_per_slot}" in words
    assert f"-N{opts.nodes}" in words
    if opts.gpus_per_slot:
        assert f"-g{opts.gpus_per_slot}" in words


# -- $(LAUNCHER) from every layer (issue 11) -------------------------------------------
LAYERED = {
    "profile": ({"profiles": {"gpu": {"nslots": 2, "cores-per-slot": 4, "gpus-per-slot": 1,
                                      "nodes": 1}}, "steps": {"*": "gpu"}}, None, {}),
    "batch": ({"nslots": 3, "cores-per-slot": 2, "gpus-per-slot": 2}, None, {}),
    "template": ({}, "#!/bin/sh\n#flux: -N1 -n2 --cores-per-slot=3 -g1\n{{ maestro_command }}\n",
                 {}),
    "step-over-profile": ({"profiles": {"p": {"cores-per-slot": 4, "gpus-per-slot": 1}},
                           "steps": {"*": "p"}}, None, {"procs": 2, "cores per task": 2}),
}


def layered_step(tmp_path, layer, cmd="$(LAUNCHER) ./app"):
    batch, template, run = LAYERED[layer]
    if template:
        (tmp_path / "t.sh.j2").write_text(template)
        batch = {**batch, "file": str(tmp_path / "t.sh.j2")}
    return FluxAdapter(type="flux", **batch), make_step(name=layer, cmd=cmd, **run)


def launcher_words(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.startswith("flux run")]


@pytest.mark.parametrize("layer", sorted(LAYERED))
def test_launcher_uses_the_effective_resources_of_every_layer(flux_mode, tmp_path, layer):
    adapter, step = layered_step(tmp_path, layer)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    opts = read_header(text)
    [words] = launcher_words(text)
    assert f"-n{opts.nslots}" in words and f"-c{opts.cores_per_slot}" in words
    assert (f"-g{opts.gpus_per_slot}" in words) == bool(opts.gpus_per_slot)
    assert (f"-N{opts.nodes}" in words) == bool(opts.nodes)
    jobspec, _, _ = adapter.planner.jobspec(step, script, str(tmp_path))
    assert json.loads(jobspec.dumps())["resources"] == resources_from_header(text)[0]


def test_a_sub_allocation_keeps_the_cores_and_gpus_per_task(flux_mode, tmp_path):
    adapter, step = layered_step(tmp_path, "profile",
                                 cmd="$(LAUNCHER)[1n, 1p] ./a &\n$(LAUNCHER)[1p] ./b")
    _, script, _ = adapter.write_script(str(tmp_path), step)
    assert [" ".join(w) for w in launcher_words(open(script).read())] == [
        "flux run -N1 -n1 -c4 -g1 ./a &", "flux run -n1 -c4 -g1 ./b"]


def test_the_inner_flux_run_asks_for_what_the_header_says(flux_mode, tmp_path):
    """Run in a nested instance: the inner flux run's own jobspec is read back (--dry-run),
    and, on a real broker, each rank reports the cores it was bound to."""
    batch = {"profiles": {"wide": {"nslots": 1, "cores-per-slot": 2, "nodes": 1}},
             "steps": {"*": "wide"}}
    cmd = "$(LAUNCHER) --dry-run true > inner.json\n$(LAUNCHER) nproc > nproc.txt"
    adapter = FluxAdapter(type="flux", **batch)
    step = make_step(name="inner", cmd=cmd)
    tmp_path.mkdir(exist_ok=True)
    _, script, _ = adapter.write_script(str(tmp_path), step)
    record = adapter.submit(step, script, str(tmp_path))
    assert wait_for(adapter, record.job_identifier) == State.FINISHED
    inner = json.loads((tmp_path / "inner.json").read_text())
    node = inner["resources"][0]
    assert (node["type"], node["count"]) == ("node", 1)
    slot = node["with"][0]
    assert slot["count"] == 1 and slot["with"] == [{"type": "core", "count": 2}]
    if flux_mode.real:  # the job shell binds each task to its cores
        assert (tmp_path / "nproc.txt").read_text().split() == ["2"]
