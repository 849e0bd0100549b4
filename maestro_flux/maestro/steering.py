"""Steering a study in place: steps run again (``maestro-flux retry``) and chosen steps
stopped while the rest goes on (``maestro-flux cancel``).

A retry changes the study while no conductor drives it: the chosen steps become new
again in Maestro's graph (graph.py), each gets a new attempt in the journal (its jobs'
identity carries it), and the graph is pickled at once, so that a conductor killed
before its first cycle is resumed on the retried study, not the ended one.

A cancel goes through the study's running conductor, the one owner of the graph: the
command leaves a request in ``meta/maestro-flux/requests/``, the conductor (woken by
it, wake.py) serves it at the start of its next round, and leaves the answer beside
it. The pickle, ``status.csv`` and the journal then agree.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maestro_flux.maestro import graph as maestro_graph
from maestro_flux.maestro.journal import FOLDER, Journal
from maestro_flux.model import jobids
from maestro_flux.model.journal import Replay
from maestro_flux.model.selection import SelectionError, to_cancel, to_retry

LOGGER = logging.getLogger(__name__)
REQUESTS = "requests"
REASON = "canceled by maestro-flux cancel"


# -- retry ---------------------------------------------------------------------------------
def retry_plan(graph: Any, names: Sequence[str], force: bool) -> list[str]:
    """The steps to run again (SelectionError, one line, for a bad name)."""
    return to_retry(maestro_graph.step_facts(graph), names, force)


def retry(root: Path, graph: Any, chosen: Sequence[str], replay: Replay) -> dict[str, int]:
    """Make ``chosen`` new again, each with its next attempt journaled; the graph is
    pickled at once. Returns each step's new attempt."""
    attempts = {name: replay.attempts.get(name, 1) + 1 for name in chosen}
    maestro_graph.reset_for_retry(graph, chosen)
    journal = Journal(root)
    for name, attempt in attempts.items():
        journal.retry(name, attempt)
    maestro_graph.pickle(graph, root)
    maestro_graph.write_status(graph, root)
    return attempts


# -- cancel requests -------------------------------------------------------------------
def requests_folder(root: Path) -> Path:
    return root / FOLDER / REQUESTS


def ask_cancel(root: Path, names: Sequence[str]) -> str:
    """Leave a cancel request for the study's conductor; returns its id."""
    folder = requests_folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    request = uuid.uuid4().hex[:12]
    partial = folder / f".cancel-{request}"
    partial.write_text(json.dumps({"cancel": list(names)}))
    os.replace(partial, folder / f"cancel-{request}.json")  # whole, or not there at all
    return request


def answer_of(root: Path, request: str, timeout: float) -> dict | None:
    """The conductor's answer to a request (None if none came within ``timeout``)."""
    path = requests_folder(root) / f"answer-{request}.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            answer = json.loads(path.read_text())
            path.unlink()
            return answer
        time.sleep(0.1)
    return None


def withdraw(root: Path, request: str) -> bool:
    """Take back a request no conductor served (True if it was still there)."""
    try:
        (requests_folder(root) / f"cancel-{request}.json").unlink()
        return True
    except FileNotFoundError:
        return False


def serve(root: Path, graph: Any, study: Any, adapter: Any) -> int:
    """Serve the cancel requests waiting in the study (the conductor, before a round);
    returns how many. The folder goes once empty, so that the conductor's sleep ends
    on a new request only."""
    folder = requests_folder(root)
    served = 0
    for path in sorted(folder.glob("cancel-*.json")) if folder.is_dir() else ():
        request = path.stem.removeprefix("cancel-")
        answer = _cancel(graph, study, adapter, json.loads(path.read_text())["cancel"])
        partial = folder / f".answer-{request}"
        partial.write_text(json.dumps(answer))
        os.replace(partial, folder / f"answer-{request}.json")
        path.unlink()
        served += 1
    return served


def _cancel(graph: Any, study: Any, adapter: Any, names: list[str]) -> dict:
    try:
        chosen = to_cancel(maestro_graph.step_facts(graph), names)
    except SelectionError as err:
        return {"error": str(err)}
    polled = maestro_graph.cancel_steps(graph, chosen)
    ahead = [study.ahead[name].jobid for name in chosen if name in study.ahead]
    submissions = study.submissions
    for name in chosen:
        if name in study.ahead:
            submissions.cancelling[name] = study.ahead.pop(name)
    broker = adapter.broker()
    submissions.confirm_cancels(broker)
    if polled:
        broker.cancel({jobids.parse_jobid(jobid) for jobid in polled}, REASON)
    LOGGER.info("maestro-flux: canceled %d step(s) on request (%s); %d job(s) in Flux "
                "canceled", len(chosen), ", ".join(chosen) or "none left to cancel",
                len(polled) + len(ahead))
    return {"canceled": chosen, "jobs": len(polled) + len(ahead)}
