"""The pure rules of issue 11: queue fitting, bank policy, job-list grace."""

from __future__ import annotations

import pytest

from maestro_flux.model.errors import StepError
from maestro_flux.model.listing_grace import ListingGrace
from maestro_flux.model.queues import (
    BrokerQueues,
    bank_policy,
    fit_queue,
    loads_accounting,
    queue_policy,
    queues_from_config,
    queues_from_list,
)

NONE = BrokerQueues((), "config.get")
NAMED = BrokerQueues(("pbatch", "pdebug"), "config.get", "pbatch")


def test_config_and_queue_list_answers_read_the_same_queues():
    config = {"queues": {"pdebug": {}, "pbatch": {"requires": ["batch"]}},
              "policy": {"jobspec": {"defaults": {"system": {"queue": "pbatch"}}}}}
    assert queues_from_config(config) == NAMED
    assert queues_from_config({}) == NONE  # recorded on 0.61, 0.76 and 0.88 alike
    assert queues_from_list({"queues": ["pdebug", "pbatch"]}).names == NAMED.names
    assert queues_from_list({"queues": []}).names == ()


def test_without_named_queues_a_queue_is_dropped_and_the_rest_kept():
    fit = fit_queue({"queue": "pdebug", "bank": "guests", "nslots": 2}, NONE, "B")
    assert fit.options == {"bank": "guests", "nslots": 2}
    assert fit.dropped == "pdebug"
    assert fit.note == "queue 'pdebug' dropped: B has no named queues (batch.portable: false " \
                       "keeps it)"


def test_portable_false_keeps_the_queue():
    fit = fit_queue({"queue": "pdebug"}, NONE, "B", portable=False)
    assert fit.options == {"queue": "pdebug"} and fit.dropped is None
    assert "kept although B has no named queues" in fit.note


@pytest.mark.parametrize("portable", [True, False])
def test_with_named_queues_a_missing_one_is_refused_listing_them(portable):
    with pytest.raises(StepError, match=r"^queue 'pdebugg' does not exist on B; its queues "
                                        r"are: pbatch, pdebug$"):
        fit_queue({"queue": "pdebugg"}, NAMED, "B", portable)
    assert fit_queue({"queue": "pdebug"}, NAMED, "B", portable).options == {"queue": "pdebug"}


def test_an_unknown_answer_keeps_the_queue_and_says_so():
    fit = fit_queue({"queue": "q"}, BrokerQueues(None, "cannot ask B: gone"), "B")
    assert fit.options == {"queue": "q"} and fit.note == "queue 'q' not checked: cannot ask " \
                                                         "B: gone"
    assert fit_queue({"nslots": 1}, NONE, "B").note is None


def test_policies_in_words():
    assert queue_policy(NONE) == ("a queue is dropped, with one warning (batch.portable: false "
                                  "keeps it)")
    assert queue_policy(NAMED) == "a queue not among them refuses the step"
    assert NAMED.describe() == "pbatch, pdebug; default pbatch"
    assert "Flux accepts and ignores it" in bank_policy("g", False, "B")
    assert "checked by flux-accounting" in bank_policy("g", True, "B")
    assert bank_policy("g", None, "B", "guest").endswith("whether B checks it is unknown: guest")
    assert loads_accounting({"job-manager": {"plugins": [{"load": "mf_priority.so"}]}})
    assert not loads_accounting({"job-manager": {"plugins": [{"load": "other.so"}]}})


def test_grace_keeps_ours_pending_until_listed_or_expired():
    grace = ListingGrace(grace=10, limit=3)
    grace.submitted(1, now=100.0)
    assert grace.waiting(1, now=109.9) and not grace.waiting(1, now=110.0)
    assert not grace.waiting(2, now=100.0)  # not ours
    grace.listed({1})
    assert not grace.waiting(1, now=101.0) and 1 not in grace
    for jobid in range(10, 15):  # bounded: the oldest are forgotten first
        grace.submitted(jobid, now=200.0)
    assert len(grace) == 3 and 10 not in grace and 14 in grace
