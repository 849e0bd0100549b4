"""The views' pure decisions (model/study_view.py, model/timeline.py), as tables:
which job is a step's, what a step is and why, levels, folding, spans, the critical
path and the summary figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from maestro_flux.model.journal import Sent
from maestro_flux.model.study_view import (
    FluxJob,
    GraphStep,
    StepView,
    auto_fold_above,
    category,
    counts_text,
    eventlog_times,
    flux_job,
    fold_names,
    graph_nodes,
    join,
    levels,
    reason,
    rows,
    step_jobs,
    study_ended,
)
from maestro_flux.model.timeline import (
    Span,
    critical_path,
    duration_text,
    one_level_per_cycle,
    spans,
    summarize,
    timeline,
)


def step(name, state="FINISHED", jobids=(), parents=(), group=None, **more):
    return GraphStep(name=name, group=group or name.split("_")[0], state=state,
                     jobids=tuple(jobids), parents=tuple(parents), **more)


def job(jobid, state="INACTIVE", result="COMPLETED", **more):
    return FluxJob(jobid=jobid, state=state, result=result if state == "INACTIVE" else None,
                   **more)


# -- which job is the step's --------------------------------------------------------
@pytest.mark.parametrize("graph_ids, sent, expected", [
    ((), [], ()),
    (("f1",), [], ("f1",)),
    # the journal is newer than the pickle: a resubmission not pickled yet
    (("f1",), [Sent("a", "t2", "maestro", jobid="f2")], ("f1", "f2")),
    # sent ahead and adopted: the same id once
    (("f1",), [Sent("a", "t1", "ahead", jobid="f1", adopted=True)], ("f1",)),
    # sent ahead, dropped, then a fresh job: the dropped one is not the step's
    ((), [Sent("a", "t1", "ahead", jobid="f1", dropped=True),
          Sent("a", "t2", "maestro", jobid="f2")], ("f2",)),
    # only a dropped job: it is what Flux did with the step
    ((), [Sent("a", "t1", "ahead", jobid="f1", dropped=True)], ("f1",)),
    # another step's job, and an unanswered submission, are not
    ((), [Sent("b", "t1", "maestro", jobid="f9"), Sent("a", "t2", "maestro")], ()),
])
def test_step_jobs(graph_ids, sent, expected):
    assert step_jobs(step("a", jobids=graph_ids), sent) == expected


# -- what a step is, and why ----------------------------------------------------------
@pytest.mark.parametrize("maestro, flux, expected", [
    ("PENDING", job("f", "DEPEND"), "waiting"),
    ("PENDING", job("f", "NEW"), "waiting"),
    ("PENDING", job("f", "PRIORITY"), "queued"),
    ("QUEUED", job("f", "SCHED"), "queued"),
    ("QUEUED", job("f", "RUN"), "running"),  # Flux is newer than the pickle
    ("RUNNING", job("f", "CLEANUP"), "running"),
    ("RUNNING", job("f", result="COMPLETED"), "done"),
    ("RUNNING", job("f", result="FAILED"), "failed"),
    ("RUNNING", job("f", result="TIMEOUT"), "timed out"),
    ("RUNNING", job("f", result="CANCELED"), "cancelled"),
    # its parent was canceled with the study: Flux failed it, the study cancelled it
    ("CANCELLED", job("f", result="FAILED", exception_type="dependency"), "cancelled"),
    ("FAILED", job("f", result="FAILED", exception_type="dependency"), "failed"),
    # Flux does not know the job (purged, or unreachable): Maestro's word
    ("FINISHED", None, "done"), ("FAILED", None, "failed"), ("TIMEDOUT", None, "timed out"),
    ("CANCELLED", None, "cancelled"), ("RUNNING", None, "running"),
    ("PENDING", None, "queued"), ("HWFAILURE", None, "queued"),
    ("INITIALIZED", None, "not sent"), ("WAITING", None, "not sent"),
    ("UNKNOWN", None, "unknown"), ("SOMETHING NEW", None, "unknown"),
])
def test_category(maestro, flux, expected):
    assert category(maestro, flux) == expected


@pytest.mark.parametrize("flux, err, expected", [
    (job("f", result="COMPLETED", returncode=0), None, None),
    (job("f", "RUN"), None, None),
    (job("f", result="FAILED", returncode=3, t_run=1.0), "boom", "exit code 3; .err: boom"),
    (job("f", result="TIMEOUT", returncode=-14, t_run=1.0, exception_type="timeout",
         exception_note="resource allocation expired"), None,
     "the job ran past its time limit (timeout: resource allocation expired); exit code -14"),
    (job("f", result="FAILED", returncode=143, t_run=1.0, exception_type="node-failure",
         exception_note="rank 1 lost"), None,
     "a node of the job failed (node-failure: rank 1 lost); exit code 143"),
    # never started: the exit code Flux makes up (1, -128) says nothing
    (job("f", result="FAILED", returncode=1, exception_type="dependency",
         exception_note="dependency after-success=fX can never be satisfied"), None,
     "a job it waited on did not succeed (dependency: dependency after-success=fX can never "
     "be satisfied)"),
    (job("f", result="CANCELED", returncode=-128, exception_type="cancel"), None,
     "the job was canceled (cancel)"),
    (job("f", result="FAILED", returncode=1, exception_type="alloc",
         exception_note="unsatisfiable request"), None,
     "the scheduler cannot satisfy the request (alloc: unsatisfiable request)"),
])
def test_reason(flux, err, expected):
    assert reason(flux, err) == expected


def test_flux_job_reads_a_raw_listing_entry():
    entry = {"id": 1, "state": 64, "result": 8, "waitstatus": 36352, "queue": "pbatch",
             "nnodes": 2, "nodelist": "n[1-2]", "t_submit": 1.0, "t_depend": 1.5,
             "t_priority": 2.0, "t_run": 3.0, "t_cleanup": 5.0, "t_inactive": 5.5,
             "exception_occurred": True, "exception_type": "timeout",
             "exception_note": "resource allocation expired", "dependencies": []}
    assert flux_job("fA", entry) == FluxJob(
        "fA", "INACTIVE", "TIMEOUT", "pbatch", 2, "n[1-2]", 1.0, 1.5, 2.0, None, 3.0, 5.0,
        5.5, "timeout", "resource allocation expired", 142, ())
    waiting = flux_job("fB", {"state": 2, "dependencies": ["after-success=fA"]})
    assert (waiting.label, waiting.waiting_on, waiting.result) == ("DEPEND",
                                                                   ("after-success=fA",), None)


@pytest.mark.parametrize("events, expected", [
    # 0.88's order: dependency-add before validate; depend when the parent finished
    ([("submit", 1.0), ("dependency-add", 1.1), ("validate", 1.2), ("dependency-remove", 4.0),
      ("depend", 4.0), ("priority", 4.1), ("alloc", 4.2), ("start", 4.3), ("finish", 9.0),
      ("release", 9.1), ("free", 9.2), ("clean", 9.3)],
     {"t_submit": 1.0, "t_depend": 1.2, "t_released": 4.0, "t_sched": 4.1, "t_run": 4.2,
      "t_cleanup": 9.0, "t_inactive": 9.3}),
    # a fatal exception while it ran: CLEANUP begins there, not at finish
    ([("submit", 1.0), ("validate", 1.0), ("depend", 1.0), ("priority", 1.0), ("alloc", 2.0),
      ("exception", 5.0), ("finish", 5.5), ("clean", 6.0)],
     {"t_submit": 1.0, "t_depend": 1.0, "t_released": 1.0, "t_sched": 1.0, "t_run": 2.0,
      "t_cleanup": 5.0, "t_inactive": 6.0}),
    # a dependency that can never be met: from DEPEND straight to its end
    ([("submit", 1.0), ("validate", 1.0), ("exception", 3.0), ("clean", 3.0)],
     {"t_submit": 1.0, "t_depend": 1.0, "t_cleanup": 3.0, "t_inactive": 3.0}),
])
def test_eventlog_times(events, expected):
    log = [{"name": name, "timestamp": stamp, **({"context": {"severity": 0}}
                                                 if name == "exception" else {})}
           for name, stamp in events]
    assert eventlog_times(log) == expected


def test_a_non_fatal_exception_ends_nothing():
    log = [{"name": "alloc", "timestamp": 2.0},
           {"name": "exception", "timestamp": 3.0, "context": {"severity": 1}}]
    assert eventlog_times(log) == {"t_run": 2.0}


# -- the join -----------------------------------------------------------------------
def test_join_says_what_each_step_waits_on_and_why_a_step_never_ran():
    steps = [step("a", "RUNNING", ["fA"]), step("b", "PENDING", [], ["a"]),
             step("c", "FAILED", [], ["x"]), step("x", "FAILED", ["fX"])]
    sent = [Sent("b", "t", "ahead", jobid="fB", waits_on=(("a", "fA"),))]
    jobs = {"fA": job("fA", "RUN", t_run=10.0, queue="q", nodelist="n1", nnodes=1),
            "fB": job("fB", "DEPEND", waiting_on=("after-success=fA",)),
            "fX": job("fX", result="FAILED", returncode=2, t_run=1.0, t_cleanup=2.0)}
    views = {v.name: v for v in join(steps, jobs, sent, {"x": "no input"}, now=15.0)}
    assert (views["a"].category, views["a"].runtime, views["a"].queue, views["a"].nodes) == \
        ("running", 5.0, "q", "n1")
    assert (views["b"].category, views["b"].waits_on, views["b"].jobid) == ("waiting", ("a",),
                                                                           "fB")
    assert views["x"].reason == "exit code 2; .err: no input"
    assert (views["c"].category, views["c"].reason) == ("failed", "not run: x did not finish")
    assert [views[n].level for n in "abcx"] == [0, 1, 1, 0]


def test_join_reads_what_a_job_waits_on_from_the_journal_where_flux_lists_none():
    steps = [step("a", "RUNNING", ["fA"]), step("b", "PENDING", [], ["a"])]
    sent = [Sent("b", "t", "ahead", jobid="fB", waits_on=(("a", "fA"),))]
    jobs = {"fB": job("fB", "DEPEND")}
    assert join(steps, jobs, sent)[1].waits_on == ("a",)


# -- levels, folding ----------------------------------------------------------------
@pytest.mark.parametrize("graph, expected", [
    ({"a": ()}, {"a": 0}),
    ({"a": (), "b": ("a",), "c": ("b",)}, {"a": 0, "b": 1, "c": 2}),
    # the longest path sets the level
    ({"a": (), "b": ("a",), "c": ("a", "b")}, {"a": 0, "b": 1, "c": 2}),
    ({"a": (), "b": (), "c": ("a",), "d": ("c", "b")}, {"a": 0, "b": 0, "c": 1, "d": 2}),
])
def test_levels(graph, expected):
    assert levels([step(n, parents=p) for n, p in graph.items()]) == expected


def test_levels_of_a_long_chain_need_no_recursion():
    chain = [step(f"s{i}", parents=(f"s{i - 1}",) if i else ()) for i in range(5000)]
    assert levels(chain)["s4999"] == 4999


def sweep(n_done, n_running, n_failed):
    steps = [step("prep", jobids=["f0"])]
    jobs = {"f0": job("f0")}
    for i in range(n_done + n_running + n_failed):
        jid = f"f{i + 1}"
        steps.append(step(f"b_X.{i}", "RUNNING", [jid], ["prep"], group="b"))
        state = ("RUN" if n_done <= i < n_done + n_running else "INACTIVE")
        result = "FAILED" if i >= n_done + n_running else "COMPLETED"
        jobs[jid] = job(jid, state, result, returncode=1 if result == "FAILED" else 0)
    steps.append(step("gather", "INITIALIZED", [], [s.name for s in steps[1:]]))
    return join(steps, jobs, [])


def test_a_parameter_group_folds_into_one_line_with_counts():
    lines = rows(sweep(997, 2, 1), fold_above=1)
    assert [(r.level, r.label, r.folded) for r in lines] == [
        (0, "prep", False), (1, "b_*", True), (2, "gather", False)]
    assert counts_text(lines[1].counts) == "997 done, 2 running, 1 failed"
    assert [v.name for v in lines[1].bad] == ["b_X.999"]
    assert lines[1].category == "failed"


@pytest.mark.parametrize("unfold, fold_above, lines", [
    ((), 1, 3), ((), 1000, 1002), (True, 1, 1002), (["b"], 1, 1002), (["b_*"], 1, 1002),
    (["other"], 1, 3),
])
def test_unfolding_on_request(unfold, fold_above, lines):
    assert len(rows(sweep(997, 2, 1), unfold, fold_above)) == lines


@pytest.mark.parametrize("steps, height, expected", [(10, 40, 10), (40, 40, 40),
                                                     (41, 40, 1), (10000, 40, 1)])
def test_fold_only_what_does_not_fit(steps, height, expected):
    assert auto_fold_above(steps, height) == expected


@pytest.mark.parametrize("names, expected", [
    ([], ""), (["a"], "a"), (["b_1", "b_2", "b_3"], "b_* (3)"),
    (["b_1", "b_2"], "b_1, b_2"), (["a", "c", "d", "e"], "a, c, d +1"),
])
def test_fold_names(names, expected):
    groups = {"b_1": "b", "b_2": "b", "b_3": "b"}
    assert fold_names(names, groups, {"b": 3}) == expected


def test_graph_nodes_fold_big_groups_and_order_layers_by_their_parents():
    views = sweep(30, 0, 0)
    parents = {v.name: (("prep",) if v.name.startswith("b_") else ()) for v in views}
    parents["gather"] = tuple(v.name for v in views if v.name.startswith("b_"))
    nodes, edges = graph_nodes(views, parents, fold_above=24)
    assert [(n.key, n.folded, len(n.steps)) for n in nodes] == [
        ("prep", False, 1), ("b_*@1", True, 30), ("gather", False, 1)]
    assert edges == [("b_*@1", "gather"), ("prep", "b_*@1")]
    nodes, edges = graph_nodes(views, parents, fold_above=30)
    assert len(nodes) == 32 and len(edges) == 60


@pytest.mark.parametrize("maestro, categories, alive, cancelled, expected", [
    (["FINISHED", "FAILED"], ["done", "failed"], True, False, True),
    (["FINISHED", "RUNNING"], ["done", "running"], True, False, False),
    # the conductor died: over once Flux has nothing left to run
    (["FINISHED", "RUNNING"], ["done", "running"], False, False, False),
    (["FINISHED", "RUNNING"], ["done", "done"], False, False, True),
    (["RUNNING"], ["cancelled"], True, True, True),
    (["RUNNING"], ["running"], None, False, False),
])
def test_study_ended(maestro, categories, alive, cancelled, expected):
    views = [StepView(f"s{i}", "s", 0, m, c) for i, (m, c) in enumerate(zip(maestro, categories,
                                                                           strict=True))]
    assert study_ended(views, alive, cancelled) is expected


# -- the timeline -------------------------------------------------------------------
@pytest.mark.parametrize("flux, expected", [
    (job("f", t_depend=1.0, t_released=4.0, t_run=5.0, t_cleanup=9.0, t_inactive=9.5),
     [("waiting", 1.0, 4.0), ("queued", 4.0, 5.0), ("running", 5.0, 9.0),
      ("cleanup", 9.0, 9.5)]),
    # no t_released (before 0.88, eventlog not read): queued from DEPEND on
    (job("f", t_depend=1.0, t_run=5.0, t_cleanup=9.0, t_inactive=9.0),
     [("queued", 1.0, 5.0), ("running", 5.0, 9.0)]),
    # still waiting, still running: until now (20)
    (job("f", "DEPEND", t_depend=1.0), [("waiting", 1.0, 20.0)]),
    (job("f", "RUN", t_depend=1.0, t_released=1.0, t_run=2.0),
     [("queued", 1.0, 2.0), ("running", 2.0, 20.0)]),
    # never met: waiting until its end
    (job("f", result="FAILED", t_depend=1.0, t_cleanup=3.0, t_inactive=3.0),
     [("waiting", 1.0, 3.0)]),
])
def test_spans(flux, expected):
    assert [(s.phase, s.start, s.end) for s in spans(flux, now=20.0)] == expected


def test_critical_path_follows_the_parent_that_ended_last():
    steps = [step("a"), step("b", parents=["a"]), step("c", parents=["a"]),
             step("d", parents=["b", "c"]), step("e", parents=["a"])]
    ends = {"a": 1.0, "b": 5.0, "c": 3.0, "d": 8.0, "e": 7.0}
    assert critical_path(steps, ends) == ["a", "b", "d"]
    assert critical_path(steps, {}) == []


@pytest.mark.parametrize("chain, sleep, expected", [
    # 3 levels of 2 s under a 10 s sleep: submitted at 0, 10, 20
    (3, 10.0, 22.0),
    (3, 1.0, 6.0),  # each level ends on a cycle: nothing lost
    (3, 3.0, 8.0),  # submitted at 0, 3, 6
])
def test_one_level_per_cycle(chain, sleep, expected):
    steps = [step(f"s{i}", parents=(f"s{i - 1}",) if i else ()) for i in range(chain)]
    durations = {s.name: 2.0 for s in steps}
    assert one_level_per_cycle(steps, durations, start=100.0, sleep=sleep) == expected


def test_summary_figures():
    steps = [step("a", jobids=["fA"]), step("b", jobids=["fB"], parents=["a"]),
             step("c", "FAILED", jobids=["fC"], parents=["a"])]
    jobs = {"fA": job("fA", t_depend=0.0, t_released=0.0, t_run=1.0, t_cleanup=3.0,
                      t_inactive=3.0),
            "fB": job("fB", t_depend=0.5, t_released=3.0, t_run=4.0, t_cleanup=7.0,
                      t_inactive=7.0),
            "fC": job("fC", result="FAILED", returncode=1, t_depend=0.5, t_released=3.0,
                      t_run=3.0, t_cleanup=3.5, t_inactive=3.5)}
    views = join(steps, jobs, [])
    history = {s.name: s.jobids for s in steps}
    times = timeline(steps, views, jobs, 10.0, history)
    summary = summarize(steps, views, times, sleep=10.0, held=2, now=10.0)
    assert (summary.wall, summary.running, summary.queued, summary.waiting) == \
        (7.0, 2.0 + 3.0 + 0.5, 1.0 + 1.0, 2.5 + 2.5)
    assert summary.failures == (("c", "exit code 1"),)
    assert summary.critical == ("a", "b")
    # a: 0-3; b released at the cycle at 10: 10 + 4 = 14
    assert summary.per_cycle_wall == 14.0 and summary.saved == 7.0
    assert [(t.step, [s.phase for s in t.spans]) for t in times][1] == (
        "b", ["waiting", "queued", "running"])


def test_a_job_flux_forgot_is_drawn_from_maestros_times():
    steps = [step("a", jobids=["fA"], submitted=5.0, ended=9.0)]
    views = join(steps, {}, [])
    (entry,) = timeline(steps, views, {}, 20.0, {"a": ("fA",)})
    assert entry.spans == (Span("maestro", 5.0, 9.0),)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_duration_text_is_short(seconds):
    assert 2 <= len(duration_text(seconds)) <= 7


@pytest.mark.parametrize("seconds, text", [(None, "-"), (0.04, "0.0s"), (9.95, "9.9s"),
                                           (12, "12s"), (185, "3m05s"), (7380, "2h03m")])
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text
