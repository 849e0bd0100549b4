"""``maestro-flux report STUDY_DIR [-o report.html]``: the study in one HTML file.

The file holds everything it shows: plotly.js is inlined (no CDN, no MathJax, no web
font), so it opens on a login node or a laptop in a plane. It has:

- a summary: wall time, the sum of run times, time spent queued and waiting on
  dependencies, failures with their reasons, the critical path, and what Flux holding
  the dependencies saved against one level per conductor cycle (model/timeline.py);
- the study's graph, coloured by final state, in layers (networkx's multipartite
  layout, each layer ordered by model/study_view.graph_nodes), a level's parameter
  group of more than ``--fold-above`` steps drawn as one node with its counts;
- a timeline of every job (waiting on dependencies, queued, running, cleanup) from
  Flux's eventlog times, the critical path's jobs outlined.

Why plotly and networkx rather than hand-written SVG: docs/pages/design.md.
"""

from __future__ import annotations

import argparse
import html
import logging
import time
from pathlib import Path
from typing import Any

import networkx
import plotly.graph_objects as go
import plotly.io

from maestro_flux import __version__
from maestro_flux.maestro.observe import Gathered, Observer, held_in_flux
from maestro_flux.model.errors import MaestroFluxError
from maestro_flux.model.study_view import CATEGORIES, counts_text, graph_nodes
from maestro_flux.model.timeline import JobTimes, Summary, duration_text, summarize, timeline

#: Category -> colour (colour-blind-safe where it matters: done/failed differ in lightness).
COLOURS = {"done": "#2e9e44", "running": "#17becf", "queued": "#f2b701", "waiting": "#4a7fd4",
           "not sent": "#b8b8b8", "failed": "#d62728", "timed out": "#9467bd",
           "cancelled": "#ff7f0e", "unknown": "#7f7f7f"}
PHASE_COLOURS = {"waiting": "#9ec5fe", "queued": "#f2b701", "running": "#2e9e44",
                 "cleanup": "#8c8c8c", "maestro": "#c9c9c9"}
PHASE_NAMES = {"waiting": "waiting on dependencies", "queued": "queued",
               "running": "running", "cleanup": "cleanup",
               "maestro": "Maestro's times (Flux no longer knows the job)"}
CRITICAL = "#b0006d"
#: Node labels are drawn up to this many nodes; beyond, hover tells.
LABELLED = 80


def main(args: argparse.Namespace) -> int:
    logging.getLogger("maestro_flux.broker").setLevel(logging.CRITICAL)
    observer = Observer(args.directory, uri=args.uri, eventlogs=True, offline=args.offline)
    gathered = observer.look()
    output = Path(args.output) if args.output else observer.root / "report.html"
    text = build(gathered, args.fold_above)
    try:
        output.write_text(text)
    except OSError as err:
        raise MaestroFluxError(f"{output}: cannot be written ({err.strerror})") from None
    if gathered.snapshot.broker:
        print(f"maestro-flux: {gathered.snapshot.broker}")
    print(f"wrote {output} ({len(gathered.snapshot.steps)} steps, "
          f"{sum(len(ids) for ids in gathered.history.values())} jobs)")
    return 0


def figures(gathered: Gathered, fold_above: int) -> tuple[go.Figure, go.Figure, Summary,
                                                         list[JobTimes]]:
    """The graph and timeline figures, the summary and the jobs' times."""
    snapshot = gathered.snapshot
    now = snapshot.taken
    times = timeline(gathered.steps, snapshot.steps, gathered.jobs, now, gathered.history)
    summary = summarize(gathered.steps, snapshot.steps, times, snapshot.sleep,
                        held_in_flux(gathered.replay), now)
    return (graph_figure(gathered, fold_above, set(summary.critical)),
            timeline_figure(times, set(summary.critical), gathered), summary, times)


