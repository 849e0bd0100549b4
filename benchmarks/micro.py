"""In-process figures: submit cost, check_jobs, cancel_jobs and the conductor cycle.

Both adapters run in this process against the same broker, each on its own handle,
so their figures are side by side. Every job submitted here is held (urgency 0): it
never runs, so the 2-core machine is not busy running jobs while we time requests.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maestrowf.datastructures.core import StudyStep

from benchmarks import counting
from benchmarks.report import Row
from maestro_flux.broker import bindings
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDIES
from maestro_flux.maestro.submissions import Accepted
from maestro_flux.model import jobids

PIPELINED = "maestro-flux, a cycle's steps sent together (submit_async, then get_id)"


@dataclass
class Context:
    """What the micro benchmarks share: the two adapters, a workspace, the mode."""

    work: Path
    real: bool
    ours: FluxAdapter
    builtin: Any  # Maestro's FluxScriptAdapter, or None on the test double

    @property
    def flux(self) -> Any:
        return bindings.bindings()


def make_context(work: Path, real: bool) -> Context:
    counting.install(bindings.bindings())
    builtin = None
    if real:
        from maestrowf.interfaces import ScriptAdapterFactory

        builtin = ScriptAdapterFactory.get_adapter("flux-builtin")(type="flux-builtin")
    return Context(work, real, FluxAdapter(type="flux"), builtin)


def held_step(index: int, nested: bool = False) -> StudyStep:
    step = StudyStep()
    step.name = f"bench{index}"
    step.description = "a held trivial step"
    step.run.update(cmd="true", procs=1, nodes=1, nested=nested, priority="held")
    return step


def measured(operation: Callable[[], Any]) -> tuple[float, int, int, Any]:
    """(seconds, requests, connections, result) of one call."""
    before = counting.tally()
    started = time.perf_counter()
    result = operation()
    seconds = time.perf_counter() - started
    spent = counting.tally() - before
    return seconds, spent.requests, spent.connections, result


# -- submission ----------------------------------------------------------------
Submitter = Callable[[int], tuple[float, list[str]]]  # n -> (seconds, job ids)


def _prepared(ctx: Context, adapter: Any, tag: str, counter: Any, n: int) -> list[tuple]:
    """n held steps with their scripts written (untimed): (step, script, workspace)."""
    prepared = []
    for _ in range(n):
        step = held_step(next(counter))
        workspace = ctx.work / tag / step.name
        workspace.mkdir(parents=True)
        _, script, _ = adapter.write_script(str(workspace), step)
        prepared.append((step, script, str(workspace)))
    return prepared


def _adapter_submitter(ctx: Context, adapter: Any, tag: str) -> Submitter:
    """One ``adapter.submit`` call per step, as Maestro calls it."""
    counter = iter(range(10**9))

    def run(n: int) -> tuple[float, list[str]]:
        prepared = _prepared(ctx, adapter, tag, counter, n)
        started = time.perf_counter()
        records = [adapter.submit(step, script, cwd) for step, script, cwd in prepared]
        seconds = time.perf_counter() - started
        if any(record.submission_code.name != "OK" for record in records):
            raise RuntimeError(f"{tag}: a held step was not submitted")
        return seconds, [str(record.job_identifier) for record in records]

    return run


def _pipelined_submitter(ctx: Context) -> Submitter:
    """What a conductor cycle does: submit each written step (sent, a placeholder id
    back), then take every answer, as the study's submissions do at a round's end."""
    counter = iter(range(10**9))

    def run(n: int) -> tuple[float, list[str]]:
        prepared = _prepared(ctx, ctx.ours, "ours-pipelined", counter, n)
        submissions = ctx.ours.study.submissions
        submissions.in_cycle = []
        try:
            started = time.perf_counter()
            records = [ctx.ours.submit(step, script, cwd) for step, script, cwd in prepared]
            outcomes = [submissions.answer(pending) for pending in submissions.in_cycle]
            seconds = time.perf_counter() - started
        finally:
            submissions.in_cycle = None
        if any(r.submission_code.name != "OK" for r in records) or any(
                not isinstance(outcome, Accepted) for outcome in outcomes):
            raise RuntimeError("pipelined: a held step was not submitted")
        return seconds, [outcome.jobid for outcome in outcomes]

    return run


def _raw_submitters(ctx: Context) -> dict[str, Submitter]:
    """Bare bindings loops on their own handle, with the jobspec our adapter builds."""
    flux = ctx.flux
    handle = flux.Flux()
    step = held_step(-1)
    workspace = ctx.work / "raw"
    workspace.mkdir()
    _, script, _ = ctx.ours.write_script(str(workspace), step)
    jobspec, _, _ = ctx.ours.planner.jobspec(step, script, str(workspace))

    def sync(n: int) -> tuple[float, list[str]]:
        started = time.perf_counter()
        ids = [flux.job.submit(handle, jobspec, urgency=0) for _ in range(n)]
        return time.perf_counter() - started, [str(int(i)) for i in ids]

    def pipelined(n: int) -> tuple[float, list[str]]:
        started = time.perf_counter()
        futures = [flux.job.submit_async(handle, jobspec, urgency=0) for _ in range(n)]
        ids = [future.get_id() for future in futures]
        return time.perf_counter() - started, [str(int(i)) for i in ids]

    return {"bare flux.job.submit (sync)": sync, "flux.job.submit_async loop": pipelined}


def submission_rows(ctx: Context, jobs: int, rounds: int) -> tuple[list[Row], list[str]]:
    """Per-job submit cost of each path; rounds interleave the paths against noise."""
    paths = {"maestro-flux adapter.submit": _adapter_submitter(ctx, ctx.ours, "ours"),
             PIPELINED: _pipelined_submitter(ctx)}
    paths.update(_raw_submitters(ctx))
    if ctx.builtin is not None:
        paths["built-in adapter.submit (nested False)"] = _builtin_submitter(ctx)
    per_job: dict[str, list[float]] = {name: [] for name in paths}
    ids: list[str] = []
    chunk = max(1, jobs // rounds)
    for _ in range(rounds):
        for name, run in paths.items():
            seconds, new_ids = run(chunk)
            per_job[name].append(seconds / chunk)
            ids.extend(new_ids)
    rows = [Row("submit", name, statistics.median(values) * 1000, "ms/job",
                note=f"{1 / statistics.median(values):.0f} jobs/s; median of {rounds} rounds "
                     f"of {chunk}", extra={"per_round_ms": [v * 1000 for v in values]})
            for name, values in per_job.items()]
    if ctx.builtin is None:
        rows.append(Row.skipped("submit", "built-in adapter.submit (nested False)"))
    return rows, ids


def _builtin_submitter(ctx: Context) -> Submitter:
    return _adapter_submitter(ctx, ctx.builtin, "builtin")


def overhead_row(rows: list[Row]) -> Row:
    """Our per-call cost above a bare synchronous submit, in percent: the median of the
    rounds' paired ratios, since the two paths ran back to back in each round."""
    by_path = {row.path: row.extra["per_round_ms"] for row in rows if row.figure == "submit"
               and "per_round_ms" in row.extra}
    pairs = list(zip(by_path["maestro-flux adapter.submit"],
                     by_path["bare flux.job.submit (sync)"], strict=True))
    overhead = statistics.median(100.0 * (ours - bare) / bare for ours, bare in pairs)
    extra_ms = statistics.median(ours - bare for ours, bare in pairs)
    return Row("submit", "maestro-flux overhead above bare sync submit", overhead, "%",
               note=f"{extra_ms:.2f} ms per call; median over rounds of the paired "
                    "difference; target < 10%")


