"""The issues' targets, judged from one run's rows."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from benchmarks.critical_path import NATIVE, PATHS
from benchmarks.report import Row
from benchmarks.studies import BUILTIN, CC, OURS


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool | None  # None: not measured in this run

    def as_dict(self) -> dict:
        return asdict(self)


def _find(rows: list[Row], figure: str, path: str) -> Row | None:
    for row in rows:
        if row.figure == figure and row.path == path and row.value is not None:
            return row
    return None


def _study(rows: list[Row], steps: int) -> list[Verdict]:
    figure = f"study {steps} steps"
    ours, builtin, cc = (_find(rows, figure, p) for p in (OURS.name, BUILTIN.name, CC))
    if ours is None:
        return []
    verdicts = []
    if builtin is None:
        verdicts.append(Verdict(f"{figure}: >= 5x faster than built-in defaults",
                                "built-in at defaults not run at this size", None))
    else:
        speedup = builtin.value / ours.value
        verdicts.append(Verdict(f"{figure}: >= 5x faster than built-in defaults",
                                f"{speedup:.1f}x", speedup >= 5))
    if cc is not None:
        ratio = ours.value / cc.value
        verdicts.append(Verdict(f"{figure}: within 1.5x of flux submit --cc --wait",
                                f"{ratio:.2f}x", ratio <= 1.5))
    return verdicts


def _check(rows: list[Row], ids: int) -> list[Verdict]:
    figure = f"check_jobs {ids} ids"
    ours = _find(rows, figure, "maestro-flux, steady")
    builtin = _find(rows, figure, "built-in (JobList ids=)")
    if ours is None:
        return []
    verdicts = [Verdict(f"{figure}: one RPC", f"{ours.requests} request(s)",
                        ours.requests == 1)]
    if builtin is not None:
        speedup = builtin.value / ours.value
        verdicts.append(Verdict(f"{figure}: >= 3x faster than built-in", f"{speedup:.1f}x",
                                speedup >= 3))
    return verdicts


def _cancel(rows: list[Row], ids: int) -> list[Verdict]:
    ours = _find(rows, f"cancel_jobs {ids} ids", "maestro-flux")
    if ours is None:
        return []
    return [Verdict(f"cancel_jobs {ids} ids: <= 0.2 s, no per-job round trip",
                    f"{ours.value:.3f} s, {ours.requests} requests in one reactor pass",
                    ours.value <= 0.2)]


def _cycle(rows: list[Row], in_progress: int) -> list[Verdict]:
    built = _find(rows, "adapter construction", "maestro-flux")
    steady = _find(rows, f"steady cycle, {in_progress} in progress", "maestro-flux")
    verdicts = []
    if built is not None:
        verdicts.append(Verdict("adapter construction: zero RPCs",
                                f"{built.requests} requests, {built.connections} connections",
                                built.requests == 0 and built.connections == 0))
    if steady is not None:
        verdicts.append(Verdict("steady cycle, nothing to submit: <= 1 RPC",
                                f"{steady.requests} request(s)", steady.requests <= 1))
    return verdicts


def _submit(rows: list[Row]) -> list[Verdict]:
    overhead = _find(rows, "submit", "maestro-flux overhead above bare sync submit")
    if overhead is None:
        return []
    return [Verdict("submit: overhead above bare sync submit < 10%",
                    f"{overhead.value:.1f}%", overhead.value < 10)]


def judge(rows: list[Row], args: argparse.Namespace) -> list[Verdict]:
    verdicts = []
    for steps in args.steps:
        verdicts += _study(rows, steps)
    verdicts += _check(rows, max(args.ids)) + _cancel(rows, args.cancel_ids)
    verdicts += _cycle(rows, args.cycle_ids) + _submit(rows)
    for sleep in args.sleeps:
        verdicts += _critical(rows, sleep)
    return verdicts + _resume(rows)


#: Issue 25: a chain ends within Flux's own time for it plus this, whatever the sleep.
WAKE_MARGIN = 3.0


def _critical(rows: list[Row], sleep: int) -> list[Verdict]:
    """Issue 25: the conductor wakes on Flux, so a chain finishes within Flux's own time
    for it plus WAKE_MARGIN seconds, whatever -s says."""
    figure = next((row.figure for row in rows
                   if row.figure.startswith("chain") and row.figure.endswith(f"-s {sleep}")),
                  None)
    ours = _find(rows, figure, PATHS[0][0]) if figure else None
    native = _find(rows, figure, NATIVE) if figure else None
    if ours is None or native is None:
        return []
    bound = native.value + WAKE_MARGIN
    return [Verdict(f"{figure}: within Flux's own time + {WAKE_MARGIN:g} s ({bound:.1f} s)",
                    f"{ours.value:.1f} s", ours.value <= bound)]


#: Issue 23: resume of a 10,000-step study killed in its first cycle, at most this.
RESUME_SECONDS = 10.0


def _resume(rows: list[Row]) -> list[Verdict]:
    """Each resume figure against RESUME_SECONDS, with the broker's own listing time."""
    verdicts = []
    for row in rows:
        if not (row.figure.startswith("resume of") and row.path.startswith("maestro-flux")
                and row.value is not None):
            continue
        where = row.path.removeprefix("maestro-flux resume, ")
        floor = _find(rows, row.figure, f"job-list.list alone, sent just before ({where} run)")
        alone = f" (job-list alone {floor.value:.1f} s)" if floor else ""
        verdicts.append(Verdict(f"{row.figure}, {where}: <= {RESUME_SECONDS:g} s",
                                f"{row.value:.1f} s{alone}", row.value <= RESUME_SECONDS))
    return verdicts
