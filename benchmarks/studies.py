"""End to end: ``maestro run -fg -s 1`` of N trivial steps, per path, and ``flux submit --cc``.

Each study is one step parameterised N ways (``echo $(X)``), so the N steps are
independent and all ready in the first conductor cycle, as in allocation packing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from benchmarks.report import Row
from maestro_flux.broker import bindings
from maestro_flux.model import jobids

STUDY = {
    "description": {"name": "trivial", "description": "N trivial echo steps"},
    "study": [{"name": "echo", "description": "echo one value",
               "run": {"cmd": "echo $(X)", "procs": 1}}],
}


@dataclass(frozen=True)
class StudyPath:
    """A way to run the study: a batch block and the step's ``nested`` key."""

    name: str
    batch: dict
    nested: bool | None = None
    env: dict = field(default_factory=dict)


OURS = StudyPath("maestro-flux", {"type": "flux"})
OURS_SERIAL = StudyPath("maestro-flux, one submit per step (MAESTRO_FLUX_PIPELINE=0)",
                        {"type": "flux"}, env={"MAESTRO_FLUX_PIPELINE": "0"})
BUILTIN = StudyPath("built-in, defaults (nested broker per step)", {"type": "flux-builtin"})
BUILTIN_DIRECT = StudyPath("built-in, nested: False", {"type": "flux-builtin"}, False)
CC = "flux submit --cc --wait (flux itself)"


def write_spec(folder: Path, steps: int, path: StudyPath) -> Path:
    study = json.loads(json.dumps(STUDY))
    study["batch"] = path.batch
    if path.nested is not None:
        study["study"][0]["run"]["nested"] = path.nested
    study["global.parameters"] = {"X": {"values": list(range(steps)), "label": "X.%%"}}
    spec = folder / f"{path.batch['type']}-{path.nested}-{len(path.env)}-{steps}.yaml"
    spec.write_text(yaml.safe_dump(study, sort_keys=False))
    return spec


def run_study(work: Path, steps: int, path: StudyPath) -> Row:
    """Wall time, success and conductor peak RSS of one study."""
    spec = write_spec(work, steps, path)
    out = work / f"out-{spec.stem}"
    rss = work / f"rss-{spec.stem}"
    wall, started = time.time(), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "benchmarks.maestro_rss", str(rss), "run",
                           "-fg", "-y", "-s", "1", "-o", str(out), str(spec)],
                          capture_output=True, text=True, env={**os.environ, **path.env})
    seconds = time.perf_counter() - started
    status = (out / "status.csv").read_text() if (out / "status.csv").exists() else ""
    finished = status.count(",FINISHED,")
    accepted = _last_accepted(status)
    ok = done.returncode == 0 and finished == steps
    peak = int(rss.read_text()) / 1024 if rss.exists() else None
    return Row(f"study {steps} steps", path.name, seconds, "s",
               note="" if ok else f"NOT OK: rc {done.returncode}, {finished} finished",
               extra={"ok": ok, "peak_rss_mib": peak, "finished": finished,
                      "all_accepted_after_s": accepted - wall if accepted else None})


def _last_accepted(status: str) -> float | None:
    """When the broker accepted the study's last job (its t_submit), exactly."""
    ids = {jobids.parse_jobid(row["Job ID"]) for row in csv.DictReader(io.StringIO(status))
           if row.get("Job ID", "--") not in ("--", "", "-1")}
    if not ids:
        return None
    flux = bindings.bindings()
    handle = flux.Flux()
    entries = flux.job.job_list(handle, max_entries=0, attrs=["t_submit"]).get_jobs()
    times = [entry["t_submit"] for entry in entries if entry["id"] in ids]
    return max(times) if len(times) == len(ids) else None


def run_flux_cc(steps: int) -> Row:
    started = time.perf_counter()
    done = subprocess.run(["flux", "submit", f"--cc=0-{steps - 1}", "--wait", "--quiet",
                           "echo", "{cc}"], capture_output=True)
    seconds = time.perf_counter() - started
    ok = done.returncode == 0
    return Row(f"study {steps} steps", CC, seconds, "s", note="" if ok else "NOT OK",
               extra={"ok": ok})


def study_rows(work: Path, sizes: list[int], builtin_sizes: list[int], real: bool,
               memory_sizes: list[int] = ()) -> list[Row]:
    """Every path at every size (the built-in at its defaults only at builtin_sizes), then
    maestro-flux alone at memory_sizes, for its conductor's peak RSS."""
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for steps in sizes:
        print(f"  study of {steps} steps ...", file=sys.stderr, flush=True)
        rows.append(run_study(work, steps, OURS))
        rows.append(run_study(work, steps, OURS_SERIAL))
        if not real:
            rows += [Row.skipped(f"study {steps} steps", name)
                     for name in (BUILTIN.name, BUILTIN_DIRECT.name, CC)]
            continue
        rows.append(run_flux_cc(steps))
        rows.append(run_study(work, steps, BUILTIN_DIRECT))
        if steps in builtin_sizes:
            rows.append(run_study(work, steps, BUILTIN))
        else:
            rows.append(Row.skipped(f"study {steps} steps", BUILTIN.name,
                                    "not run at this size (about 1 s per step); "
                                    "see --builtin-sizes"))
    for steps in [size for size in memory_sizes if size not in sizes]:
        print(f"  study of {steps} steps, maestro-flux alone ...", file=sys.stderr, flush=True)
        rows.append(run_study(work, steps, OURS))
    return rows + memory_rows(rows)


def memory_rows(rows: list[Row]) -> list[Row]:
    """Per maestro run: when its last step was submitted, and the conductor's peak RSS."""
    done = [row for row in rows if row.extra.get("finished") is not None]
    submitted = [Row(f"{row.figure}: last job accepted by the broker", row.path,
                     row.extra["all_accepted_after_s"], "s", note="seconds after start")
                 for row in done if row.extra["all_accepted_after_s"] is not None]
    return submitted + [Row(f"conductor peak RSS, {row.figure.split()[1]} steps", row.path,
                            row.extra["peak_rss_mib"], "MiB")
                        for row in done if row.extra.get("peak_rss_mib") is not None]
