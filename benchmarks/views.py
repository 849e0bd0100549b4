"""The views at scale (issue 27): ``maestro-flux status`` and ``report`` of a study of
10,000 steps, from its files (``--offline``: the pickled graph, the journal, the
steps' times as Maestro kept them), so that the figure is the views' own work and not
the broker's. Targets: status renders in under 1 s, the report is written in under 10 s.

The study is made, not run: Maestro's own ExecutionGraph of a sweep into a funnel and
a chain (``sim_X.0`` ... ``gather`` ``chain0`` ...), every step FINISHED with a job id
and times, pickled as the conductor pickles it, with the journal maestro-flux keeps.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import time
from pathlib import Path

import dill

from benchmarks.report import Row

CHAIN = 9


def make_study(folder: Path, steps: int) -> Path:
    """A finished study of ``steps`` steps in ``folder``."""
    from maestrowf.abstracts.enums import State
    from maestrowf.datastructures.core import StudyStep
    from maestrowf.datastructures.core.executiongraph import SOURCE, ExecutionGraph

    from maestro_flux.model.jobids import f58_encode

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batch.info").write_text("type: flux\n")
    graph = ExecutionGraph()
    graph.add_description("views_bench", "a sweep, a funnel, a chain")
    graph.set_adapter({"type": "flux"})
    graph.add_node(SOURCE, None)
    leaves = steps - 1 - CHAIN
    names = [f"sim_X.{i}" for i in range(leaves)] + ["gather"] + \
        [f"chain{i}" for i in range(CHAIN)]
    start = datetime.datetime.now() - datetime.timedelta(hours=1)
    journal = []
    for index, name in enumerate(names):
        step = StudyStep()
        step.name, step.description = name, name
        step.run.update(cmd="true")
        base = "sim" if name.startswith("sim_") else name
        workspace = folder / base / (name.split("_", 1)[1] if base == "sim" else "")
        graph.add_step(name, step, str(workspace), 1)
        if name.startswith("sim_"):
            graph.add_connection(SOURCE, name)
        elif name == "gather":
            for leaf in names[:leaves]:
                graph.add_connection(leaf, name)
        else:
            graph.add_connection(names[index - 1], name)
        record = graph.values[name]
        jobid = f58_encode(10_000_000_000 + index * 4096)
        record.jobid.append(jobid)
        level = 0 if name.startswith("sim_") else (1 if name == "gather" else
                                                  2 + int(name[5:]))
        record._submit_time = start + datetime.timedelta(seconds=level * 10)
        record._start_time = record._submit_time + datetime.timedelta(seconds=1)
        record._end_time = record._submit_time + datetime.timedelta(seconds=8)
        record.status = State.FINISHED
        token = f"{index:016x}"
        journal.append({"event": "intent", "step": name, "token": token, "kind": "maestro",
                        "v": 1})
        journal.append({"event": "submitted", "step": name, "token": token, "jobid": jobid,
                        "v": 1})
    with open(folder / "views_bench.pkl", "wb") as handle:
        dill.dump(graph, handle)
    meta = folder / "meta" / "maestro-flux"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in journal))
    return folder


def status_seconds(folder: Path) -> tuple[float, int]:
    """Seconds to read the study's files and render the status view; lines drawn."""
    from rich.console import Console

    from maestro_flux.cli import status
    from maestro_flux.maestro.observe import Observer

    args = argparse.Namespace(unfold=None, fold_above=None, watch=False)
    started = time.perf_counter()
    observer = Observer(str(folder), offline=True)
    console = Console(file=io.StringIO(), width=160, height=50, force_terminal=True)
    console.print(status.render(observer.look(), console, args))
    seconds = time.perf_counter() - started
    return seconds, console.file.getvalue().count("\n")


def report_seconds(folder: Path) -> tuple[float, int]:
    """Seconds to read the study's files and write its report; its size in bytes."""
    from maestro_flux.cli import report
    from maestro_flux.maestro.observe import Observer

    started = time.perf_counter()
    text = report.build(Observer(str(folder), offline=True, eventlogs=True).look())
    (folder / "report.html").write_text(text)
    return time.perf_counter() - started, len(text.encode())


def view_rows(work: Path, sizes: list[int]) -> list[Row]:
    rows = []
    for steps in sizes:
        folder = make_study(work / f"study-{steps}", steps)
        seconds, lines = status_seconds(folder)
        rows.append(Row("views", f"maestro-flux status, {steps} steps, from files", seconds,
                        "s", note=f"{lines} lines drawn; target < 1 s"))
        seconds, size = report_seconds(folder)
        rows.append(Row("views", f"maestro-flux report, {steps} steps, from files", seconds,
                        "s", note=f"{size / 1e6:.1f} MB; target < 10 s"))
    return rows


if __name__ == "__main__":
    import sys
    import tempfile

    for row in view_rows(Path(tempfile.mkdtemp(prefix="mf-views-")),
                         [int(n) for n in (sys.argv[1:] or ["10000"])]):
        print(f"{row.path}: {row.value:.3f} {row.unit} ({row.note})")
