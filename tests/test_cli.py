"""The maestro-flux command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

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
