"""Rows of figures, their ratios, the printed table and the JSON file."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SKIPPED = "needs a real broker (built-in adapter, flux CLI)"


@dataclass
class Row:
    """One path's figure. ``value`` None means not measured (``note`` says why)."""

    figure: str
    path: str
    value: float | None
    unit: str
    requests: int | None = None
    connections: int | None = None
    note: str = ""
    reference: bool = False  # the row the figure's other rows are compared with
    ratio: float | None = None  # value / the reference row's value
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skipped(cls, figure: str, path: str, why: str = SKIPPED) -> Row:
        return cls(figure, path, None, "", note=f"skipped: {why}")


def add_ratios(rows: list[Row]) -> None:
    """Each row's value over its figure's reference row (the first maestro-flux row
    unless one is marked)."""
    figures: dict[str, list[Row]] = {}
    for row in rows:
        figures.setdefault(row.figure, []).append(row)
    for group in figures.values():
        reference = next((r for r in group if r.reference), None) or next(
            (r for r in group if r.path.startswith("maestro-flux") and r.unit != "%"), None)
        if reference is None or not reference.value:
            continue
        reference.reference = True
        for row in group:
            if row.value is not None and row.unit == reference.unit:
                row.ratio = row.value / reference.value


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("s",) and value < 10:
        return f"{value:.3f} {unit}"
    if unit in ("ms", "ms/job", "%") or unit == "s":
        return f"{value:.1f} {unit}"
    return f"{value:.0f} {unit}"


def table(rows: list[Row]) -> str:
    """A Markdown table: figure, path, value, requests, connections, ratio, note."""
    lines = ["| figure | path | value | requests | connections | vs maestro-flux | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        requests = "" if row.requests is None else str(row.requests)
        connections = "" if row.connections is None else str(row.connections)
        lines.append(f"| {row.figure} | {row.path} | {_cell(row.value, row.unit)} | {requests}"
                     f" | {connections} | {ratio} | {row.note} |")
    return "\n".join(lines)


def _preamble(result: dict) -> str:
    if not result["meaningful_for_speed"]:
        banner = "TEST-DOUBLE MODE: a harness smoke test; these figures mean nothing for speed."
    else:
        banner = "Real broker: all paths side by side in one instance; compare ratios."
    before = ", ".join(f"{x:.2f}" for x in result["load_before"])
    after = ", ".join(f"{x:.2f}" for x in result["load_after"])
    machine = result["machine"]
    return (f"{banner}\n\n{result['date']}, {machine['cpus']} CPUs ({machine['cpu']}), "
            f"flux-core {result['flux_core']}, broker size {result['broker_size']}, "
            f"load average before {before}, after {after}.\nCommand: `{result['command']}`\n")


def _targets(verdicts: list[dict]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for verdict in verdicts:
        met = {True: "yes", False: "NO", None: "not measured"}[verdict["met"]]
        lines.append(f"| {verdict['target']} | {verdict['measured']} | {met} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """The run as Markdown: when, where, how, the figures and the targets."""
    rows = [Row(**row) for row in result["rows"]]
    text = _preamble(result) + "\n" + table(rows)
    if result["targets"]:
        text += "\n\n" + _targets(result["targets"])
    return text


def main(argv: list[str]) -> int:
    for name in argv:
        print(markdown(json.loads(Path(name).read_text())))
    return 0


def write_json(path: Path, header: dict, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**header, "rows": [asdict(row) for row in rows]}, indent=1))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