def hold_jobs(ctx: Context, count: int) -> list[str]:
    """count held jobs, submitted pipelined (untimed set-up for check and cancel)."""
    flux = ctx.flux
    handle = flux.Flux()
    jobspec = flux.job.JobspecV1.from_command(["true"])
    ids: list[str] = []
    for start in range(0, count, 1000):  # bounded batches keep the broker's queue short
        futures = [flux.job.submit_async(handle, jobspec, urgency=0)
                   for _ in range(min(1000, count - start))]
        ids.extend(jobids.f58_encode(int(future.get_id())) for future in futures)
    return ids


# -- polling and cancelling ----------------------------------------------------
def check_rows(ctx: Context, ids: list[str]) -> list[Row]:
    """check_jobs of len(ids) ids: ours cold (new process state) and steady, the built-in."""
    figure = f"check_jobs {len(ids)} ids"
    STUDIES.clear()
    rows = [_timed_row(figure, "maestro-flux, first call (connects)",
                       lambda: ctx.ours.check_jobs(ids), len(ids))]
    rows.append(_timed_row(figure, "maestro-flux, steady", lambda: ctx.ours.check_jobs(ids),
                           len(ids)))
    rows[-1].reference = True
    if ctx.builtin is None:
        return rows + [Row.skipped(figure, "built-in (JobList ids=)")]
    rows.append(_timed_row(figure, "built-in (JobList ids=)",
                           lambda: ctx.builtin.check_jobs(ids), len(ids)))
    return rows