def graph_figure(gathered: Gathered, fold_above: int, critical: set[str]) -> go.Figure:
    """The study's graph, in layers, coloured by final state."""
    parents = {step.name: step.parents for step in gathered.steps}
    nodes, edges = graph_nodes(gathered.snapshot.steps, parents, fold_above)
    layout = networkx.DiGraph()
    for node in nodes:
        layout.add_node(node.key, layer=node.level)
    layout.add_edges_from(edges)
    where = networkx.multipartite_layout(layout, subset_key="layer", align="vertical") \
        if nodes else {}
    figure = go.Figure()
    on_path = {node.key for node in nodes if any(v.name in critical for v in node.steps)}
    _edge_traces(figure, edges, where, on_path)
    _node_traces(figure, nodes, where, on_path)
    levels = max((node.level for node in nodes), default=0) + 1
    widest = max((sum(1 for n in nodes if n.level == lv) for lv in range(levels)), default=1)
    figure.update_layout(
        height=max(320, min(1400, 60 * widest + 120)),
        margin={"l": 20, "r": 20, "t": 40, "b": 20},
        xaxis={"visible": False}, yaxis={"visible": False}, plot_bgcolor="white",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom"}, hovermode="closest")
    return figure


def _edge_traces(figure: go.Figure, edges: list, where: dict, on_path: set) -> None:
    """The dependencies, those on the critical path drawn thicker."""
    for chosen, colour, width in ((False, "#9a9a9a", 1), (True, CRITICAL, 3)):
        xs: list[Any] = []
        ys: list[Any] = []
        for source, target in edges:
            if ((source in on_path and target in on_path) != chosen):
                continue
            xs += [where[source][0], where[target][0], None]
            ys += [where[source][1], where[target][1], None]
        if xs:
            figure.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip",
                                        line={"color": colour, "width": width},
                                        name="critical path" if chosen else "depends on",
                                        showlegend=chosen))


def _node_traces(figure: go.Figure, nodes: list, where: dict, on_path: set) -> None:
    """The steps (a folded group as one square), one trace per state."""
    labelled = len(nodes) <= LABELLED
    for category in CATEGORIES:
        members = [node for node in nodes if node.category == category]
        if not members:
            continue
        figure.add_trace(go.Scatter(
            x=[where[n.key][0] for n in members], y=[where[n.key][1] for n in members],
            mode="markers+text" if labelled else "markers", name=category,
            text=[n.label for n in members], textposition="top center",
            customdata=[n.key for n in members],
            hovertext=[_node_hover(n) for n in members], hoverinfo="text",
            marker={"size": [min(34, 14 + 2 * len(n.steps) ** 0.5) for n in members],
                    "color": COLOURS[category], "symbol": ["square" if n.folded else "circle"
                                                           for n in members],
                    "line": {"width": [3 if n.key in on_path else 1 for n in members],
                             "color": [CRITICAL if n.key in on_path else "#333"
                                       for n in members]}}))


def _node_hover(node: Any) -> str:
    if node.folded:
        lines = [f"<b>{html.escape(node.label)}</b>", counts_text(node.counts)]
        bad = [v for v in node.steps if v.reason][:5]
        lines += [f"{html.escape(v.name)}: {html.escape(v.reason or '')}" for v in bad]
        return "<br>".join(lines)
    view = node.steps[0]
    lines = [f"<b>{html.escape(view.name)}</b>", f"Maestro {view.maestro}, "
             f"Flux {view.flux or '-'}", f"job {view.jobid or '-'}"
             f"{f' ({view.jobs} jobs)' if view.jobs > 1 else ''}",
             f"run {duration_text(view.runtime)}"]
    if view.reason:
        lines.append(html.escape(view.reason))
    return "<br>".join(lines)


