"""Wall time of a study of N trivial steps, per adapter, side by side in one broker.

Run inside a Flux instance so every path shares it:

    flux start --test-size=1 python benchmarks/trivial_study.py --steps 200

Paths: maestro-flux (``type: flux``), Maestro's built-in adapter at its defaults
(``type: flux-builtin``, a nested broker per step) and with ``nested: False``, and
``flux submit --cc`` of the same commands. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STUDY = {
    "description": {"name": "trivial", "description": "N trivial echo steps"},
    "study": [{"name": "echo", "description": "echo one value",
               "run": {"cmd": "echo $(X)", "procs": 1}}],
}


def write_spec(folder: Path, steps: int, batch: dict, nested: bool | None) -> Path:
    study = json.loads(json.dumps(STUDY))
    study["batch"] = batch
    if nested is not None:
        study["study"][0]["run"]["nested"] = nested
    study["global.parameters"] = {"X": {"values": list(range(steps)), "label": "X.%%"}}
    path = folder / f"{batch['type']}-{nested}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def time_study(spec: Path, out: Path) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "maestrowf.maestro", "-d", "4", "run", "-fg",
                           "-y", "-s", "1", "-o", str(out), str(spec)], capture_output=True)
    elapsed = time.perf_counter() - started
    status = (out / "status.csv").read_text() if (out / "status.csv").exists() else ""
    return elapsed, done.returncode == 0 and "FAILED" not in status


def time_flux_cc(steps: int) -> tuple[float, bool]:
    started = time.perf_counter()
    done = subprocess.run(["flux", "submit", f"--cc=0-{steps - 1}", "--wait", "--quiet",
                           "echo", "{cc}"], capture_output=True)
    return time.perf_counter() - started, done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--paths", default="flux,flux-builtin,flux-builtin-direct,flux-cc")
    parser.add_argument("--json", default="benchmarks/results/trivial_study.json")
    args = parser.parse_args()
    if shutil.which("flux") is None:
        print("needs a real broker: run inside 'flux start'", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mf-bench-"))
    paths = {
        "flux": ({"type": "flux"}, None),
        "flux-builtin": ({"type": "flux-builtin"}, None),
        "flux-builtin-direct": ({"type": "flux-builtin"}, False),
    }
    results = {}
    for name in args.paths.split(","):
        print(f"running {args.steps} steps through {name} ...", file=sys.stderr, flush=True)
        if name == "flux-cc":
            results[name] = time_flux_cc(args.steps)
        else:
            batch, nested = paths[name]
            spec = write_spec(work, args.steps, batch, nested)
            results[name] = time_study(spec, work / name)
    reference = results.get("flux", (None,))[0]
    print(f"{'path':<22}{'seconds':>10}{'vs maestro-flux':>18}  ok")
    for name, (seconds, ok) in results.items():
        ratio = f"{seconds / reference:.2f}x" if reference else "-"
        print(f"{name:<22}{seconds:>10.1f}{ratio:>18}  {ok}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"steps": args.steps, "results": {
        k: {"seconds": v[0], "ok": v[1]} for k, v in results.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
