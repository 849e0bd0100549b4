"""``maestro-flux status STUDY_DIR``: the study as Flux runs it, in the terminal (rich).

One line per step, or per parameter group of a level (folded, with counts, and its
members that ended badly listed under it), levels in graph order. ``--watch``
redraws in place (rich's Live, refreshed only when a new look is taken) every
``--interval`` seconds, at least one, until the study ends; ``--json`` prints the
same data (one JSON document, or one line per refresh with ``--watch``).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import asdict
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from maestro_flux.maestro.observe import Observer
from maestro_flux.model.study_view import (
    Row,
    Snapshot,
    StepView,
    auto_fold_above,
    counts_text,
    fold_names,
    rows,
)
from maestro_flux.model.timeline import duration_text

#: The colour of each category.
STYLES = {"done": "green", "running": "bold cyan", "queued": "yellow", "waiting": "blue",
          "not sent": "dim", "failed": "bold red", "timed out": "magenta",
          "cancelled": "red", "unknown": "dim red"}
#: Members of a folded group shown under it when they ended badly.
SHOWN_BAD = 5
#: Lines of the screen that are not step lines (header, totals, table head, notes).
CHROME = 9
MIN_INTERVAL = 1.0


def main(args: argparse.Namespace) -> int:
    logging.getLogger("maestro_flux.broker").setLevel(logging.CRITICAL)  # one line of ours
    observer = Observer(args.directory, uri=args.uri, offline=args.offline)
    if args.json:
        return _json(observer, args)
    console = Console(highlight=False)
    if not args.watch:
        console.print(render(observer.look(), console, args), crop=False)
        return 0
    return _watch(observer, console, args)


def snapshot_json(snapshot: Snapshot) -> dict:
    """The snapshot as JSON-ready data."""
    data = asdict(snapshot)
    data["totals"] = snapshot.totals()
    return data


def _json(observer: Observer, args: argparse.Namespace) -> int:
    while True:
        snapshot = observer.look().snapshot
        print(json.dumps(snapshot_json(snapshot), default=str), flush=True)
        if not args.watch or snapshot.ended:
            return 0
        time.sleep(max(MIN_INTERVAL, args.interval))


def _watch(observer: Observer, console: Console, args: argparse.Namespace) -> int:
    interval = max(MIN_INTERVAL, args.interval)
    try:
        with Live(console=console, auto_refresh=False, transient=False,
                  vertical_overflow="crop") as live:
            while True:
                started = time.monotonic()
                gathered = observer.look()
                live.update(render(gathered, console, args), refresh=True)
                if gathered.snapshot.ended:
                    return 0
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        return 130


def _fold_rule(args: argparse.Namespace, views: tuple[StepView, ...],
               console: Console) -> tuple[Any, int]:
    unfold: Any = ()
    if args.unfold is not None:
        unfold = args.unfold if args.unfold else True
    if args.fold_above is not None:
        return unfold, args.fold_above
    height = console.size.height if console.is_terminal else shutil.get_terminal_size().lines
    return unfold, auto_fold_above(len(views), max(10, height - CHROME))


def render(gathered: Any, console: Console, args: argparse.Namespace) -> Group:
    """The whole view of one look."""
    snapshot = gathered.snapshot
    unfold, fold_above = _fold_rule(args, snapshot.steps, console)
    lines = rows(snapshot.steps, unfold, fold_above)
    header = Text()
    header.append(snapshot.study, style="bold")
    header.append(f"  {snapshot.root}\n", style="dim")
    header.append("Flux: ", style="dim")
    header.append(snapshot.uri)
    if snapshot.conductor:
        header.append("   conductor: ", style="dim")
        header.append(snapshot.conductor,
                      style="red" if snapshot.conductor.startswith("gone") else "")
    header.append("   " + time.strftime("%H:%M:%S", time.localtime(snapshot.taken)),
                  style="dim")
    totals = Text(f"{len(snapshot.steps)} steps: ")
    for index, (name, count) in enumerate(snapshot.totals().items()):
        totals.append(", " if index else "")
        totals.append(f"{count} {name}", style=STYLES.get(name, ""))
    if snapshot.ended:
        totals.append("   the study has ended", style="bold")
    parts: list[Any] = [header, totals]
    if snapshot.broker:
        # one line, however long: the terminal wraps it, rich does not split it
        parts.append(Text(snapshot.broker, style="yellow", no_wrap=True,
                          overflow="ellipsis" if getattr(args, "watch", False) else "ignore"))
    parts.append(table(lines, snapshot.steps))
    return Group(*parts)


def table(lines: list[Row], views: tuple[StepView, ...]) -> Table:
    """The step lines, level by level."""
    groups = {view.name: view.group for view in views}
    sizes = Counter(view.group for view in views)
    grid = Table(box=None, pad_edge=False, header_style="bold dim", expand=False)
    for name, options in (("lvl", {"justify": "right"}), ("step", {"no_wrap": True}),
                          ("Maestro", {}), ("Flux", {}), ("job", {"no_wrap": True}),
                          ("waits on", {}), ("queue", {}), ("nodes", {}),
                          ("run", {"justify": "right"}), ("why", {"overflow": "fold"})):
        grid.add_column(name, **options)
    last_level = None
    for row in lines:
        level = str(row.level) if row.level != last_level else ""
        last_level = row.level
        if row.folded:
            _folded(grid, row, level)
            continue
        view = row.steps[0]
        style = STYLES.get(view.category, "")
        grid.add_row(level, Text(view.name, style=style), view.maestro,
                     Text(view.flux or "-", style=style),
                     _job(view), fold_names(view.waits_on, groups, sizes),
                     view.queue or "", _nodes(view), duration_text(view.runtime),
                     Text(view.reason or "", style="red" if view.reason else ""))
    return grid


def _job(view: StepView) -> str:
    if not view.jobid:
        return "-"
    return view.jobid + (f" ({view.jobs})" if view.jobs > 1 else "")


def _nodes(view: StepView) -> str:
    if view.nodes:
        return view.nodes
    return str(view.nnodes) if view.nnodes else ""


def _folded(grid: Table, row: Row, level: str) -> None:
    style = STYLES.get(row.category, "")
    maestro = Counter(view.maestro for view in row.steps)
    runs = [view.runtime for view in row.steps if view.runtime is not None]
    queues = sorted({view.queue for view in row.steps if view.queue})
    grid.add_row(level, Text(f"{row.label} ({len(row.steps)})", style=style),
                 ", ".join(f"{n} {s}" for s, n in maestro.most_common(3)),
                 Text(counts_text(row.counts), style=style), "", "", ", ".join(queues), "",
                 f"≤{duration_text(max(runs))}" if runs else "-", "")
    bad = row.bad
    for view in bad[:SHOWN_BAD]:
        grid.add_row("", Text(f" └ {view.name}", style=STYLES.get(view.category, "")),
                     view.maestro, Text(view.flux or "-", style=STYLES.get(view.category, "")),
                     _job(view), "", view.queue or "", _nodes(view),
                     duration_text(view.runtime), Text(view.reason or "", style="red"))
    if len(bad) > SHOWN_BAD:
        grid.add_row("", Text(f" └ +{len(bad) - SHOWN_BAD} more: --unfold {row.group}",
                              style="dim"), "", "", "", "", "", "", "", "")