def _timed_row(figure: str, path: str, operation: Callable[[], Any], expected: int) -> Row:
    seconds, requests, connections, result = measured(operation)
    code, states = result
    if code.name != "OK" or len(states) != expected:
        raise RuntimeError(f"{figure} via {path}: {code.name}, {len(states)} states")
    return Row(figure, path, seconds, "s", requests=requests, connections=connections)


def cancel_rows(ctx: Context, ours_ids: list[str], builtin_ids: list[str],
                cli_ids: list[str]) -> list[Row]:
    """cancel_jobs of equal sets of held jobs: one set per adapter, one for ``flux cancel``."""
    figure = f"cancel_jobs {len(ours_ids)} ids"
    rows = [_cancel_row(figure, "maestro-flux", ctx.ours, ours_ids)]
    if ctx.builtin is None:
        return rows + [Row.skipped(figure, "built-in (JobList ids= + cancel per job)"),
                       Row.skipped(figure, "flux cancel ID... (flux itself)")]
    rows.append(_cancel_row(figure, "built-in (JobList ids= + cancel per job)", ctx.builtin,
                            builtin_ids))
    started = time.perf_counter()
    done = subprocess.run(["flux", "cancel", *cli_ids], capture_output=True, text=True)
    rows.append(Row(figure, "flux cancel ID... (flux itself)", time.perf_counter() - started,
                    "s", note="includes the CLI's start-up" if done.returncode == 0
                    else f"NOT OK: {done.stderr.strip()[:80]}"))
    return rows


def _cancel_row(figure: str, path: str, adapter: Any, ids: list[str]) -> Row:
    seconds, requests, connections, record = measured(lambda: adapter.cancel_jobs(ids))
    if record.cancel_status.name != "OK":
        raise RuntimeError(f"{figure} via {path}: {record.cancel_status.name}")
    return Row(figure, path, seconds, "s", requests=requests, connections=connections)


# -- the conductor cycle -----------------------------------------------------
def cycle_rows(ctx: Context, in_progress: list[str], cycles: int = 3) -> list[Row]:
    """Requests and connections of adapter construction and of a steady cycle.

    A steady cycle is what Maestro's ExecutionGraph.execute_ready_steps does when
    nothing is ready: build the adapter, then (check_study_status) build it again
    and call check_jobs on every in-progress id.
    """
    rows = [_construction_row(ctx, "maestro-flux", lambda: FluxAdapter(type="flux"))]
    rows.append(_steady_row("maestro-flux", lambda: FluxAdapter(type="flux"), in_progress,
                            cycles))
    if ctx.builtin is None:
        return rows + [Row.skipped("adapter construction", "built-in"),
                       Row.skipped(f"steady cycle, {len(in_progress)} in progress", "built-in")]
    builtin_class = type(ctx.builtin)
    rows.append(_construction_row(ctx, "built-in", lambda: builtin_class(type="flux-builtin")))
    rows.append(_steady_row("built-in", lambda: builtin_class(type="flux-builtin"),
                            in_progress, cycles))
    return rows


def _construction_row(ctx: Context, path: str, build: Callable[[], Any]) -> Row:
    STUDIES.clear()
    if ctx.builtin is not None:  # the built-in keeps its handle on its interface class
        ctx.builtin._interface.flux_handle = None
    seconds, requests, connections, _ = measured(build)
    return Row("adapter construction", path, seconds * 1000, "ms", requests=requests,
               connections=connections, note="first in the process")


def _steady_row(path: str, build: Callable[[], Any], ids: list[str], cycles: int) -> Row:
    def cycle() -> None:
        build()
        build().check_jobs(ids)

    cycle()  # the first cycle connects; later ones are the steady state
    spent = [measured(cycle) for _ in range(cycles)]
    seconds, requests, connections, _ = spent[-1]
    return Row(f"steady cycle, {len(ids)} in progress", path, seconds * 1000, "ms",
               requests=requests, connections=connections,
               note=f"last of {cycles} cycles after a warm-up")
