"""specs/gpu_production.yaml: a production-shaped GPU study, unchanged, on a
four-node instance with a GPU per node (a real broker claims GPUs the machine lacks
through ``resource.noverify``; the double models them), where the queue is dropped."""

from __future__ import annotations

import json
import os

import pytest
from brokers import ROOT, SCHED_VARIABLES, extra_broker, real_start_env
from test_header_matches_jobspec import read_header
from test_studies_end_to_end import maestro, statuses, study_env

from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter

SPEC = ROOT / "specs" / "gpu_production.yaml"


def test_the_gpu_requests_reach_the_header_the_jobspec_and_the_launcher(flux_mode, tmp_path,
                                                                       monkeypatch):
    import yaml
    from helpers import make_step

    spec = yaml.safe_load(SPEC.read_text())
    adapter = FluxAdapter(**spec["batch"])
    adapter.study.spec_root = str(ROOT / "specs")
    train = next(s for s in spec["study"] if s["name"] == "train")
    step = make_step(name="train", **train["run"])
    _, script, _ = adapter.write_script(str(tmp_path), step)
    text = open(script).read()
    header = read_header(text)
    assert (header.nodes, header.nslots, header.cores_per_slot, header.gpus_per_slot,
            header.exclusive, header.queue, header.bank) == (2, 2, 2, 1, True, None, "guests")
    assert "flux run -N2 -n2 -c2 -g1 sh -c" in text
    jobspec = json.loads(adapter.planner.jobspec(step, script, str(tmp_path))[0].dumps())
    node = jobspec["resources"][0]
    assert (node["type"], node["count"], node.get("exclusive")) == ("node", 2, True)
    assert node["with"][0]["with"] == [{"type": "core", "count": 2}, {"type": "gpu", "count": 1}]


def gpu_refusal(uri: str) -> str | None:
    """Why this broker's scheduler cannot place a GPU, or None if it can: a one-GPU job
    that must end one way or the other (sched-simple before 0.7x knows no 'gpu')."""
    flux = bindings.bindings()
    handle = bindings.connect(uri)
    jobspec = flux.job.JobspecV1.from_command(["true"], num_tasks=1, gpus_per_task=1)
    jobspec.environment = {"PATH": os.environ["PATH"]}
    jobid = flux.job.submit(handle, jobspec)
    result = flux.job.result(handle, jobid)  # it ends either way: run, or refused
    return None if result.returncode == 0 else (result.exception.note or "refused")


def test_the_gpu_study_runs_unchanged_on_four_nodes_with_gpus(flux_mode, tmp_path):
    with extra_broker(flux_mode, tmp_path / "broker", size=4, gpus=1) as broker:
        refusal = gpu_refusal(broker.uri) if flux_mode.real else None
        if refusal:
            pytest.skip(f"flux-core {flux_mode.version}'s scheduler cannot place GPUs "
                        f"({refusal}); the jobspec and launcher are checked above")
        outdir = tmp_path / "study"
        # The steps run in instances of their own, which load Fluxion as this one did (by
        # environment, where a site installs it with flux-core): else they would run
        # sched-simple, which in 0.76 knows no 'gpu'.
        sched = {k: v for k, v in real_start_env({}).items() if k in SCHED_VARIABLES}
        done = maestro(["run", "-fg", "-y", "-s", "1", "-o", str(outdir), str(SPEC)],
                       study_env(broker, **sched), tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert set(statuses(outdir).values()) == {"FINISHED"}
    assert done.stderr.count("queue 'pdebug' dropped from every step") == 1
    ranks = sorted((outdir / "train" / "ranks.txt").read_text().splitlines())
    if flux_mode.real:  # the job shell binds each rank to its cores and GPU
        assert ranks == ["rank 0 cores 2 gpus 0", "rank 1 cores 2 gpus 0"]
    else:
        assert [line.split()[:2] for line in ranks] == [["rank", "0"], ["rank", "1"]]