def timeline_figure(times: list[JobTimes], critical: set[str], gathered: Gathered) -> go.Figure:
    """One bar per phase of every job, on seconds since the study's first submission."""
    origin = min((t.submitted or t.start for t in times if t.start is not None), default=0.0)
    rows = [f"{t.step}" + (f" #{t.attempt}" if t.attempt > 1 else "") for t in times]
    figure = go.Figure()
    for phase in PHASE_COLOURS:
        xs, bases, ys, hovers, lines = [], [], [], [], []
        for row, entry in zip(rows, times, strict=True):
            for span in entry.spans:
                if span.phase != phase:
                    continue
                xs.append(span.seconds)
                bases.append(span.start - origin)
                ys.append(row)
                hovers.append(f"{html.escape(row)} {entry.jobid or ''}<br>"
                              f"{PHASE_NAMES[phase]} {duration_text(span.seconds)} "
                              f"(+{duration_text(span.start - origin)})"
                              + (f"<br>{html.escape(entry.reason)}" if entry.reason else ""))
                lines.append(CRITICAL if entry.step in critical and phase == "running"
                             else "rgba(0,0,0,0)")
        if xs:
            figure.add_trace(go.Bar(
                x=xs, base=bases, y=ys, orientation="h", name=PHASE_NAMES[phase],
                marker={"color": PHASE_COLOURS[phase], "line": {"color": lines, "width": 2}},
                hovertext=hovers, hoverinfo="text", customdata=[entry_id for entry_id in ys]))
    count = len(times)
    figure.update_layout(
        barmode="overlay", height=max(260, min(2400, 18 * count + 140)),
        margin={"l": 20, "r": 20, "t": 30, "b": 40},
        xaxis={"title": "seconds since the first submission", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "showticklabels": count <= 200, "type": "category",
               "categoryorder": "array", "categoryarray": rows},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom"}, bargap=0.25)
    return figure


def _figure_html(figure: go.Figure, div_id: str, first: bool) -> str:
    return plotly.io.to_html(figure, include_plotlyjs=first, full_html=False, div_id=div_id,
                             include_mathjax=False,
                             config={"displaylogo": False, "responsive": True,
                                     "toImageButtonOptions": {"filename": div_id}})


def summary_html(summary: Summary, gathered: Gathered) -> str:
    """The summary table, the failures and the critical path."""
    snapshot = gathered.snapshot
    e = html.escape
    saved = ""
    if summary.saved is not None:
        saved = (f"<tr><th>one level per conductor cycle</th><td>"
                 f"{duration_text(summary.per_cycle_wall)} estimated under the conductor's "
                 f"sleep of {summary.sleep:g}s: Flux holding the dependencies of "
                 f"{summary.held} step(s) saved <b>{duration_text(max(0.0, summary.saved))}"
                 f"</b></td></tr>")
    counts = ", ".join(f'<span style="color:{COLOURS[n]}">{c} {n}</span>'
                       for n, c in snapshot.totals().items())
    cells = [("study", f"{e(snapshot.study)} <span class=dim>{e(snapshot.root)}</span>"),
             ("broker", e(snapshot.uri) + (f"<br><span class=warn>{e(snapshot.broker)}"
                                           "</span>" if snapshot.broker else "")),
             ("conductor", e(snapshot.conductor or "unknown")),
             ("steps", f"{summary.steps}: {counts}"), ("jobs", str(summary.jobs)),
             ("wall time", duration_text(summary.wall)),
             ("sum of run times", duration_text(summary.running)),
             ("time queued", duration_text(summary.queued)),
             ("time waiting on dependencies in Flux", duration_text(summary.waiting))]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in cells) + saved
    failures = ""
    if summary.failures:
        items = "".join(f"<tr><td>{e(step)}</td><td>{e(why)}</td></tr>"
                        for step, why in summary.failures[:200])
        more = len(summary.failures) - 200
        failures = (f"<h2>Failures ({len(summary.failures)})</h2><table class=fail>"
                    f"<tr><th>step</th><th>why</th></tr>{items}</table>"
                    + (f"<p class=dim>and {more} more</p>" if more > 0 else ""))
    path = " &rarr; ".join(e(name) for name in summary.critical)
    return (f"<table class=summary>{table}</table>{failures}"
            f"<h2>Critical path ({len(summary.critical)} steps)</h2><p class=path>{path}</p>")


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;font-size:13px}th{text-align:left;color:#555;
font-weight:600;padding:3px 14px 3px 0;vertical-align:top}td{padding:3px 14px 3px 0}
table.fail td{border-top:1px solid #eee}.dim{color:#888}.warn{color:#b35c00}
.path{font-size:13px;line-height:1.6}footer{margin-top:24px;font-size:12px;color:#888}
"""


def build(gathered: Gathered, fold_above: int = 24) -> str:
    """The whole HTML file."""
    graph, timeline_fig, summary, _ = figures(gathered, fold_above)
    snapshot = gathered.snapshot
    title = html.escape(f"{snapshot.study}: maestro-flux report")
    levels = max((view.level for view in snapshot.steps), default=-1) + 1
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.taken))
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{title}</title><style>{STYLE}</style></head><body>"
            f"<h1>{title}</h1>{summary_html(summary, gathered)}"
            f"<h2>Graph</h2><p class=dim>{len(snapshot.steps)} steps in {levels} level(s), "
            f"coloured by state; a square is a parameter group of more than {fold_above} "
            f"steps, folded; the critical path in colour.</p>"
            f"{_figure_html(graph, 'graph', True)}"
            f"<h2>Timeline</h2><p class=dim>{summary.jobs} job(s) from Flux's eventlog "
            f"times; the critical path's run bars are outlined.</p>"
            f"{_figure_html(timeline_fig, 'timeline', False)}"
            f"<footer>maestro-flux {__version__}, {taken}; plotly.js is inlined: this file "
            f"fetches nothing.</footer></body></html>\n")
