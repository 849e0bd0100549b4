"""The study state: one owner, found by key, bounded in what it keeps."""

from __future__ import annotations

import logging

from helpers import make_step

from maestro_flux.maestro import study_context, study_state
from maestro_flux.maestro.adapter import FluxAdapter
from maestro_flux.maestro.study_state import STUDY_KEY, StudyRegistry
from maestro_flux.model.bounded import Bounded
from maestro_flux.model.notices import Notices


def test_adapters_of_one_study_share_its_state_and_other_studies_do_not():
    registry = StudyRegistry()
    block = {"type": "flux", "queue": "q"}
    first, again = registry.for_block(block), registry.for_block(dict(block))
    assert first is again  # Maestro rebuilds the adapter from the same block
    stamped = registry.for_block({**block, STUDY_KEY: "a"})
    other = registry.for_block({**block, STUDY_KEY: "b"})
    assert len({id(first), id(stamped), id(other)}) == 3  # same block, two studies
    assert registry.for_block({**block, STUDY_KEY: "a"}) is stamped


def test_a_study_keeps_one_broker_per_uri_with_its_own_timeout():
    state = StudyRegistry().for_block({"type": "flux"})
    broker = state.broker("local:///x", 5)
    assert state.broker("local:///x", 9) is broker and broker.timeout == 9
    assert broker.notices is state.notices
    broker.submitted.add(42)
    assert state.moved_from(42, "local:///y") == "local:///x"
    assert state.moved_from(42, "local:///x") is None


def test_the_registry_plans_and_notices_are_bounded():
    registry = StudyRegistry(limit=3)
    for n in range(10):
        registry.for_block({"type": "flux", STUDY_KEY: str(n)})
    assert len(registry) == 3
    plans = Bounded(limit=100)
    for n in range(10_000):  # a 10,000-step study's plans
        plans.put(("step", str(n)), n)
    assert len(plans) == 100 and plans.get(("step", "9999")) == 9999
    assert plans.get(("step", "0")) is None
    notices = Notices(limit=50)
    shown = sum(notices.first(f"end:{n}") for n in range(10_000))
    assert shown == 10_000 and len(notices) == 50


def test_a_message_is_shown_once_per_study(caplog):
    notices = Notices()
    logger = logging.getLogger("maestro_flux.test")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            notices.log_once(logger, logging.WARNING, "k", "said %s", "once")
    assert [r.message for r in caplog.records] == ["said once"]


def test_plans_live_in_the_study_and_are_bounded(tmp_path):
    assert study_state.MAX_PLANS >= 1000  # the default keeps a large cycle's plans
    adapter = FluxAdapter(type="flux", queue="plans-test")
    adapter.study.plans = Bounded(5)
    for n in range(20):
        workspace = tmp_path / f"s{n}"
        workspace.mkdir()
        adapter.write_script(str(workspace), make_step(f"s{n}", cmd="true"))
    assert len(adapter.study.plans) == 5
    rebuilt = FluxAdapter(type="flux", queue="plans-test")  # as Maestro does each cycle
    assert rebuilt.study is adapter.study


def test_each_study_reads_its_output_directory_once_into_its_own_cache(tmp_path, monkeypatch):
    (tmp_path / "batch.info").write_text("")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "metadata.yaml").write_text("used_parameters: {sim: [X]}\n")
    (tmp_path / "meta" / "parameters.yaml").write_text(
        "c1: {labels: {$(X.label): X.1}, params: {$(X): 1}}\n"
        "c2: {labels: {$(X.label): X.2}, params: {$(X): 2}}\n")
    reads = []
    real_read = study_context.read_combinations
    monkeypatch.setattr(study_context, "read_combinations",
                        lambda root: reads.append(root) or real_read(root))
    registry = StudyRegistry()
    first = registry.for_block({"type": "flux", STUDY_KEY: "a"})
    other = registry.for_block({"type": "flux", STUDY_KEY: "b"})
    workspace = str(tmp_path / "sim" / "X.2")
    assert first.context.step_parameters(workspace, "sim_X.2") == {"X": 2}
    assert first.context.step_parameters(workspace, "sim_X.1") == {"X": 1}
    assert reads == [tmp_path]  # read once for the study
    assert other.context.step_parameters(workspace, "sim_X.1") == {"X": 1}
    assert reads == [tmp_path, tmp_path]  # the other study has a cache of its own
    assert first.context.spec_root(workspace) is None  # no env.pkl: the cwd is used
    assert first.context.step_parameters(str(tmp_path.parent), "sim_X.1") == {}
