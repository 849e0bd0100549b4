"""The maestro-flux command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from brokers import ROOT

BIN = Path(sys.executable).parent


def cli(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maestro-flux"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_version_names_every_version_and_the_mechanism():
    out = cli("--version").stdout.splitlines()
    assert out[0].startswith("maestro-flux ")
    assert out[1].startswith("maestrowf 1.")
    assert out[2].startswith("flux-python ")  # a version, or "not installed"
    assert out[3].startswith("mechanism: shim module ") and "zz_maestro_flux.py" in out[3]


def test_run_without_flux_explains_and_can_fall_back_to_a_dry_run(tmp_path):
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "flux").exists())
    env = {k: v for k, v in os.environ.items() if k != "FLUX_URI"}
    env.update(PATH=f"{BIN}{os.pathsep}{path}", FLUX_URI=f"local://{tmp_path}/none/local-0")
    spec = str(ROOT / "specs" / "hello_world.yaml")
    refused = cli("run", spec, env=env, cwd=tmp_path)
    assert refused.returncode == 2
    assert "flux-core is not installed here" in refused.stderr and "--dry" in refused.stderr
    dry = cli("run", "--dry-without-flux", spec, env=env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "DRY RUN" in dry.stderr
    assert "dry run complete: 4 step script(s)" in dry.stderr
    assert "#flux: --time-limit=60s" in dry.stdout


def test_run_uses_a_reachable_broker(flux_mode, tmp_path):
    env = {**os.environ, **flux_mode.env, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = cli("run", str(ROOT / "specs" / "hello_world.yaml"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"submitting to the running broker at {flux_mode.uri}" in done.stderr
    status = next(tmp_path.glob("studies/*/status.csv")).read_text()
    assert status.count("FINISHED") == 4


def test_render_shows_each_step_script_and_jobspec(flux_mode, tmp_path):
    env = {**os.environ, **flux_mode.env}
    done = cli("render", str(ROOT / "specs" / "template_study.yaml"), "--format", "json",
               env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("==> step ") == 3 and out.count("--- jobspec (json)") == 3
    assert "==> step simulate_SIZE.20 (profile: batch)" in out
    assert "export PARAM_SIZE=20" in out and "#flux: --time-limit=120s" in out
    assert '"user": {' in out and '"owner": "maestro-flux"' in out
    assert f"broker: {flux_mode.uri} (from FLUX_URI environment variable)" in out
    assert not list(tmp_path.iterdir())  # nothing is left behind


def test_render_one_step_of_a_profiles_study(flux_mode, tmp_path):
    env = {**os.environ, **flux_mode.env}
    done = cli("render", str(ROOT / "specs" / "profiles_study.yaml"), "--step", "spread",
               env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("==> step ") == 1
    assert "==> step spread (profile: wide)" in done.stdout
    assert "#flux: --nslots=2" in done.stdout and "#flux: --urgency=12" in done.stdout
    assert "#flux: --setattr=user.kind=wide" in done.stdout
    assert "duration: 120.0" in done.stdout  # the step's walltime beats the profile's 3m


def test_render_without_bindings_says_what_it_could_not_check(tmp_path):
    env = {**os.environ, "MAESTRO_FLUX_BINDINGS": "no_such_bindings_module"}
    done = cli("render", str(ROOT / "specs" / "hello_world.yaml"), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("--- jobspec: not built, so not checked by the bindings (the "
                             "#flux: lines above are what it would ask for): the Flux Python "
                             "bindings cannot be imported") == 4
    assert done.stdout.count("#flux: --time-limit=60s") == 4


def test_render_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "specs" / "hello_world.yaml").read_text().replace(
        "type: flux", "type: flux\n  quue: x"))
    for args, message in [
        ((str(bad),), "batch: unknown key 'quue' (did you mean 'queue'?)"),
        ((str(ROOT / "specs" / "hello_world.yaml"), "--step", "nope"), "no step named 'nope'"),
        ((str(tmp_path / "missing.yaml"),), "missing.yaml: no such study specification"),
    ]:
        done = cli("render", *args, cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr, done.stderr


def test_run_private_starts_an_instance_even_where_a_broker_is_reachable(monkeypatch):
    from maestro_flux.cli import runner

    started = []
    monkeypatch.setattr(runner, "_reachable_broker", lambda: "the system instance")
    monkeypatch.setattr(runner.bindings, "bindings", lambda: None)
    monkeypatch.setattr(runner.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(runner.subprocess, "call", lambda command: started.append(command) or 0)
    spec = str(ROOT / "specs" / "hello_world.yaml")
    assert runner.run_study(spec, size=3, private=True) == 0
    assert started[0][:3] == ["flux", "start", "--test-size=3"]
    started.clear()
    assert runner.run_study(spec) == 0  # without it, the reachable broker is used
    assert started[0][0] != "flux" and spec in started[0]
