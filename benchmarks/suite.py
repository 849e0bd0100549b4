"""The order the figures are taken in: studies first (in a fresh instance), then the
in-process figures, which leave thousands of jobs behind."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from benchmarks import micro
from benchmarks.critical_path import critical_path_rows
from benchmarks.faults import fault_rows
from benchmarks.ready_queue import ready_queue_rows
from benchmarks.report import Row
from benchmarks.resume import resume_rows
from benchmarks.scale import scale_rows
from benchmarks.studies import study_rows
from benchmarks.views import view_rows
from benchmarks.wake import wake_rows


def run_all(args: argparse.Namespace, work: Path, real: bool) -> list[Row]:
    rows: list[Row] = []
    if args.only == "faults":
        print("faults ...", file=sys.stderr, flush=True)
        return fault_rows(work / "faults", args.fault_sizes, args.kills, args.seed,
                          args.fault_kinds.split(","), args.ssh)
    if args.only == "scale":
        print("large sweeps ...", file=sys.stderr, flush=True)
        return scale_rows(work / "scale", args.scale_sizes, real)
    if args.only == "wake":
        print("waking on Flux ...", file=sys.stderr, flush=True)
        return wake_rows(work / "wake", args.idle_sizes)
    if args.only == "ready-queue":
        return ready_queue_rows(args.queue_sizes)
    if args.only == "resume":
        print("resume of a study killed in its first cycle ...", file=sys.stderr, flush=True)
        return resume_rows(work / "resume", args.resume_steps, args.resume_earlier,
                           args.resume_kill_at, args.ssh)
    if args.only == "views":
        print("views ...", file=sys.stderr, flush=True)
        return view_rows(work / "views", args.view_sizes)
    if args.only == "critical-path":
        print("critical paths ...", file=sys.stderr, flush=True)
        return critical_path_rows(work / "critical-path", real, args.sleeps,
                                  args.level_seconds, args.funnel_leaves)
    if args.only != "micro":
        print("end-to-end studies ...", file=sys.stderr, flush=True)
        rows += study_rows(work / "studies", args.steps, args.builtin_sizes, real,
                           args.memory_sizes)
    if args.only != "studies":
        with contextlib.redirect_stdout(io.StringIO()):  # the built-in prints per step
            rows += micro_rows(args, work / "micro", real)
    if args.only is None:
        print("views ...", file=sys.stderr, flush=True)
        rows += view_rows(work / "views", args.view_sizes)
    return rows


def micro_rows(args: argparse.Namespace, work: Path, real: bool) -> list[Row]:
    work.mkdir(parents=True, exist_ok=True)
    ctx = micro.make_context(work, real)
    print("conductor cycle ...", file=sys.stderr, flush=True)
    rows = micro.cycle_rows(ctx, micro.hold_jobs(ctx, args.cycle_ids))
    print("submission ...", file=sys.stderr, flush=True)
    submitted, _ = micro.submission_rows(ctx, args.submit_jobs, args.rounds)
    rows += submitted + [micro.overhead_row(submitted)]
    population: list[str] = []
    for count in sorted(args.ids):  # each check sees about as many active jobs as ids
        population += micro.hold_jobs(ctx, count - len(population))
        print(f"check_jobs of {count} ids ...", file=sys.stderr, flush=True)
        rows += micro.check_rows(ctx, population[:count])
    print("cancel_jobs ...", file=sys.stderr, flush=True)
    cancel = args.cancel_ids
    population += micro.hold_jobs(ctx, max(0, 3 * cancel - len(population)))
    sets = [population[k * cancel:(k + 1) * cancel] for k in range(3)]
    rows += micro.cancel_rows(ctx, *sets)
    ctx.ours.cancel_jobs(population[3 * cancel:])  # leave nothing held behind
    return rows
